"""faces_detect gives up on an upload claimed more than MAX_PROCESSING_ATTEMPTS times.

Such an upload's tasks kept dying with their worker (acks_late + reject_on_worker_lost redeliver
them for ever otherwise). The detector is replaced by a stub: what is tested is the claim, not MTCNN.
"""

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.faces import services as face_services
from apps.faces.services import TOO_MANY_ATTEMPTS, faces_detect
from apps.uploads.models import Upload
from apps.uploads.services import upload_create
from tests.support import make_face

pytestmark = pytest.mark.django_db


class StubPipeline:
    model_version = "ag-test"

    def __init__(self):
        self.calls = 0

    def find_faces(self, images):
        self.calls += 1
        return [[make_face(0)] for _ in images]


@pytest.fixture
def pipeline(monkeypatch) -> StubPipeline:
    stub = StubPipeline()
    monkeypatch.setattr(face_services, "face_pipeline", lambda: stub)
    return stub


@pytest.fixture
def upload(one_face_jpeg) -> Upload:
    return upload_create(image=SimpleUploadedFile("me.jpg", one_face_jpeg), channel=Upload.Channel.API)


def claimed_before(upload: Upload, attempts: int) -> None:
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.PROCESSING, processing_attempts=attempts)


def test_the_default_limit_is_above_every_legitimate_claim():
    legitimate = 1 + django_settings.UPLOAD_TASK_MAX_RETRIES + django_settings.MAX_UPLOAD_REQUEUES
    limit = django_settings.MAX_PROCESSING_ATTEMPTS
    assert limit > legitimate


def test_an_upload_claimed_more_often_than_the_limit_fails_without_faces(upload, pipeline, faces, settings):
    settings.MAX_PROCESSING_ATTEMPTS = 4
    claimed_before(upload, 4)  # this claim is the fifth

    assert faces_detect(upload_id=str(upload.pk)) == []

    upload.refresh_from_db()
    assert (upload.status, upload.failure_reason) == (Upload.Status.FAILED, TOO_MANY_ATTEMPTS)
    assert upload.processing_attempts == 5
    assert upload.finished_at is not None
    assert upload.faces_found is None
    assert pipeline.calls == 0
    assert faces.count_documents({"upload_id": str(upload.pk)}) == 0


def test_an_upload_at_the_limit_is_still_analysed(upload, pipeline, faces, settings):
    settings.MAX_PROCESSING_ATTEMPTS = 4
    claimed_before(upload, 3)  # this claim is the fourth

    face_ids = faces_detect(upload_id=str(upload.pk))

    assert len(face_ids) == 1
    upload.refresh_from_db()
    assert (upload.status, upload.failure_reason, upload.faces_found) == (Upload.Status.PROCESSING, "", 1)
    assert upload.processing_attempts == 4
    assert pipeline.calls == 1
    assert faces.count_documents({"upload_id": str(upload.pk)}) == 1


def test_a_fresh_upload_is_analysed_and_its_claim_counted(upload, pipeline, faces):
    assert len(faces_detect(upload_id=str(upload.pk))) == 1

    upload.refresh_from_db()
    assert (upload.status, upload.processing_attempts, upload.faces_found) == (Upload.Status.PROCESSING, 1, 1)
