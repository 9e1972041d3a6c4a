"""The ASGI entry point: what production serves (gunicorn with uvicorn workers)."""

import asyncio
import json
import subprocess
import sys
import textwrap
import time

from mairror.asgi import BODY_LIMIT_BYTES, BodyLimit
from mairror.middleware import AsyncWhiteNoiseMiddleware
from mairror.settings import BASE_DIR
from tests.mairror.asgi_support import body_messages, run_asgi
from tests.mairror.test_security_settings import production_env, run_django


class Recorder:
    """An ASGI application that reads the whole body and answers 200, recording what it read."""

    def __init__(self):
        self.body = b""
        self.called = False

    async def __call__(self, scope, receive, send):
        self.called = True
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            self.body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def call(app, path: str, chunks: list[bytes], content_length: int | None) -> list[dict]:
    headers = [] if content_length is None else [(b"content-length", str(content_length).encode())]
    return run_asgi(app, {"type": "http", "method": "POST", "path": path, "headers": headers}, body_messages(chunks))


def test_a_body_announced_too_long_is_refused_unread_with_the_api_error_format():
    app = Recorder()

    sent = call(BodyLimit(app, 100, idle_seconds=5), "/api/v1/predictions", [b"x" * 10], content_length=10**9)

    assert not app.called
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["error"]["code"] == "file_too_large"


def test_a_chunked_body_that_grows_too_long_is_cut_off():
    app = Recorder()

    sent = call(BodyLimit(app, 100, idle_seconds=5), "/", [b"x" * 60, b"x" * 60, b"x" * 60], content_length=None)

    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [413]
    assert len(app.body) <= 120


def test_bodies_within_the_limit_reach_the_app():
    app = Recorder()

    sent = call(BodyLimit(app, 100, idle_seconds=5), "/", [b"x" * 50, b"x" * 50], content_length=100)

    assert app.body == b"x" * 100 and sent[0]["status"] == 200


def stalled_call(app, chunks: list[dict]) -> list[dict]:
    """Deliver ``chunks``, then nothing (the client stalls with its connection open)."""
    scope = {"type": "http", "method": "POST", "path": "/api/v1/predictions", "headers": []}
    sent = []

    async def receive():
        if chunks:
            return chunks.pop(0)
        await asyncio.Event().wait()  # never

    async def send(message):
        sent.append(message)

    asyncio.run(asyncio.wait_for(app(scope, receive, send), 5))
    return sent


def test_a_body_that_stops_arriving_is_answered_408_after_the_idle_bound():
    app = Recorder()
    started = time.monotonic()

    sent = stalled_call(
        BodyLimit(app, 100, idle_seconds=0.3), [{"type": "http.request", "body": b"x", "more_body": True}]
    )

    assert 0.3 <= time.monotonic() - started < 2
    assert sent[0]["status"] == 408
    assert json.loads(sent[1]["body"])["error"]["code"] == "request_timeout"
    assert app.body == b"x"  # the app saw what came, then a disconnect, and answered nothing


class AnswersThenListens:
    """Reads its body, answers, then waits for the client to leave, as Django's handler does while it streams."""

    def __init__(self):
        self.listened = False

    async def __call__(self, scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        try:
            await asyncio.wait_for(receive(), 0.6)
        except TimeoutError:
            self.listened = True  # not cut off by the body's idle bound


def test_once_the_body_is_in_the_application_may_wait_on_the_client_unbounded():
    app = AnswersThenListens()

    sent = stalled_call(
        BodyLimit(app, 100, idle_seconds=0.2), [{"type": "http.request", "body": b"", "more_body": False}]
    )

    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [200]
    assert app.listened


def test_the_views_still_see_bodies_just_over_the_upload_limit():
    """They answer those with their own messages (docs/hardening/input.md): the guard is for far larger ones."""
    from django.conf import settings

    assert BODY_LIMIT_BYTES > settings.MAX_UPLOAD_BYTES * 2


def test_the_middleware_chain_is_asynchronous_through_and_through():
    """One synchronous middleware would run every async view in a thread, waits included."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    assert AsyncWhiteNoiseMiddleware.async_capable
    for path in settings.MIDDLEWARE:
        assert getattr(import_string(path), "async_capable", False), path


ASGI_PROCESS = textwrap.dedent("""
    import asyncio, json, sys
    import httpx
    from mairror.asgi import application

    async def main():
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return [
                (await client.get("/healthz")).status_code,
                (await client.get("/static/web/result.js")).status_code,
                (await client.get("/api/v1/predictions/00000000-0000-4000-8000-000000000000?wait=1")).status_code,
                (await client.get("/")).status_code,
            ]

    statuses = asyncio.run(main())
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("tensorflow", "keras", "mtcnn"))
    print(json.dumps({"statuses": statuses, "loaded": loaded}))
""")


def test_the_asgi_application_serves_pages_static_files_and_the_api_without_tensorflow(tmp_path):
    env = {"DJANGO_SETTINGS_MODULE": "mairror.settings", "ALLOWED_HOSTS": "testserver", "DJANGO_DEBUG": "false"}
    result = subprocess.run(
        [sys.executable, "-c", ASGI_PROCESS],
        cwd=BASE_DIR,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    # "/" needs the database's tables (sessions): 500 would say the app ran; only status codes matter here.
    assert report["statuses"][:3] == [200, 200, 401]
    assert report["loaded"] == []


def test_gunicorn_with_uvicorn_workers_refuses_the_development_key(tmp_path):
    env = production_env()
    del env["DJANGO_SECRET_KEY"]
    argv = ["-m", "gunicorn", "mairror.asgi:application", "-k", "uvicorn_worker.UvicornWorker", "--bind"]

    result = run_django(tmp_path, env, [*argv, "127.0.0.1:0", "--workers", "1"])

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set: refusing to serve with the development key." in result.stderr
