"""Services failing while photos are in flight: Redis and MongoDB stop and come back, stored photos
cannot be read, the broker vanishes under the Telegram bot. Nothing is half-written, nothing stays
stuck, work resumes when the service returns.

The tests stop services, so this module runs its own Redis, MongoDB (SecantusDB), media folder,
Celery worker and gunicorn instead of the session's, and talks to them over HTTP as a client
would. The worker retries fast (UPLOAD_TASK_MAX_RETRIES, UPLOAD_TASK_RETRY_BACKOFF_MAX and a short
MongoDB server selection timeout), so that a whole retry schedule runs in seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import kombu.exceptions
import pymongo
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.utils import timezone
from rest_framework_api_key.models import APIKey

from apps.faces.services import face_documents_store
from apps.predictions.models import FaceEstimate
from apps.predictions.services import QUEUE_UNAVAILABLE, PredictionUnavailable
from apps.predictions.tasks import faces_estimate as faces_estimate_task
from apps.telegram import tasks
from apps.telegram.models import TelegramUpdate
from apps.telegram.services import telegram_update_handle
from apps.uploads.models import Upload
from apps.uploads.services import upload_create, upload_start_processing
from apps.uploads.tasks import INFRASTRUCTURE_FAILURE
from devtools import devstack
from mairror.settings import BASE_DIR
from tests.apps.telegram.fake_bot_api import FakeBotApi
from tests.apps.telegram.support import SECRET, TOKEN, WEBHOOK_URL, chat_of, photo_update
from tests.conftest import TEST_MONGO_DB
from tests.support import app_env, celery_publishing_to, make_face, stored_files, wait_until_finished

pytestmark = pytest.mark.django_db(transaction=True)

API_URL = "/api/v1/predictions"
TASK_RETRIES = 5
FAST_RETRIES = {"UPLOAD_TASK_MAX_RETRIES": str(TASK_RETRIES), "UPLOAD_TASK_RETRY_BACKOFF_MAX": "2"}
# Every request of these tests comes from 127.0.0.1.
NO_RATE_LIMITS = {
    "UPLOAD_RATE_PER_KEY": "",
    "UPLOAD_RATE_PER_IP": "",
    "PAGE_UPLOAD_RATE_PER_IP": "",
    "TELEGRAM_RATE_PER_CHAT": "",
}
MONGO_SELECTION_MS = 3000
# A request must never hang on a broker that is down (bounded publish retries, see settings).
MAX_REFUSAL_SECONDS = 10


@dataclass
class Stack:
    """The module's own services; ``redis`` and ``mongo`` are replaced when restarted on their ports."""

    directory: Path
    media: Path
    redis: devstack.Service
    mongo: devstack.Service
    env: dict[str, str] | None = None
    worker: devstack.Service | None = None
    web: devstack.Service | None = None
    api_key: str = ""

    def restart_redis(self) -> None:
        self.redis = devstack.start_redis(self.directory / "redis", port=_port(self.redis.url))

    def restart_mongo(self) -> None:
        self.mongo = devstack.start_mongo(self.directory / "mongo", port=_port(self.mongo.url))

    def faces(self) -> pymongo.collection.Collection:
        return pymongo.MongoClient(self.mongo.url)[TEST_MONGO_DB]["faces"]

    def post_photo(self, data: bytes) -> httpx.Response:
        return httpx.post(
            self.web.url + API_URL,
            headers={"Authorization": f"Api-Key {self.api_key}"},
            files={"image": ("photo.jpg", data, "application/octet-stream")},
            timeout=60,
        )

    def log_since(self, offset: int) -> str:
        with self.worker.log_file.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def log_size(self) -> int:
        return self.worker.log_file.stat().st_size


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


@pytest.fixture(scope="module")
def bot_api():
    with FakeBotApi(TOKEN) as api:
        yield api


