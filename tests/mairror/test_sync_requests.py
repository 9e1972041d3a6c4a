"""Synchronous views run whole in a pooled thread; only the waiting (async) views go through Django's ASGI handler."""

import io
import json
import threading
import uuid

from mairror import sync_requests
from mairror.sync_requests import SyncRequestsInThreads, _environ
from tests.mairror.asgi_support import body_messages, run_asgi


class AsgiRecorder:
    """Stands in for Django's ASGI handler: records that it was called, answers 204."""

    def __init__(self):
        self.paths = []

    async def __call__(self, scope, receive, send):
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def call(app, method: str, path: str, chunks=(b"",), headers=(), more_body=False, query=b"") -> list[dict]:
    """Run one request through ``app``; ``more_body``: the last chunk promises more, which never comes."""
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query,
        "headers": list(headers),
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }
    return run_asgi(app, scope, body_messages(chunks, more_body))


def test_a_synchronous_view_is_answered_by_the_wsgi_handler_in_a_pool_thread(monkeypatch):
    inner = AsgiRecorder()
    app = SyncRequestsInThreads(inner)
    threads = []
    respond = app._respond
    monkeypatch.setattr(app, "_respond", lambda *a: threads.append(threading.current_thread().name) or respond(*a))

    start, body = call(app, "GET", "/healthz")

    assert inner.paths == []
    assert start["status"] == 200
    assert json.loads(body["body"])["status"] == "ok"
    assert threads and threads[0].startswith("sync-request")


def test_an_unknown_path_gets_the_sites_404_from_the_wsgi_handler():
    inner = AsgiRecorder()

    start, body = call(SyncRequestsInThreads(inner), "GET", "/no/such/page")

    assert inner.paths == []
    assert start["status"] == 404


def test_a_request_that_waits_goes_to_the_asgi_handler():
    inner = AsgiRecorder()
    path = f"/api/v1/predictions/{uuid.uuid4()}"

    waiting = [call(SyncRequestsInThreads(inner), "GET", path, query=b"wait=5")[0]]
    waiting.append(call(SyncRequestsInThreads(inner), "POST", "/api/v1/predictions", query=b"wait=5")[0])
    waiting.append(call(SyncRequestsInThreads(inner), "POST", "/api/v1/predictions/batch", query=b"x=1&wait=2")[0])

    assert inner.paths == [path, "/api/v1/predictions", "/api/v1/predictions/batch"]
    assert [start["status"] for start in waiting] == [204, 204, 204]


def test_requests_of_a_waiting_view_that_do_not_wait_run_in_a_pool_thread():
    """An async view's other requests (no wait, wait=0, an invalid wait, another method) skip Django's ASGI hops."""
    inner = AsgiRecorder()
    app = SyncRequestsInThreads(inner)
    path = f"/api/v1/predictions/{uuid.uuid4()}"

    statuses = [
        call(app, "GET", path)[0]["status"],
        call(app, "GET", path, query=b"wait=0")[0]["status"],
        call(app, "GET", path, query=b"wait=soon")[0]["status"],
        call(app, "DELETE", path, query=b"wait=5")[0]["status"],
        call(app, "GET", "/api/v1/predictions", query=b"wait=5")[0]["status"],
    ]

    assert inner.paths == []
    assert statuses == [401, 401, 401, 401, 401]  # the DRF views' own answer: no key


def test_a_head_request_gets_headers_and_no_body():
    app = SyncRequestsInThreads(AsgiRecorder())
    [_, page] = call(app, "GET", "/no/such/page")

    start, body = call(app, "HEAD", "/no/such/page")

    assert start["status"] == 404
    assert page["body"] and body["body"] == b""


def test_a_client_that_leaves_before_its_body_is_in_gets_nothing_and_runs_no_view(monkeypatch):
    app = SyncRequestsInThreads(AsgiRecorder())
    monkeypatch.setattr(app, "_respond", lambda *a: (_ for _ in ()).throw(AssertionError("a view ran")))

    # The first part of the body says more follows; then the client disconnects.
    sent = call(app, "POST", "/api/v1/predictions", chunks=(b"part",), more_body=True)

    assert sent == []


