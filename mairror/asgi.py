"""ASGI entry point: gunicorn with uvicorn workers (``-k uvicorn_worker.UvicornWorker mairror.asgi``).

Under ASGI a request that waits (the API's ``?wait=``, the result page's event stream) is a
coroutine parked on a Redis subscription, not a server thread: thousands can wait while
``/healthz`` and the pages answer as usual. Every other request runs whole in a pooled thread
(``mairror.sync_requests``). Never imports TensorFlow: the models live in the workers.
"""

import asyncio
import json
import logging
import os
import warnings

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mairror.settings")

django_application = get_asgi_application()

# WhiteNoise's static files are FileResponses over plain files: Django reads them in a thread and
# says so on every request. They are small (scripts, styles, the API docs' assets).
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")

from django.conf import settings  # noqa: E402 - configured by get_asgi_application

from apps.uploads.images import MULTIPART_OVERHEAD_BYTES  # noqa: E402
from mairror.log_filters import QueryStringsRedacted  # noqa: E402
from mairror.sync_requests import SyncRequestsInThreads  # noqa: E402
from mairror.warm_up import WarmUpAtStartup  # noqa: E402

logging.getLogger("uvicorn.access").addFilter(QueryStringsRedacted())

# Django's ASGI handler reads a whole request body (to a temporary file past 2.5 MB) before any view
# sees it, where under WSGI the upload views refused a long Content-Length before reading anything.
# Bodies up to twice the largest upload still reach the views, which answer 413 in their own format;
# anything longer is refused here, unread.
BODY_LIMIT_BYTES = 2 * settings.MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES
# Where several photos come in one body, the batch's own limit.
BODY_LIMITS_BY_PATH = {"/api/v1/predictions/batch": settings.MAX_BATCH_BYTES + MULTIPART_OVERHEAD_BYTES}


class BodyLimit:
    """Answer 413 to a request whose body is (or, sent chunked, grows) longer than ``limit`` bytes
    (or a path's own in ``limits_by_path``), and 408
    to one whose body stops arriving for ``idle_seconds`` (a stalled or slowloris client), then drop it.

    A body being read costs a coroutine, not a thread, but without a bound a client that announces a
    long body and sends nothing more would hold its connection for ever. Once the body is in, the
    application's own reads (waiting for a disconnect while it answers) are left unbounded.
    """

    def __init__(self, app, limit: int, idle_seconds: float, limits_by_path: dict[str, int] | None = None):
        self.app = app
        self.limit = limit
        self.idle_seconds = idle_seconds
        self.limits_by_path = limits_by_path or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limits_by_path.get(scope.get("path", ""), self.limit)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            message = f"The request body is larger than {limit} bytes."
            return await self._refuse(scope, send, 413, "file_too_large", message, {"max_bytes": limit})
        received = 0
        refused = body_done = False

        async def limited_receive():
            nonlocal received, refused, body_done
            if body_done or refused:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.idle_seconds)
            except TimeoutError:
                refused = True
                await self._refuse(
                    scope,
                    send,
                    408,
                    "request_timeout",
                    f"No part of the request body came for {self.idle_seconds:g} s.",
                )
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > limit:
                    refused = True
                    await self._refuse(
                        scope,
                        send,
                        413,
                        "file_too_large",
                        f"The request body is larger than {limit} bytes.",
                        {"max_bytes": limit},
                    )
                    return {"type": "http.disconnect"}  # the application stops reading and answers nothing
            return message

        async def guarded_send(message):
            if not refused:
                await send(message)

        return await self.app(scope, limited_receive, guarded_send)

    async def _refuse(self, scope, send, status: int, code: str, message: str, details: dict | None = None) -> None:
        if scope.get("path", "").startswith("/api/"):
            body = json.dumps({"error": {"code": code, "message": message, "details": details or {}}}).encode()
            content_type = b"application/json"
        else:
            body, content_type = message.encode(), b"text/plain; charset=utf-8"
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": [*headers, (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


application = WarmUpAtStartup(
    BodyLimit(
        SyncRequestsInThreads(django_application),
        BODY_LIMIT_BYTES,
        idle_seconds=settings.REQUEST_BODY_IDLE_SECONDS,
        limits_by_path=BODY_LIMITS_BY_PATH,
    )
)
