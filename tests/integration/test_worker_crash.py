"""A worker killed in the middle of an analysis loses nothing: its task and those waiting in the queue go
to another worker (late acknowledgement), which finishes every upload without duplicating anything."""

import time

import pytest
import redis
from django.conf import settings

from apps.predictions.models import FaceEstimate
from apps.uploads.models import Upload
from devtools import devstack
from tests.support import app_env, make_client, photo_file, wait_until_finished

pytestmark = pytest.mark.django_db(transaction=True)

# Seconds before Redis hands an unacknowledged task to another worker (900 in production).
VISIBILITY_TIMEOUT = "5"


def wait_for_status(upload_id, status: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while Upload.objects.get(pk=upload_id).status != status:
        assert time.monotonic() < deadline, f"upload {upload_id} never became {status}"
        time.sleep(0.1)


def test_tasks_of_a_killed_worker_are_finished_by_another_none_twice(
    model_weights, services_dir, one_face_jpeg, two_faces_jpeg, faces
):
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    env = app_env(CELERY_VISIBILITY_TIMEOUT=VISIBILITY_TIMEOUT)
    api = make_client("crash")[0]
    photos = [one_face_jpeg, two_faces_jpeg, one_face_jpeg, two_faces_jpeg]
    expected_faces = [1, 2, 1, 2]

    doomed = devstack.start_worker(env, log_file=services_dir / "doomed-worker.log")
    try:
        upload_ids = [
            api.post("/api/v1/predictions", {"image": photo_file(photo)}, format="multipart").json()["id"]
            for photo in photos
        ]
        wait_for_status(upload_ids[0], Upload.Status.PROCESSING)
        doomed.kill()  # SIGKILL, mid-task: nothing is acknowledged, three more wait in the queue
    finally:
        doomed.stop()
    assert Upload.objects.get(pk=upload_ids[0]).status == Upload.Status.PROCESSING

    rescuer = devstack.start_worker(env, log_file=services_dir / "rescuer-worker.log")
    try:
        uploads = [wait_until_finished(upload_id) for upload_id in upload_ids]
    finally:
        rescuer.stop()

    assert Upload.objects.count() == len(photos)  # no upload duplicated
    for upload, count in zip(uploads, expected_faces, strict=True):
        assert upload.status == Upload.Status.DONE, upload.failure_reason
        rows = FaceEstimate.objects.filter(upload=upload)
        assert sorted(rows.values_list("face_index", flat=True)) == list(range(count))
        documents = list(faces.find({"upload_id": str(upload.pk)}, {"face_index": 1}))
        assert sorted(document["face_index"] for document in documents) == list(range(count))
        # Each row points at its own face document: none was made twice and left behind.
        assert {row.mongo_face_id for row in rows} == {str(document["_id"]) for document in documents}
