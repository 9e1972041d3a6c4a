"""The pipeline tasks' shared failure handling, run eagerly in this process (no TensorFlow is needed)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.predictions.tasks import faces_estimate
from apps.uploads.models import Upload
from apps.uploads.services import upload_create, upload_start_processing
from apps.uploads.tasks import INFRASTRUCTURE_FAILURE, INTERNAL_FAILURE, UploadTask
from devtools import devstack

pytestmark = pytest.mark.django_db


@pytest.fixture
def processing_upload(one_face_jpeg) -> Upload:
    upload = upload_create(image=SimpleUploadedFile("a.jpg", one_face_jpeg), channel=Upload.Channel.API)
    return upload_start_processing(upload_id=upload.pk)


def test_pipeline_tasks_retry_and_acknowledge_late():
    assert faces_estimate.autoretry_for == UploadTask.autoretry_for
    assert faces_estimate.max_retries > 0
    assert faces_estimate.acks_late
    assert faces_estimate.reject_on_worker_lost


def test_upload_fails_with_a_reason_when_retries_run_out(settings, processing_upload):
    # Nothing listens there: every attempt is an infrastructure error (ServerSelectionTimeoutError).
    settings.MONGO_URL = f"mongodb://127.0.0.1:{devstack.free_port()}/?serverSelectionTimeoutMS=100"

    result = faces_estimate.apply(args=[[], str(processing_upload.pk)])

    assert result.failed()
    processing_upload.refresh_from_db()
    assert processing_upload.status == Upload.Status.FAILED
    assert processing_upload.failure_reason == INFRASTRUCTURE_FAILURE


def test_upload_fails_at_once_on_an_unexpected_error(processing_upload):
    result = faces_estimate.apply(args=[["not-an-object-id"], str(processing_upload.pk)])

    assert result.failed()
    assert result.result.__class__.__name__ == "InvalidId"
    processing_upload.refresh_from_db()
    assert processing_upload.status == Upload.Status.FAILED
    assert processing_upload.failure_reason == INTERNAL_FAILURE
