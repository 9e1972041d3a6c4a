"""A worker killed in the middle of an analysis loses nothing: its task goes to another worker
(late acknowledgement), which finishes the upload without duplicating anything."""

import time

import pytest
import redis
from django.conf import settings

from apps.predictions.models import FacePrediction
from apps.uploads.models import Upload
from mairror import devstack
from tests.support import app_env, make_client, photo_file, wait_until_finished

pytestmark = pytest.mark.django_db(transaction=True)

# Seconds before Redis hands an unacknowledged task to another worker (900 in production).
VISIBILITY_TIMEOUT = "5"


def wait_for_status(upload_id, status: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while Upload.objects.get(pk=upload_id).status != status:
        assert time.monotonic() < deadline, f"upload {upload_id} never became {status}"
        time.sleep(0.1)


def test_task_of_a_killed_worker_is_finished_by_another(model_weights, services_dir, one_face_jpeg, faces):
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    env = app_env(CELERY_VISIBILITY_TIMEOUT=VISIBILITY_TIMEOUT)
    api = make_client("crash")[0]

    doomed = devstack.start_worker(env, log_file=services_dir / "doomed-worker.log")
    try:
        response = api.post("/api/v1/predictions", {"image": photo_file(one_face_jpeg)}, format="multipart")
        upload_id = response.json()["id"]
        wait_for_status(upload_id, Upload.Status.PROCESSING)
        doomed.kill()  # SIGKILL, mid-task: nothing is acknowledged
    finally:
        doomed.stop()
    assert Upload.objects.get(pk=upload_id).status == Upload.Status.PROCESSING

    rescuer = devstack.start_worker(env, log_file=services_dir / "rescuer-worker.log")
    try:
        upload = wait_until_finished(upload_id)
    finally:
        rescuer.stop()

    assert upload.status == Upload.Status.DONE, upload.failure_reason
    assert FacePrediction.objects.filter(upload=upload).count() == 1
    assert faces.count_documents({"upload_id": upload_id}) == 1
