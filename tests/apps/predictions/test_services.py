import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.faces.services import TOO_MANY_ATTEMPTS, face_documents_store, faces_detect
from apps.predictions.models import EstimateReview, FaceEstimate
from apps.predictions.services import (
    QUEUE_UNAVAILABLE,
    estimate_review_create,
    faces_estimate,
    prediction_request,
    upload_erase,
)
from apps.telegram.models import TelegramUpdate
from apps.uploads.models import Upload
from apps.uploads.services import upload_create, upload_start_processing
from devtools import devstack
from mairror.settings import BASE_DIR
from tests.support import app_env, finish_with_faces, make_face, stored_files


@pytest.fixture
def upload(db, one_face_jpeg) -> Upload:
    return upload_create(image=SimpleUploadedFile("a.jpg", one_face_jpeg), channel=Upload.Channel.API)


def test_request_queues_the_pipeline_only_once_committed(db, one_face_jpeg, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        upload = prediction_request(image=SimpleUploadedFile("a.jpg", one_face_jpeg), channel=Upload.Channel.WEB)

    # The other callback counts the photo for the metrics (apps.metrics), likewise once committed.
    assert len(callbacks) == 2
    assert [callback.keywords for callback in callbacks].count({"upload_id": upload.pk}) == 1
    assert (upload.channel, upload.status) == (Upload.Channel.WEB, Upload.Status.PENDING)


def test_no_face_is_a_result_not_an_error(upload):
    upload_start_processing(upload_id=upload.pk)

    faces_estimate(face_ids=[], upload_id=str(upload.pk))

    upload.refresh_from_db()
    assert upload.status == Upload.Status.DONE
    assert not upload.faces.exists()
    assert "estimation_ms" in upload.timings


def test_estimation_counts_its_run_and_gives_up_past_the_limit(upload, faces, settings):
    settings.MAX_PROCESSING_ATTEMPTS = 3
    face_ids = face_documents_store(upload_id=str(upload.pk), faces=[make_face(0)], model_version="ag-test")
    upload_start_processing(upload_id=upload.pk)  # detection's claim: 1
    Upload.objects.filter(pk=upload.pk).update(processing_attempts=3)  # two estimations died with their worker

    faces_estimate(face_ids=face_ids, upload_id=str(upload.pk))

    upload.refresh_from_db()
    assert (upload.status, upload.failure_reason, upload.processing_attempts) == ("failed", TOO_MANY_ATTEMPTS, 4)
    assert not FaceEstimate.objects.exists()


def test_estimation_within_the_limit_is_counted_and_finishes(upload, settings):
    settings.MAX_PROCESSING_ATTEMPTS = 3
    upload_start_processing(upload_id=upload.pk)

    faces_estimate(face_ids=[], upload_id=str(upload.pk))

    upload.refresh_from_db()
    assert (upload.status, upload.processing_attempts) == (Upload.Status.DONE, 2)


def test_estimation_leaves_a_finished_upload_alone(upload, faces):
    face_ids = face_documents_store(upload_id=str(upload.pk), faces=[make_face(0)], model_version="ag-test")
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.FAILED, failure_reason="Unreadable.")

    faces_estimate(face_ids=face_ids, upload_id=str(upload.pk))

    upload.refresh_from_db()
    assert (upload.status, upload.failure_reason) == (Upload.Status.FAILED, "Unreadable.")
    assert not FaceEstimate.objects.exists()


def test_faces_detected_before_pose_and_quality_existed_get_rows_without_them(upload, faces, model_weights):
    face_ids = faces_detect(upload_id=str(upload.pk))
    faces.update_many({"upload_id": str(upload.pk)}, {"$unset": {"pose": "", "quality": ""}})

    faces_estimate(face_ids=face_ids, upload_id=str(upload.pk))

    [row] = FaceEstimate.objects.filter(upload=upload)
    assert (row.pose_yaw, row.pose_pitch, row.pose_roll, row.sharpness, row.brightness) == (None,) * 5
    assert row.face_size == min(row.box_width, row.box_height) > 0  # from the box, for every row


def test_faces_of_an_upload_deleted_during_analysis_are_removed(db, faces):
    upload_id = str(uuid.uuid4())
    face_ids = face_documents_store(upload_id=upload_id, faces=[make_face(0), make_face(1)], model_version="ag-test")

    faces_estimate(face_ids=face_ids, upload_id=upload_id)

    assert faces.count_documents({"upload_id": upload_id}) == 0


def test_an_unreachable_queue_keeps_nothing_and_says_so(transactional_db, stores, one_face_jpeg):
    """In a subprocess, since this process's Celery connection pool points at the live Redis."""
    script = textwrap.dedent("""
        import sys, time
        import django
        django.setup()
        from django.core.files.uploadedfile import SimpleUploadedFile
        from apps.predictions.services import PredictionUnavailable, prediction_request
        started = time.monotonic()
        try:
            prediction_request(image=SimpleUploadedFile("a.jpg", sys.stdin.buffer.read()), channel="api")
        except PredictionUnavailable as error:
            print(f"{error.message} {time.monotonic() - started:.1f}")
    """)
    env = app_env(REDIS_URL=f"redis://127.0.0.1:{devstack.free_port()}/0", DJANGO_SETTINGS_MODULE="mairror.settings")
    files_before = stored_files()

    result = subprocess.run(
        [sys.executable, "-c", script],
        input=one_face_jpeg,
        capture_output=True,
        cwd=BASE_DIR,
        env=env,
        check=True,
        timeout=120,
    )

    message, seconds = result.stdout.decode().strip().rsplit(" ", 1)
    assert message == QUEUE_UNAVAILABLE
    assert float(seconds) < 10  # bounded publish retries: a request never hangs on the broker
    assert not Upload.objects.exists()
    assert stored_files() == files_before


def test_erase_removes_an_upload_everywhere_and_unlinks_its_telegram_update(upload, faces, admin_user):
    [face] = finish_with_faces(upload, {})
    estimate_review_create(estimate=face, reviewer=admin_user)
    update = TelegramUpdate.objects.create(update_id=1, chat_id=42, message_id=7, upload=upload)
    path = Path(upload.image.path)

    upload_erase(upload=upload)

    assert not path.exists()
    assert faces.count_documents({}) == 0
    assert not Upload.objects.exists() and not FaceEstimate.objects.exists()
    assert not EstimateReview.objects.exists()
    update.refresh_from_db()
    assert update.upload is None  # the bot's row is the bot's: its own retention deletes it
