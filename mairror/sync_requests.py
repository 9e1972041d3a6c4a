"""Serving the synchronous views, which are all but the waits, as Django's WSGI handler in a thread.

Django's ASGI handler runs a synchronous view and every synchronous middleware (all of Django's own)
through a hop to a thread and back: about twenty hops a request. Measured in-process on this 2-core
machine, ``/healthz`` took 4.2 ms under ASGI against 0.34 ms under WSGI, the home page 6.6 against
1.1 ms. :class:`SyncRequestsInThreads` sends each request that waits (the API's ``?wait``, the page's
event stream: a view that is a coroutine, and says by its ``waits`` attribute which of its requests
wait) to Django's ASGI handler, and runs every other one whole, middleware, view and the request
signals, in one call of Django's WSGI handler on a pooled thread (which runs an async view that
does not wait through ``async_to_sync``).

Two things Django's own handlers would get wrong are put right on the way: a body sent chunked (no
Content-Length) gets the length of what was read, where WSGI would read it as empty; and a multipart
part header that is not UTF-8 (a Latin-1 file name, ``caf\xe9.jpg``) is re-encoded from Latin-1,
where Django's parser would skip the header and so the file ("No file was submitted.").

Neither way does a slow client hold a thread: the body is read here before the thread starts (in
memory, on disk past FILE_UPLOAD_MAX_MEMORY_SIZE, as Django's ASGI handler does) and the response,
which the thread hands back whole, is sent from the event loop. Responses of synchronous views are
small (JSON, pages, crops, a display-sized photo, static files), so holding one in memory is cheap.
"""

import asyncio
import contextlib
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs

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
        if scope["type"] != "http":
            return await self.asgi(scope, receive, send)
        if _request_waits(scope):
            if _has_content_length(scope):
                return await self.asgi(scope, receive, send)
            return await self._asgi_with_content_length(scope, receive, send)
        with tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE) as body:
            if not await _receive_body(receive, body):
                return  # the client went away before its body was in
            status, headers, content = await asyncio.get_running_loop().run_in_executor(
                self.threads, self._respond, scope, body
            )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else content})

    async def _asgi_with_content_length(self, scope, receive, send):
        """A waiting request sent chunked, to Django's ASGI handler with the length of what came (DRF
        reads no body without one). Its body is read first, and handed on in chunks."""
        with tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE) as body:
            if not await _receive_body(receive, body):
                return
            size = _size(body)
            headers = [*scope.get("headers", []), (b"content-length", str(size).encode())]
            handed_on = False

            async def replay():
                nonlocal handed_on
                if handed_on:
                    return await receive()  # after the body: the client's disconnect, when it comes
                chunk = body.read(SCAN_CHUNK_BYTES)
                handed_on = body.tell() >= size
                return {"type": "http.request", "body": chunk, "more_body": not handed_on}

            await self.asgi({**scope, "headers": headers}, replay, send)

    def _respond(self, scope, body) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """One WSGI call, in a pool thread: the status, headers and whole body of the response."""
        started = {}

        def start_response(status, response_headers, exc_info=None):
            started["status"] = int(status.split(" ", 1)[0])
            started["headers"] = [
                (name.lower().encode("latin1"), value.encode("latin1")) for name, value in response_headers
            ]

        environ = _environ(scope, body)
        boundary = _multipart_boundary(environ.get("CONTENT_TYPE", ""))
        if boundary:
            with _part_headers_in_utf8(body, boundary) as readable:
                environ["wsgi.input"], environ["CONTENT_LENGTH"] = readable, str(_size(readable))
                return self._call(environ, start_response, started)
        return self._call(environ, start_response, started)

    def _call(self, environ, start_response, started) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        response = self.wsgi(environ, start_response)
        try:
            content = b"".join(response)
        finally:
            response.close()  # Django's request_finished: this thread's database connections are closed or kept
        return started["status"], started["headers"], content