@pytest.fixture(scope="module")
def stack(tmp_path_factory, django_db_setup, django_db_blocker, model_weights, bot_api):
    directory = tmp_path_factory.mktemp("faults")
    media = directory / "media"
    media.mkdir()
    stack = Stack(
        directory, media, devstack.start_redis(directory / "redis"), devstack.start_mongo(directory / "mongo")
    )
    try:
        with django_db_blocker.unblock():
            stack.env = app_env(
                REDIS_URL=stack.redis.url,
                MONGO_URL=f"{stack.mongo.url}/?serverSelectionTimeoutMS={MONGO_SELECTION_MS}",
                MONGO_DB=TEST_MONGO_DB,
                MEDIA_ROOT=str(media),
                ALLOWED_HOSTS="127.0.0.1",
                TELEGRAM_BOT_TOKEN=TOKEN,
                TELEGRAM_WEBHOOK_SECRET=SECRET,
                TELEGRAM_API_BASE=bot_api.url,
                **FAST_RETRIES,
                **NO_RATE_LIMITS,
            )
        stack.worker = devstack.start_worker(stack.env, log_file=directory / "worker.log")
        stack.web = devstack.start_web(stack.env, devstack.free_port(), directory / "web.log")
        yield stack
    finally:
        for service in (stack.web, stack.worker, stack.mongo, stack.redis):
            if service is not None:
                service.stop()


@pytest.fixture
def api(stack):
    """The stack with an API key for this test (keys live in the test database, emptied after each test)."""
    stack.api_key = APIKey.objects.create_key(name="faults")[1]
    return stack