def test_the_environ_carries_the_request_as_wsgi_expects():
    scope = {
        "method": "POST",
        "path": "/app/api/v1/predictions",
        "root_path": "/app",
        "query_string": b"wait=5",
        "http_version": "1.1",
        "server": ("example.org", 443),
        "client": ("10.0.0.7", 51515),
        "scheme": "https",
        "headers": [
            (b"content-type", b"multipart/form-data; boundary=x"),
            (b"content-length", b"12"),
            (b"cookie", b"a=1"),
            (b"cookie", b"b=2"),
            (b"x-forwarded-for", b"1.2.3.4"),
            (b"x-forwarded-for", b"5.6.7.8"),
        ],
    }
    body = io.BytesIO(b"hello, world")

    environ = _environ(scope, body)

    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"], environ["QUERY_STRING"]) == (
        "/app",
        "/api/v1/predictions",
        "wait=5",
    )
    assert (environ["CONTENT_TYPE"], environ["CONTENT_LENGTH"]) == ("multipart/form-data; boundary=x", "12")
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["HTTP_X_FORWARDED_FOR"] == "1.2.3.4,5.6.7.8"
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"], environ["wsgi.url_scheme"]) == (
        "example.org",
        "443",
        "https",
    )
    assert environ["REMOTE_ADDR"] == "10.0.0.7"
    assert environ["wsgi.input"].read() == b"hello, world"


def multipart(filename: bytes, content: bytes, boundary: bytes = b"b0undary") -> bytes:
    return (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="image"; filename="' + filename + b'"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + content + b"\r\n--" + boundary + b"--\r\n"
    )


def test_a_latin1_part_header_is_re_encoded_and_the_file_left_as_it_was(monkeypatch):
    # File data with blank lines and header-like lines that are not UTF-8 either (a client picks a
    # boundary its data does not hold, so no delimiter line).
    content = b"\xff\xd8\xe9\r\n\r\n--b0und\r\nX: \xe9\r\n\r\n" + bytes(range(256)) * 3
    body = io.BytesIO(multipart(b"caf\xe9.jpg", content))
    monkeypatch.setattr(sync_requests, "SCAN_CHUNK_BYTES", 7)  # delimiters cut across chunks

    with sync_requests._part_headers_in_utf8(body, b"b0undary") as readable:
        fixed = readable.read()

    assert fixed == multipart("café.jpg".encode(), content)


def test_utf8_part_headers_leave_the_body_itself():
    body = io.BytesIO(multipart("café.jpg".encode(), b"\xff\xd8 data"))

    with sync_requests._part_headers_in_utf8(body, b"b0undary") as readable:
        assert readable is body


def test_a_chunked_upload_and_a_latin1_file_name_reach_the_view_as_the_file(monkeypatch):
    """Through the WSGI handler: the photo arrives (the view's error says what it got), not "No file was submitted"."""
    app = SyncRequestsInThreads(AsgiRecorder())
    seen = []
    monkeypatch.setattr(app, "wsgi", lambda environ, start: seen.append(_files(environ)) or app_wsgi(environ, start))
    app_wsgi = sync_requests.WSGIHandler()
    body = multipart(b"caf\xe9.jpg", b"not really a photo")
    content_type = (b"content-type", b"multipart/form-data; boundary=b0undary")

    call(app, "POST", "/no/such/page", chunks=(body[:40], body[40:]), headers=[content_type])

    assert seen == [{"image": "café.jpg"}]


def _files(environ) -> dict:
    from django.core.handlers.wsgi import WSGIRequest

    request = WSGIRequest(dict(environ))
    names = {name: upload.name for name, upload in request.FILES.items()}
    environ["wsgi.input"].seek(0)
    return names


class BodyRecorder(AsgiRecorder):
    """Also keeps the headers it was given and the body it read."""

    async def __call__(self, scope, receive, send):
        self.headers = dict(scope["headers"])
        self.body = b""
        while True:
            message = await receive()
            self.body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.after = await receive()
        await super().__call__(scope, receive, send)


def test_a_waiting_request_sent_chunked_reaches_the_asgi_handler_with_its_length():
    """DRF reads no body without a Content-Length: a chunked upload that waits would be "No file was submitted"."""
    inner = BodyRecorder()

    call(SyncRequestsInThreads(inner), "POST", "/api/v1/predictions", [b"ab", b"cd", b"e"], query=b"wait=5")

    assert inner.headers[b"content-length"] == b"5"
    assert inner.body == b"abcde"
    assert inner.after == {"type": "http.disconnect"}  # then the client's own messages


def test_a_waiting_request_with_a_length_is_passed_on_as_it_came():
    inner = BodyRecorder()
    headers = [(b"content-length", b"4")]

    call(SyncRequestsInThreads(inner), "POST", "/api/v1/predictions", [b"ab", b"cd"], headers, query=b"wait=5")

    assert inner.headers == {b"content-length": b"4"}
    assert inner.body == b"abcd"
