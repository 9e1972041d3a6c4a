"""Serving the synchronous views, which are all but the waits, as Django's WSGI handler in a thread.

Django's ASGI handler runs a synchronous view and every synchronous middleware (all of Django's own)
through a hop to a thread and back: about twenty hops a request. Measured in-process on this 2-core
machine, ``/healthz`` took 4.2 ms under ASGI against 0.34 ms under WSGI, the home page 6.6 against
1.1 ms. :class:`SyncRequestsInThreads` sends each request whose view is a coroutine (the API's
``?wait``, the page's event stream: the requests that wait) to Django's ASGI handler, and runs every
other one whole, middleware, view and the request signals, in one call of Django's WSGI handler on a
pooled thread.

Neither way does a slow client hold a thread: the body is read here before the thread starts (in
memory, on disk past FILE_UPLOAD_MAX_MEMORY_SIZE, as Django's ASGI handler does) and the response,
which the thread hands back whole, is sent from the event loop. Responses of synchronous views are
small (JSON, pages, crops, a display-sized photo, static files), so holding one in memory is cheap.
"""

import asyncio
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.urls import Resolver404, resolve

# Threads per web worker process for synchronous requests; none of them waits on a client.
SYNC_THREADS = 8


class SyncRequestsInThreads:
    def __init__(self, asgi_application):
        self.asgi = asgi_application
        self.wsgi = WSGIHandler()
        self.threads = ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="sync-request")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or _view_is_async(scope):
            return await self.asgi(scope, receive, send)
        with tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE) as body:
            if not await _receive_body(receive, body):
                return  # the client went away before its body was in
            status, headers, content = await asyncio.get_running_loop().run_in_executor(
                self.threads, self._respond, scope, body
            )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else content})

    def _respond(self, scope, body) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """One WSGI call, in a pool thread: the status, headers and whole body of the response."""
        started = {}

        def start_response(status, response_headers, exc_info=None):
            started["status"] = int(status.split(" ", 1)[0])
            started["headers"] = [
                (name.lower().encode("latin1"), value.encode("latin1")) for name, value in response_headers
            ]

        response = self.wsgi(_environ(scope, body), start_response)
        try:
            content = b"".join(response)
        finally:
            response.close()  # Django's request_finished: this thread's database connections are closed or kept
        return started["status"], started["headers"], content


def _view_is_async(scope) -> bool:
    try:
        return iscoroutinefunction(resolve(_path_info(scope)).func)
    except Resolver404:
        return False  # Django's 404 page, a synchronous view


async def _receive_body(receive, body) -> bool:
    """Write the request body into ``body``; False if the client disconnected before sending all of it."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        body.write(message.get("body", b""))
        if not message.get("more_body", False):
            body.seek(0)
            return True


def _path_info(scope) -> str:
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _environ(scope, body) -> dict:
    """The WSGI environ (PEP 3333) of an ASGI HTTP scope."""
    server = scope.get("server") or ("localhost", 80)
    environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode().decode("latin1"),
        "PATH_INFO": _path_info(scope).encode().decode("latin1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin1"),
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1] or 80),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if scope.get("client"):
        environ["REMOTE_ADDR"] = scope["client"][0]
    for name, value in scope.get("headers", []):
        key = name.decode("latin1").upper().replace("-", "_")
        key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"
        value = value.decode("latin1")
        separator = "; " if key == "HTTP_COOKIE" else ","
        environ[key] = f"{environ[key]}{separator}{value}" if key in environ else value
    return environ