def wait_for(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def post_from_the_page(stack: Stack, data: bytes, accept: str) -> httpx.Response:
    """A photo sent from the upload page, with the CSRF cookie and token a browser has."""
    with httpx.Client(base_url=stack.web.url, timeout=60) as browser:
        browser.get("/")
        return browser.post(
            "/",
            files={"image": ("photo.jpg", data, "image/jpeg")},
            headers={"X-CSRFToken": browser.cookies["csrftoken"], "Accept": accept, "Referer": stack.web.url + "/"},
        )


def post_update(stack: Stack, update: dict) -> httpx.Response:
    return httpx.post(
        stack.web.url + WEBHOOK_URL,
        json=update,
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
        timeout=60,
    )


# --- Redis (the broker) ---------------------------------------------------------------------------


def test_redis_down_refuses_uploads_cleanly_and_work_resumes_when_it_returns(
    api, one_face_jpeg, bot_api, record_property
):
    files_before = stored_files(api.media)
    photo = photo_update(bot_api.add_file(one_face_jpeg), len(one_face_jpeg))
    api.redis.stop()
    try:
        started = time.monotonic()
        refused = api.post_photo(one_face_jpeg)
        refusal_seconds = time.monotonic() - started
        page_json = post_from_the_page(api, one_face_jpeg, "application/json")
        page_html = post_from_the_page(api, one_face_jpeg, "text/html")
        webhook = post_update(api, photo)
    finally:
        api.restart_redis()

    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == str(PredictionUnavailable.retry_after)
    assert refused.json() == {"error": {"code": "service_unavailable", "message": QUEUE_UNAVAILABLE, "details": {}}}
    assert refusal_seconds < MAX_REFUSAL_SECONDS
    record_property("api_refusal_seconds", round(refusal_seconds, 2))  # for docs/hardening/faults.md
    assert (page_json.status_code, page_json.json()) == (503, {"error": QUEUE_UNAVAILABLE})
    assert page_html.status_code == 503
    assert QUEUE_UNAVAILABLE in page_html.text
    assert webhook.status_code == 503  # Telegram delivers the update again later
    # Nothing half-written: no row, no stored file, no update.
    assert not Upload.objects.exists()
    assert stored_files(api.media) == files_before
    assert not TelegramUpdate.objects.exists()

    # Redis is back on its port: the worker reconnects, new photos and the redelivered update go through.
    accepted = api.post_photo(one_face_jpeg)
    assert accepted.status_code == 202, accepted.text
    assert post_update(api, photo).status_code == 200
    upload = wait_until_finished(accepted.json()["id"])
    assert upload.status == Upload.Status.DONE, upload.failure_reason
    assert FaceEstimate.objects.filter(upload=upload).count() == 1
    [reply] = bot_api.wait_for("sendPhoto", chat_id=chat_of(photo), timeout=300)
    assert reply.fields["caption"]
    telegram_upload = TelegramUpdate.objects.get(pk=photo["update_id"]).upload
    assert telegram_upload.status == Upload.Status.DONE


def test_a_hung_redis_gets_a_503_within_the_bound_not_a_hanging_request(api, one_face_jpeg, record_property):
    os.kill(api.redis.process.pid, signal.SIGSTOP)  # it accepts connections but never answers
    try:
        started = time.monotonic()
        refused = api.post_photo(one_face_jpeg)
        refusal_seconds = time.monotonic() - started
    finally:
        os.kill(api.redis.process.pid, signal.SIGCONT)

    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "service_unavailable"
    assert refusal_seconds < MAX_REFUSAL_SECONDS
    record_property("api_refusal_seconds_hung", round(refusal_seconds, 2))
    assert not Upload.objects.exists()
    accepted = api.post_photo(one_face_jpeg)  # and it works again once Redis answers
    assert accepted.status_code == 202, accepted.text
    assert wait_until_finished(accepted.json()["id"]).status == Upload.Status.DONE


# --- MongoDB --------------------------------------------------------------------------------------


def test_mongo_down_mid_pipeline_is_retried_and_the_upload_finishes_when_it_returns(api, one_face_jpeg):
    log_offset = api.log_size()
    api.mongo.stop()
    try:
        created = api.post_photo(one_face_jpeg)
        assert created.status_code == 202, created.text
        upload_id = created.json()["id"]
        wait_for(lambda: "retry: Retry in" in api.log_since(log_offset), "the worker never retried")
        assert Upload.objects.get(pk=upload_id).status == Upload.Status.PROCESSING
    finally:
        api.restart_mongo()

    upload = wait_until_finished(upload_id)

    assert upload.status == Upload.Status.DONE, upload.failure_reason
    assert FaceEstimate.objects.filter(upload=upload).count() == 1
    assert api.faces().count_documents({"upload_id": upload_id}) == 1


def test_mongo_down_for_good_ends_failed_with_a_reason(api, one_face_jpeg):
    log_offset = api.log_size()
    api.mongo.stop()
    try:
        created = api.post_photo(one_face_jpeg)
        assert created.status_code == 202, created.text
        upload = wait_until_finished(created.json()["id"])
    finally:
        api.restart_mongo()

    assert (upload.status, upload.failure_reason) == (Upload.Status.FAILED, INFRASTRUCTURE_FAILURE)
    assert upload.finished_at is not None
    assert api.log_since(log_offset).count("retry: Retry in") == TASK_RETRIES
    assert not FaceEstimate.objects.filter(upload=upload).exists()


def test_faces_acknowledged_just_before_a_mongo_crash_survive_it(api):
    """Journaled writes: SIGKILL right after the detection step's write loses none of its faces."""
    upload_ids = [str(uuid.uuid4()) for _ in range(10)]
    with override_settings(MONGO_URL=api.mongo.url, MONGO_DB=TEST_MONGO_DB):
        for upload_id in upload_ids:
            face_documents_store(
                upload_id=upload_id, faces=[make_face(0), make_face(1)], model_version="ag-test", first_run=True
            )
    api.mongo.kill()
    api.restart_mongo()

    assert api.faces().count_documents({"upload_id": {"$in": upload_ids}}) == 20


def test_a_face_mongo_lost_sends_the_upload_back_to_detection_not_to_done(api, one_face_jpeg):
    """The estimation step is handed a face id MongoDB no longer has (it lost an acknowledged write in a
    crash): the worker detects the photo again and finishes it with its face, never "done, 0 faces"."""
    with override_settings(MEDIA_ROOT=str(api.media), MONGO_URL=api.mongo.url, MONGO_DB=TEST_MONGO_DB):
        upload = upload_create(image=SimpleUploadedFile("a.jpg", one_face_jpeg), channel=Upload.Channel.API)
        upload_start_processing(upload_id=upload.pk)  # the detection step's claim
        face_ids = face_documents_store(
            upload_id=str(upload.pk), faces=[make_face(0)], model_version="ag-test", first_run=True
        )
    api.faces().delete_many({"upload_id": str(upload.pk)})  # what the crash took

    with celery_publishing_to(api.redis.url):
        faces_estimate_task.delay(face_ids, str(upload.pk))
    upload = wait_until_finished(upload.pk)

    assert upload.status == Upload.Status.DONE, upload.failure_reason
    assert FaceEstimate.objects.filter(upload=upload).count() == upload.faces_found == 1
    assert api.faces().count_documents({"upload_id": str(upload.pk)}) == 1
    assert upload.processing_attempts == 4  # claim, estimation (refused), detection again, estimation


# --- storage, on the worker's side ------------------------------------------------------------------


def requeue_stuck(stack: Stack) -> str:
    """``manage.py requeue_stuck_uploads`` (as cron would run it) against the module's Redis, every unfinished
    upload counting as stuck."""
    result = subprocess.run(
        [sys.executable, "manage.py", "requeue_stuck_uploads"],
        cwd=BASE_DIR,
        env={**stack.env, "STUCK_UPLOAD_MINUTES": "0"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout


def stuck_upload(stack: Stack, data: bytes) -> Upload:
    """An upload stored but never queued, as if the process died between its commit and the publish."""
    with override_settings(MEDIA_ROOT=str(stack.media)):
        upload = upload_create(image=SimpleUploadedFile("a.jpg", data), channel=Upload.Channel.API)
    Upload.objects.filter(pk=upload.pk).update(updated_at=timezone.now() - timedelta(minutes=1))
    return upload


def test_the_sweeper_gets_a_stuck_upload_finished_by_the_worker(stack, one_face_jpeg):
    upload = stuck_upload(stack, one_face_jpeg)

    assert requeue_stuck(stack) == "Requeued 1 stuck uploads, failed 0.\n"
    upload = wait_until_finished(upload.pk)

    assert upload.status == Upload.Status.DONE, upload.failure_reason
    assert upload.requeue_count == 1
    assert FaceEstimate.objects.filter(upload=upload).count() == 1
    assert stack.faces().count_documents({"upload_id": str(upload.pk)}) == 1


def test_a_stored_photo_that_cannot_be_read_is_retried_then_failed_with_a_reason(stack, one_face_jpeg):
    upload = stuck_upload(stack, one_face_jpeg)
    path = stack.media / upload.image.name
    path.unlink()
    path.mkdir()  # reading it now fails with an OSError, as a failing disk or network share would
    log_offset = stack.log_size()

    requeue_stuck(stack)
    upload = wait_until_finished(upload.pk)

    assert (upload.status, upload.failure_reason) == (Upload.Status.FAILED, INFRASTRUCTURE_FAILURE)
    assert stack.log_since(log_offset).count("retry: Retry in") == TASK_RETRIES
    assert stack.faces().count_documents({"upload_id": str(upload.pk)}) == 0


# --- Telegram: the broker goes away between taking an update and queueing its photo -------------------


def test_a_telegram_photo_that_cannot_be_queued_is_kept_for_the_retry(bot_api, settings, one_face_jpeg):
    settings.TELEGRAM_BOT_TOKEN, settings.TELEGRAM_API_BASE = TOKEN, bot_api.url
    update = photo_update(bot_api.add_file(one_face_jpeg), len(one_face_jpeg))
    message_id = update["message"]["message_id"]
    TelegramUpdate.objects.create(
        update_id=update["update_id"], chat_id=chat_of(update), message_id=message_id, payload=update
    )
    files_before = stored_files()

    broker_down = f"redis://127.0.0.1:{devstack.free_port()}/0"
    with celery_publishing_to(broker_down), pytest.raises(kombu.exceptions.OperationalError) as raised:
        telegram_update_handle(update_id=update["update_id"])

    assert issubclass(raised.type, tasks.telegram_update_handle.autoretry_for)  # so the task is retried
    stored = TelegramUpdate.objects.get()
    assert (stored.handled_at, stored.upload, stored.payload) == (None, None, update)  # as it came
    assert not Upload.objects.exists()
    assert stored_files() == files_before
    assert not bot_api.requests("sendMessage", chat_id=chat_of(update))  # the retry answers, not this

    telegram_update_handle(update_id=update["update_id"])  # the retry, with the broker back

    stored.refresh_from_db()
    assert stored.handled_at is not None
    assert stored.upload.status == Upload.Status.PENDING
