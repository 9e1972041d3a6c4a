"""Giving back the thread Django keeps for an ASGI request, before the request waits a long time.

Under ASGI Django runs a request's synchronous parts (middleware, ``sync_to_async`` calls) in a
thread of that request's own (asgiref's ``ThreadSensitiveContext``), which stays alive, idle, until
the request ends: a thousand clients waiting on ``?wait=`` would be a thousand parked threads, each
with a database connection. ``release_request_thread`` closes that thread's database connections
and lets it end; the request's next synchronous part (its answer, the middleware on the way out)
starts a fresh one. Where no such thread exists (WSGI, the test client) it does nothing.
"""

from asgiref.sync import AsyncToSync, SyncToAsync, sync_to_async
from django.db import connections


async def release_request_thread() -> None:
    if getattr(AsyncToSync.executors, "current", None) is not None:
        return  # inside async_to_sync (WSGI, the test client): sync parts run in the caller's thread
    context = SyncToAsync.thread_sensitive_context.get(None)
    executor = SyncToAsync.context_to_thread_executor.get(context) if context is not None else None
    if executor is None:
        return
    await sync_to_async(connections.close_all)()
    if SyncToAsync.context_to_thread_executor.get(context) is executor:
        del SyncToAsync.context_to_thread_executor[context]
    executor.shutdown(wait=False)


async def run_sync_then_release(function, *args, **kwargs):
    """``sync_to_async(function)(...)`` in the request's thread, which is given back afterwards."""
    try:
        return await sync_to_async(function)(*args, **kwargs)
    finally:
        await release_request_thread()
