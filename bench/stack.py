"""The app as production runs it, in a benchmark's scratch folder: its environment and its database.

DEBUG off with a secret key of its own (gunicorn refuses the development key), SQLite and local
media in the scratch folder, and the per-client upload rate limits off: a benchmark is one client
sending on purpose.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devtools.devstack import REPO_ROOT, Service, free_port, start_mongo, start_redis, start_web


def production_env(scratch: Path, redis_url: str, mongo_url: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{scratch / 'db.sqlite3'}",
        "MEDIA_ROOT": str(scratch / "media"),
        "REDIS_URL": redis_url,
        "MONGO_URL": mongo_url,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "UPLOAD_RATE_PER_KEY": "",
        "UPLOAD_RATE_PER_IP": "",
    }


def manage(env: dict, *args: str, **run_kwargs) -> subprocess.CompletedProcess:
    """``manage.py ARGS`` in ``env``; raises if it fails."""
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, check=True, **run_kwargs)


def migrate(env: dict) -> None:
    manage(env, "migrate", "--noinput", "-v", "0")


@dataclass
class Stack:
    """A running stack without a worker: each benchmark starts its own, as many and when it measures."""

    env: dict
    url: str
    headers: dict  # the API key's
    services: dict[str, Service]  # redis, mongo, web


@contextlib.contextmanager
def running_stack(scratch: Path) -> Iterator[Stack]:
    """Redis, SecantusDB, the migrated database, an API key and gunicorn in ``scratch``; stopped on the way out."""
    services = {"redis": start_redis(scratch / "redis"), "mongo": start_mongo(scratch / "mongo")}
    try:
        env = production_env(scratch, redis_url=services["redis"].url, mongo_url=services["mongo"].url)
        migrate(env)
        created = manage(env, "create_api_key", "bench", capture_output=True, text=True)
        headers = {"Authorization": f"Api-Key {created.stdout.strip().splitlines()[-1]}"}
        port = free_port()
        services["web"] = start_web(env, port, scratch / "web.log")
        yield Stack(env, f"http://127.0.0.1:{port}", headers, services)
    finally:
        for service in reversed(services.values()):
            service.stop()
