"""A Bot API on loopback for the tests: a real HTTP server in a thread.

It serves getFile and the files' bytes, records every request it gets (JSON or multipart fields,
uploaded files), and can be told to fail a method (or all) some number of times or until reset:
429 with retry_after, 500, 400 ... Like Telegram, getFile refuses files over 20 MB.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DOWNLOAD = "download"  # the "method" under which file downloads are recorded
TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024
DESCRIPTIONS = {
    400: "Bad Request: PHOTO_INVALID_DIMENSIONS",
    403: "Forbidden: bot was blocked by the user",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


@dataclass(frozen=True)
class Request:
    method: str
    fields: dict
    files: dict[str, bytes]
    status: int
    at: float

    @property
    def chat_id(self) -> int | None:
        return int(self.fields["chat_id"]) if "chat_id" in self.fields else None

    @property
    def reply_to(self) -> int | None:
        parameters = self.fields.get("reply_parameters")
        if isinstance(parameters, str):
            parameters = json.loads(parameters)
        return parameters["message_id"] if parameters else None


@dataclass
class _Failure:
    status: int
    retry_after: int | None
    times: int | None  # None: until reset


@dataclass(frozen=True)
class _File:
    path: str
    data: bytes
    size: int


class FakeBotApi:
    def __init__(self, token: str):
        self.token = token
        self._files: dict[str, _File] = {}
        self._requests: list[Request] = []
        self._failures: dict[str, _Failure] = {}
        self._ids = itertools.count(1)
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeBotApi:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add_file(self, data: bytes, *, size: int | None = None) -> str:
        """Serve ``data`` under a new file id; getFile reports ``size`` (default: the true size)."""
        file_id = f"file-{next(self._ids)}"
        self._files[file_id] = _File(f"documents/{file_id}.bin", data, len(data) if size is None else size)
        return file_id

    def fail(self, method: str = "*", *, status: int = 500, retry_after: int | None = None, times: int | None = None):
        """Answer ``method`` (``*``: every method and downloads) with this error, ``times`` times or until reset."""
        with self._changed:
            self._failures[method] = _Failure(status, retry_after, times)

    def reset(self) -> None:
        with self._changed:
            self._files.clear()
            self._requests.clear()
            self._failures.clear()

    def requests(self, method: str | None = None, *, chat_id: int | None = None) -> list[Request]:
        with self._changed:
            return [
                r
                for r in self._requests
                if (method is None or r.method == method) and (chat_id is None or r.chat_id == chat_id)
            ]

    def wait_for(self, method: str, *, chat_id: int | None = None, count: int = 1, timeout: float = 60) -> list:
        """The first ``count`` successful ``method`` requests (to ``chat_id``), waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [r for r in self.requests(method, chat_id=chat_id) if r.status == 200]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {count} x {method} to {chat_id} in {timeout:.0f}s: {self._requests}")
                self._changed.wait(left)

    # --- called by the request handler -------------------------------------------------------

    def _record(self, method: str, fields: dict, files: dict, status: int) -> None:
        with self._changed:
            self._requests.append(Request(method, fields, files, status, time.monotonic()))
            self._changed.notify_all()

    def _failure(self, method: str) -> _Failure | None:
        with self._changed:
            key = method if method in self._failures else "*"
            failure = self._failures.get(key)
            if failure is not None and failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    del self._failures[key]
            return failure

    def _answer(self, method: str, fields: dict) -> tuple[int, dict]:
        failure = self._failure(method)
        if failure is not None:
            body = {"ok": False, "error_code": failure.status, "description": DESCRIPTIONS.get(failure.status, "")}
            if failure.retry_after is not None:
                body["description"] = f"Too Many Requests: retry after {failure.retry_after}"
                body["parameters"] = {"retry_after": failure.retry_after}
            return failure.status, body
        if method == "getFile":
            file = self._files.get(fields.get("file_id"))
            if file is None:
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: invalid file_id"}
            if file.size > TELEGRAM_DOWNLOAD_LIMIT:
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: file is too big"}
            result = {"file_id": fields["file_id"], "file_unique_id": fields["file_id"], "file_size": file.size}
            return 200, {"ok": True, "result": {**result, "file_path": file.path}}
        if method in ("sendMessage", "sendPhoto"):
            message = {"message_id": next(self._ids), "chat": {"id": int(fields["chat_id"])}, "date": int(time.time())}
            return 200, {"ok": True, "result": message}
        if method == "setWebhook":
            return 200, {"ok": True, "result": True, "description": "Webhook was set"}
        return 404, {"ok": False, "error_code": 404, "description": "Not Found"}

    def _download(self, path: str) -> tuple[int, bytes]:
        failure = self._failure(DOWNLOAD)
        if failure is not None:
            return failure.status, b""
        file = next((file for file in self._files.values() if file.path == path), None)
        return (200, file.data) if file else (404, b"")


def _handler(api: FakeBotApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            prefix = f"/bot{api.token}/"
            if not self.path.startswith(prefix):
                return self._send(401, _json({"ok": False, "error_code": 401, "description": "Unauthorized"}))
            method = self.path.removeprefix(prefix)
            fields, files = _parse(self.headers.get("Content-Type", ""), body)
            status, answer = api._answer(method, fields)
            api._record(method, fields, files, status)
            self._send(status, _json(answer))

        def do_GET(self):
            prefix = f"/file/bot{api.token}/"
            if not self.path.startswith(prefix):
                return self._send(401, b"")
            status, data = api._download(self.path.removeprefix(prefix))
            api._record(DOWNLOAD, {"file_path": self.path.removeprefix(prefix)}, {}, status)
            self._send(status, data)

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):
            pass  # quiet test output

    return Handler


def _json(body: dict) -> bytes:
    return json.dumps(body).encode()


def _parse(content_type: str, body: bytes) -> tuple[dict, dict[str, bytes]]:
    """Fields and uploaded files of a JSON or multipart/form-data body."""
    if content_type.startswith("application/json"):
        return json.loads(body), {}
    if not content_type.startswith("multipart/form-data"):
        return {}, {}
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields, files = {}, {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        if part.get_filename():
            files[name] = data
        else:
            fields[name] = data.decode()
    return fields, files
