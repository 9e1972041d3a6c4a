"""A web process does its first request's one-off work when its server starts it (the ASGI lifespan's startup,
which uvicorn sends in each gunicorn worker), and nothing of it on import."""

import json
import subprocess
import sys
import textwrap
import time

import redis

from mairror.settings import BASE_DIR

WARMED_PROCESS = textwrap.dedent("""
    import asyncio, json, logging, sys, time
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    from mairror.asgi import application
    from PIL import Image
    imported_only = {
        "pillow_plugins_loaded": Image._initialized == 2,
        "task_modules": "apps.faces.tasks" in sys.modules,
    }

    async def start_and_stop():  # as uvicorn does with its lifespan "auto"
        messages, sent = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}], []

        async def receive():
            return messages.pop(0)

        async def send(message):
            sent.append(message["type"])

        await application({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
        return sent

    started = time.monotonic()
    sent = asyncio.run(start_and_stop())
    print(json.dumps({
        "imported_only": imported_only,
        "sent": sent,
        "seconds": time.monotonic() - started,
        "pillow_plugins_loaded": Image._initialized == 2,
        "task_modules": all(name in sys.modules for name in ("apps.faces.tasks", "apps.predictions.tasks")),
        "tensorflow": any(name.split(".")[0] in ("tensorflow", "keras") for name in sys.modules),
    }))
""")


def start_web_process(tmp_path, redis_url: str) -> tuple[dict, str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "mairror.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "REDIS_URL": redis_url,
    }
    result = subprocess.run(
        [sys.executable, "-c", WARMED_PROCESS], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def test_a_web_process_connects_to_the_broker_and_loads_what_the_first_upload_needs_at_start(tmp_path, stores):
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    before = client.info("stats")["total_connections_received"]

    report, log = start_web_process(tmp_path, settings.REDIS_URL)

    assert report["imported_only"] == {"pillow_plugins_loaded": False, "task_modules": False}  # nothing on import
    assert report["sent"] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert report["pillow_plugins_loaded"] and report["task_modules"]
    assert not report["tensorflow"]
    assert client.info("stats")["total_connections_received"] > before  # the producer's connection
    assert "web process warmed in" in log


def test_a_web_process_starts_at_once_when_the_broker_is_down(tmp_path):
    started = time.monotonic()

    report, log = start_web_process(tmp_path, "redis://127.0.0.1:1/0")

    assert report["pillow_plugins_loaded"]
    assert "the broker could not be reached at start" in log
    assert time.monotonic() - started < 60  # bounded; one refused connection, no retries (measured: ms)
