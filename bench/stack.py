"""The app as production runs it, in a benchmark's scratch folder: its environment and its database.

DEBUG off with a secret key of its own (gunicorn refuses the development key), SQLite and local
media in the scratch folder, and the per-client upload rate limits off: a benchmark is one client
sending on purpose.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from devtools.devstack import REPO_ROOT


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
