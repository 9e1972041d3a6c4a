"""Waiting costs no server thread, for real: gunicorn's uvicorn workers, Redis, a Celery worker.

More clients wait with ``?wait=30`` than the old gunicorn (2 workers x 4 threads) had threads, and
``/healthz`` and the page still answer at once; each waiting client is woken by its upload's change
event, and one waiting on a real photo gets the result within about a second of the worker finishing.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework_api_key.models import APIKey

from apps.uploads.events import upload_channel
from apps.uploads.models import Upload
from apps.uploads.services import upload_create, upload_fail
from devtools import devstack
from tests.support import app_env

pytestmark = pytest.mark.django_db(transaction=True)

WAITING_CLIENTS = 12  # the old server had 8 threads in all
ANSWER_WITHIN_SECONDS = 2.0
LIST_URL = "/api/v1/predictions"


@pytest.fixture(scope="module")
def web(worker, services_dir, django_db_blocker):
    with django_db_blocker.unblock():
        env = app_env(ALLOWED_HOSTS="127.0.0.1")
    service = devstack.start_web(env, devstack.free_port(), services_dir / "waiting-web.log")
    yield service
    service.stop()


@pytest.fixture
def key():
    return APIKey.objects.create_key(name="waiting")


def subscribed(upload_ids) -> int:
    """How many of these uploads have a waiter subscribed on Redis right now."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return sum(count > 0 for _, count in client.pubsub_numsub(*(upload_channel(pk) for pk in upload_ids)))
    finally:
        client.close()


def web_workers(pid: int) -> list[int]:
    return [
        int(child) for task in Path(f"/proc/{pid}/task").iterdir() for child in (task / "children").read_text().split()
    ]


def thread_count(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))


def timed_get(url: str, **kwargs) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.get(url, timeout=10, **kwargs)
    return response, time.monotonic() - started


def test_open_waits_do_not_delay_healthz_or_the_page_and_each_wakes_on_its_change(web, key, one_face_jpeg):
    api_key, secret = key
    uploads = [
        upload_create(image=SimpleUploadedFile("me.jpg", one_face_jpeg), channel=Upload.Channel.API, owner=api_key)
        for _ in range(WAITING_CLIENTS)
    ]  # never queued: they stay pending until the test fails them
    headers = {"Authorization": f"Api-Key {secret}"}

    def wait(upload):
        started = time.monotonic()
        response = httpx.get(f"{web.url}{LIST_URL}/{upload.pk}", params={"wait": 30}, headers=headers, timeout=60)
        return response, time.monotonic() - started

    with ThreadPoolExecutor(WAITING_CLIENTS) as pool:
        waits = [pool.submit(wait, upload) for upload in uploads]
        deadline = time.monotonic() + 30
        while subscribed(u.pk for u in uploads) < WAITING_CLIENTS:
            assert time.monotonic() < deadline, f"only {subscribed(u.pk for u in uploads)} clients are waiting"
            time.sleep(0.1)

        probes = [timed_get(f"{web.url}/healthz") for _ in range(5)] + [timed_get(f"{web.url}/") for _ in range(3)]
        threads = [thread_count(pid) for pid in web_workers(web.process.pid)]
        assert all(not wait.done() for wait in waits)  # the waits were open all along
        failed_at = time.monotonic()
        for upload in uploads:
            upload_fail(upload_id=upload.pk, reason="Ended by the test.")
        answers = [wait.result(timeout=30) for wait in waits]
        woken_within = time.monotonic() - failed_at

    for response, seconds in probes:
        assert response.status_code == 200
        assert seconds < ANSWER_WITHIN_SECONDS, f"{response.url} took {seconds:.2f}s while {WAITING_CLIENTS} waited"
    for response, seconds in answers:
        assert response.status_code == 200
        assert response.json()["status"] == "failed"
        assert response.json()["failure_reason"] == "Ended by the test."
        assert seconds < 30  # woken, not timed out
    assert woken_within < 3
    # No thread per waiting client: Django's per-request thread is given back while a request waits.
    assert sum(threads) < WAITING_CLIENTS, threads


def test_a_waiting_client_gets_the_result_within_a_second_of_the_worker_finishing(web, key, one_face_jpeg):
    _, secret = key
    headers = {"Authorization": f"Api-Key {secret}"}
    with httpx.Client(base_url=web.url, headers=headers, timeout=60) as client:
        created = client.post(LIST_URL, files={"image": ("photo.jpg", one_face_jpeg, "image/jpeg")})
        assert created.status_code == 202
        upload_id = created.json()["id"]
        deadline = time.monotonic() + 300  # the module's fresh worker loads TensorFlow first
        while True:
            result = client.get(f"{LIST_URL}/{upload_id}", params={"wait": 30}).json()
            answered_at = time.time()
            if result["status"] in ("done", "failed") or time.monotonic() > deadline:
                break

    assert result["status"] == "done", result
    finished_at = Upload.objects.get(pk=upload_id).finished_at.timestamp()
    assert 0 <= answered_at - finished_at < 1.0, f"answered {answered_at - finished_at:.2f}s after the worker finished"


def test_a_client_that_goes_away_leaves_no_subscription_behind(web, key, one_face_jpeg):
    api_key, secret = key
    upload = upload_create(image=SimpleUploadedFile("me.jpg", one_face_jpeg), channel=Upload.Channel.API, owner=api_key)
    gone = threading.Event()

    def wait_then_hang_up():
        try:
            httpx.get(
                f"{web.url}{LIST_URL}/{upload.pk}",
                params={"wait": 30},
                headers={"Authorization": f"Api-Key {secret}"},
                timeout=1.5,
            )
        except httpx.TimeoutException:
            gone.set()

    thread = threading.Thread(target=wait_then_hang_up)
    thread.start()
    thread.join()
    assert gone.is_set()
    deadline = time.monotonic() + 10
    while subscribed([upload.pk]):
        assert time.monotonic() < deadline, "the server still waits for a client that went away"
        time.sleep(0.1)
