"""Real Celery workers: an ml worker's pool process loads and warms the models before its first task and
then beats; a killed one drops out within the heartbeat's TTL, a stopped one at once; a worker that does
not consume ``ml`` loads nothing and is not counted."""

import os
import signal
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings

from apps.faces import heartbeats
from apps.uploads.models import Upload
from devtools import devstack
from tests.support import app_env, make_client, photo_file, wait_until_finished

pytestmark = pytest.mark.django_db(transaction=True)

# Loading TensorFlow and both models in a new pool process: 5-20 s on two cores, more when they are busy.
WARM_UP_TIMEOUT = 180
# A warmed worker detects the astronaut in well under 0.5 s; loading the models alone takes seconds.
WARM_DETECTION_MS = 2000
# A process that stops beating is gone within the TTL (plus one poll of the test, and Redis's rounding).
GONE_WITHIN = heartbeats.HEARTBEAT_TTL_SECONDS + 1.5


def live_members(worker: devstack.Service) -> list[str]:
    """The worker's pool processes that count as ready now (members are ``<node name>:<pid>``)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    seconds, micros = client.time()
    members = client.zrangebyscore(heartbeats.KEY, f"({seconds}.{micros:06d}", "+inf")
    return sorted(m.decode() for m in members if m.decode().startswith(f"{worker.url}:"))


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"{what} not within {timeout:.0f} s"
        time.sleep(0.1)
    return result


def pid_of(member: str) -> int:
    return int(member.rsplit(":", 1)[1])


def test_a_pool_process_is_ready_before_its_first_task_which_does_not_wait_for_the_models(
    worker, client, one_face_jpeg
):
    [member] = wait_for(lambda: live_members(worker), WARM_UP_TIMEOUT, "a ready pool process")

    log = Path(worker.log_file).read_text(errors="replace")
    log = log[log.index(worker.url) :]  # this worker's part: the module's workers share the file
    assert "models loaded and warmed" in log
    assert " received" not in log  # warmed before any task came
    assert client.get("/healthz").json()["ml_workers"] >= 1

    api = make_client("warm")[0]
    response = api.post("/api/v1/predictions", {"image": photo_file(one_face_jpeg)}, format="multipart")
    upload = wait_until_finished(response.json()["id"])

    assert upload.status == Upload.Status.DONE, upload.failure_reason
    assert upload.faces_found == 1
    assert upload.timings["detection_ms"] < WARM_DETECTION_MS, upload.timings
    assert live_members(worker) == [member]  # the same process, still beating


def test_a_killed_pool_process_drops_out_within_the_ttl_its_replacement_warms_up_and_a_stop_leaves_at_once(
    stores, django_db_setup, model_weights, services_dir
):
    worker = devstack.start_worker(app_env(), queues="ml", log_file=services_dir / "ml-only-worker.log")
    try:
        [first] = wait_for(lambda: live_members(worker), WARM_UP_TIMEOUT, "a ready pool process")

        os.kill(pid_of(first), signal.SIGKILL)  # as the hard time limit or the OOM killer would
        killed = time.monotonic()
        wait_for(lambda: first not in live_members(worker), GONE_WITHIN, "the killed process dropping out")
        assert time.monotonic() - killed < GONE_WITHIN

        [second] = wait_for(lambda: live_members(worker), WARM_UP_TIMEOUT, "a ready replacement")
        assert pid_of(second) != pid_of(first)
    finally:
        worker.stop()

    assert live_members(worker) == []  # left on shutdown, without waiting for the TTL


def test_a_worker_without_the_ml_queue_loads_no_model_and_is_not_counted(stores, django_db_setup, services_dir):
    worker = devstack.start_worker(app_env(), queues="celery", log_file=services_dir / "celery-only-worker.log")
    try:
        pool = wait_for(lambda: group_pids(worker)[1:], 30, "a pool process")
        time.sleep(5)  # a warm-up would have mapped TensorFlow into it by now

        assert not any("tensorflow" in Path(f"/proc/{pid}/maps").read_text() for pid in pool)
        assert live_members(worker) == []
        assert "models loaded" not in Path(worker.log_file).read_text(errors="replace")
    finally:
        worker.stop()


def group_pids(worker: devstack.Service) -> list[int]:
    """The worker's processes, its main process first (it leads its own process group)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == worker.process.pid:
            pids.append(int(entry.name))
    return sorted(pids, key=lambda pid: pid != worker.process.pid)


def test_the_faces_collection_is_opened_at_start_and_a_mongodb_that_is_down_only_logs(stores, settings, caplog):
    from apps.faces import mongo, signals

    mongo._faces_collection.cache_clear()
    signals._mongo_warm_up()
    assert mongo._faces_collection.cache_info().currsize == 1  # client and index ready for the first detection

    mongo._faces_collection.cache_clear()
    settings.MONGO_URL = f"mongodb://127.0.0.1:{devstack.free_port()}/?serverSelectionTimeoutMS=500"
    signals._mongo_warm_up()
    assert mongo._faces_collection.cache_info().currsize == 0  # nothing cached: the first detection tries again
    assert "MongoDB could not be reached at start" in caplog.text
