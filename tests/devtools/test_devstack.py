"""The embedded services really start, answer real clients, and leave no process behind.

Needs no Django settings: run alone with ``pytest tests/devtools/test_devstack.py -p no:django``.
"""

import io
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import boto3
import pymongo
import pytest
import redis

from devtools import devstack


def eventually(condition, timeout: float = 10) -> bool:
    """Signals are delivered, and orphans reaped by init, asynchronously: poll briefly."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def group_empty(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def pid_running(pid: int) -> bool:
    """Alive and not a zombie (a dead child its parent has not reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def assert_gone(service: devstack.Service) -> None:
    """The leader has exited and its process group is empty (no forked child survived)."""
    assert service.process.poll() is not None
    assert eventually(lambda: group_empty(service.process.pid))


def test_free_port_returns_distinct_bindable_ports():
    ports = [devstack.free_port() for _ in range(20)]
    assert len(set(ports)) == len(ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_redis_answers_and_stops(tmp_path):
    service = devstack.start_redis(tmp_path / "redis")
    try:
        assert service.url.startswith("redis://127.0.0.1:")
        client = redis.Redis.from_url(service.url)
        assert client.ping()
        client.set("greeting", "hello")
        assert client.get("greeting") == b"hello"
        client.close()
    finally:
        service.stop()
    assert_gone(service)


def test_mongo_answers_keeps_data_across_restart_and_stops(tmp_path):
    service = devstack.start_mongo(tmp_path / "mongo")
    try:
        with pymongo.MongoClient(service.url, serverSelectionTimeoutMS=5000) as client:
            client.mairror.faces.insert_one({"age": 31, "gender": "f"})
    finally:
        service.stop()
    assert_gone(service)

    service = devstack.start_mongo(tmp_path / "mongo")
    try:
        with pymongo.MongoClient(service.url, serverSelectionTimeoutMS=5000) as client:
            found = client.mairror.faces.find_one({"age": 31}, {"_id": 0})
        assert found == {"age": 31, "gender": "f"}
    finally:
        service.stop()
    assert_gone(service)


def test_s3_answers_boto3_and_stops(tmp_path):
    service = devstack.start_s3(log_file=tmp_path / "s3.log")
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=service.url,
            region_name="us-east-1",
            aws_access_key_id="devstack",
            aws_secret_access_key="devstack",
        )
        s3.create_bucket(Bucket="mairror-media")
        s3.put_object(Bucket="mairror-media", Key="photos/a.jpg", Body=b"jpeg bytes")
        assert s3.get_object(Bucket="mairror-media", Key="photos/a.jpg")["Body"].read() == b"jpeg bytes"
    finally:
        service.stop()
    assert_gone(service)


def test_a_worker_with_beat_sends_the_stuck_upload_sweeper_on_schedule(tmp_path):
    """What ``make run`` starts: one worker that also runs Celery beat, its state in the given file."""
    broker = devstack.start_redis(tmp_path / "redis")
    schedule = tmp_path / "celerybeat-schedule"
    env = {
        "REDIS_URL": broker.url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "SWEEP_STUCK_UPLOADS_SECONDS": "1",
    }
    try:
        worker = devstack.start_worker(env, log_file=tmp_path / "worker.log", beat_schedule=schedule)
        try:
            sent = eventually(lambda: "Sending due task requeue-stuck-uploads" in worker.log_tail(200), timeout=60)
            assert sent, worker.log_tail()
        finally:
            worker.stop()
    finally:
        broker.stop()
    assert_gone(worker)
    assert list(tmp_path.glob("celerybeat-schedule*"))


def test_requested_port_is_used(tmp_path):
    port = devstack.free_port()
    service = devstack.start_redis(tmp_path, port=port)
    try:
        assert service.url == f"redis://127.0.0.1:{port}/0"
    finally:
        service.stop()


def test_taken_port_fails_with_the_log(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        with pytest.raises(devstack.ServiceExited, match="redis exited"):
            devstack.start_redis(tmp_path, port=holder.getsockname()[1])


def test_kill_is_immediate(tmp_path):
    service = devstack.start_redis(tmp_path)
    service.kill()
    assert service.process.returncode == -signal.SIGKILL
    assert_gone(service)


def test_stop_escalates_to_sigkill_and_reaches_forked_children():
    """A leader that ignores SIGTERM, with a child of its own: both must be gone after stop()."""
    script = "trap '' TERM; sleep 300 & echo $!; wait"
    process = subprocess.Popen(["bash", "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True)
    child_pid = int(process.stdout.readline())
    service = devstack.Service("stubborn", "", process)

    started = time.monotonic()
    service.stop(timeout=0.5)

    assert time.monotonic() - started < 5
    assert process.returncode == -signal.SIGKILL
    assert eventually(lambda: not pid_running(child_pid))
    process.stdout.close()


@pytest.mark.skipif(sys.platform != "linux", reason="parent-death signal is Linux-only")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_services_die_with_their_parent(tmp_path, signum):
    """A test run killed mid-way must not leave servers running."""
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import time
                from devtools import devstack
                service = devstack.start_redis({str(tmp_path)!r})
                print(service.process.pid, flush=True)
                time.sleep(300)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=devstack.REPO_ROOT,
    )
    redis_pid = int(parent.stdout.readline())
    parent.send_signal(signum)
    parent.wait(10)
    parent.stdout.close()

    assert eventually(lambda: not pid_running(redis_pid))


def test_unready_service_is_stopped_and_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(devstack, "_redis_answers", lambda url: False)
    marker = uuid.uuid4().hex
    with pytest.raises(devstack.ServiceError, match="did not answer within"):
        devstack.start_redis(tmp_path / marker, timeout=1)
    result = subprocess.run(["pgrep", "-f", marker], capture_output=True)
    assert result.returncode == 1, "the unready redis-server is still running"


def processes_with(argument: str) -> list[int]:
    """Pids of the processes whose command line holds ``argument``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if argument.encode() in cmdline.read().split(b"\0"):
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


@pytest.mark.parametrize(("arguments", "prefix"), [([], ""), (["DEBUG=1"], "DJANGO_DEBUG=1 ")])
def test_make_run_has_debug_off_unless_asked(arguments, prefix):
    # Not MAKEFLAGS or MAKELEVEL either: under CI's own make, make would say which directory it leaves.
    dropped = ("DEBUG", "DJANGO_DEBUG", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")
    env = {key: value for key, value in os.environ.items() if key not in dropped}
    dry_run = subprocess.run(
        ["make", "--no-print-directory", "-n", "run", *arguments],
        cwd=devstack.REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )

    assert dry_run.stdout.splitlines()[-1] == f"{prefix}.venv/bin/python -m devtools.devstack run"


def test_the_app_gets_a_secret_key_of_its_own_made_once(tmp_path, monkeypatch):
    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    monkeypatch.delenv("DJANGO_DEBUG", raising=False)

    first, again = devstack._app_env(tmp_path, {}), devstack._app_env(tmp_path, {"REDIS_URL": "redis://x"})

    assert len(first["DJANGO_SECRET_KEY"]) >= 50 and again["DJANGO_SECRET_KEY"] == first["DJANGO_SECRET_KEY"]
    assert (tmp_path / "secret-key").stat().st_mode & 0o777 == 0o600
    assert "DJANGO_DEBUG" not in first  # off: the site as people see it
    monkeypatch.setenv("DJANGO_SECRET_KEY", "the operator's")
    monkeypatch.setenv("DJANGO_DEBUG", "1")
    chosen = devstack._app_env(tmp_path, {})
    assert (chosen["DJANGO_SECRET_KEY"], chosen["DJANGO_DEBUG"]) == ("the operator's", "1")


def test_the_worker_and_the_web_share_one_metrics_folder_unless_one_is_set(tmp_path, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)

    assert devstack._app_env(tmp_path, {})["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path.resolve() / "metrics")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/srv/metrics")
    assert devstack._app_env(tmp_path, {})["PROMETHEUS_MULTIPROC_DIR"] == "/srv/metrics"


def test_make_run_starts_a_crashed_service_again_and_the_photo_in_flight_finishes(tmp_path):
    """SIGKILL the embedded MongoDB right after a photo is accepted: devstack starts it again on its
    port, the detection step's retry reaches it, and the photo is analysed within a minute. It serves the site
    as people see it: DEBUG off, its own 404 page, static files by WhiteNoise."""
    import httpx
    import numpy as np
    import skimage.data
    from PIL import Image

    env = {**os.environ, "PORT": str(devstack.free_port())}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    run = subprocess.Popen(
        [sys.executable, "-m", "devtools.devstack", "run", "--var", str(tmp_path)],
        cwd=devstack.REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(iter(run.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        assert eventually(lambda: any("Mairror is running at" in line for line in output), 240), "".join(output)
        stack_env = dict(line.strip().split("=", 1) for line in (tmp_path / "devstack.env").read_text().splitlines())
        created = subprocess.run(
            [sys.executable, "manage.py", "create_api_key", "devstack-test"],
            cwd=devstack.REPO_ROOT,
            env={**env, **stack_env},
            capture_output=True,
            text=True,
            check=True,
        )
        headers = {"Authorization": f"Api-Key {created.stdout.strip().splitlines()[-1]}"}
        buffer = io.BytesIO()
        Image.fromarray(np.asarray(skimage.data.astronaut())).save(buffer, format="JPEG")
        [mongo] = processes_with(str(tmp_path / "mongo" / "db"))

        with httpx.Client(base_url=f"http://127.0.0.1:{env['PORT']}", headers=headers, timeout=90) as client:
            gone = client.get(f"/r/{uuid.uuid4()}")
            assert gone.status_code == 404 and "There is nothing at this address." in gone.text, gone.text
            assert client.get("/static/web/style.css").status_code == 200
            accepted = client.post("/api/v1/predictions", files={"image": ("a.jpg", buffer.getvalue(), "image/jpeg")})
            assert accepted.status_code == 202, accepted.text
            os.kill(mongo, signal.SIGKILL)
            killed = time.monotonic()
            result = client.get(f"/api/v1/predictions/{accepted.json()['id']}", params={"wait": 60}).json()

        assert result["status"] == "done", result
        assert len(result["faces"]) == 1
        assert time.monotonic() - killed < 60
        log = "".join(output)
        assert "devstack: mongo exited with code -9; starting it again (1 of at most 5" in log, log
        assert "devstack: mongo is back" in log
        assert run.poll() is None  # the rest kept running
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(60)
    assert not processes_with(str(tmp_path / "mongo" / "db"))