def _request_waits(scope) -> bool:
    """Whether the request's view is a coroutine that may wait: every request of an async view, unless
    the view's ``waits(method, query)`` says which of its requests do (the others run in a thread)."""
    try:
        view = resolve(_path_info(scope)).func
    except Resolver404:
        return False  # Django's 404 page, a synchronous view
    if not iscoroutinefunction(view):
        return False
    waits = getattr(view, "waits", None)
    return waits is None or waits(scope["method"], parse_qs(scope.get("query_string", b"").decode("latin1")))


def _has_content_length(scope) -> bool:
    return any(name == b"content-length" for name, _ in scope.get("headers", []))


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
    if not _has_content_length(scope) and _size(body):
        environ["CONTENT_LENGTH"] = str(_size(body))  # sent chunked: the length of what came
    for name, value in scope.get("headers", []):
        key = name.decode("latin1").upper().replace("-", "_")
        key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"
        value = value.decode("latin1")
        separator = "; " if key == "HTTP_COOKIE" else ","
        environ[key] = f"{environ[key]}{separator}{value}" if key in environ else value
    return environ


def _size(file) -> int:
    position = file.tell()
    size = file.seek(0, 2)
    file.seek(position)
    return size


def _multipart_boundary(content_type: str) -> bytes | None:
    main, _, parameters = content_type.partition(";")
    if main.strip().lower() != "multipart/form-data":
        return None
    for parameter in parameters.split(";"):
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "boundary" and value:
            return value.strip('"').encode("latin1")
    return None


# Django reads at most this much of a part's headers (its MultiPartParser's max_header_size).
MAX_PART_HEADER_BYTES = 8192
SCAN_CHUNK_BYTES = 1 << 20


@contextlib.contextmanager
def _part_headers_in_utf8(body, boundary: bytes):
    """``body`` itself when every part's headers are UTF-8 (as browsers send them), else a copy whose
    non-UTF-8 header blocks are re-encoded from Latin-1; the parts' contents are never touched.

    Finds the parts by their delimiter lines, reading the body a chunk at a time (it may be larger
    than memory should hold); only the header blocks are decoded.
    """
    delimiter = b"--" + boundary + b"\r\n"
    fixes = []  # (start, end, replacement) of header blocks, in order
    for start in _offsets(body, delimiter):
        headers_at = start + len(delimiter)
        body.seek(headers_at)
        block = body.read(MAX_PART_HEADER_BYTES)
        end = block.find(b"\r\n\r\n")
        block = block[: end if end >= 0 else len(block)]
        try:
            block.decode()
        except UnicodeDecodeError:
            fixes.append((headers_at, headers_at + len(block), block.decode("latin1").encode()))
    body.seek(0)
    if not fixes:
        yield body
        return
    with tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE) as copy:
        position = 0
        for start, end, replacement in fixes:
            _copy_range(body, copy, position, start)
            copy.write(replacement)
            position = end
        _copy_range(body, copy, position, _size(body))
        copy.seek(0)
        body.seek(0)
        yield copy


def _offsets(file, pattern: bytes):
    """Where ``pattern`` starts in ``file``, at its start or after a CRLF (a delimiter line), in order."""
    file.seek(0)
    offset, carried = 0, b""  # ``carried``: the end of the previous chunk, for a pattern cut in two
    while chunk := file.read(SCAN_CHUNK_BYTES):
        data = carried + chunk
        base = offset - len(carried)
        found = data.find(pattern)
        while found >= 0:
            seen_before = found + len(pattern) <= len(carried)  # wholly in the previous chunk: yielded then
            if not seen_before and (base + found == 0 or data[found - 2 : found] == b"\r\n"):
                yield base + found
            found = data.find(pattern, found + 1)
        offset += len(chunk)
        carried = data[-(len(pattern) + 1) :]
        file.seek(offset)  # the caller may have moved it


def _copy_range(source, target, start: int, end: int) -> None:
    source.seek(start)
    remaining = end - start
    while remaining > 0:
        chunk = source.read(min(SCAN_CHUNK_BYTES, remaining))
        target.write(chunk)
        remaining -= len(chunk)
