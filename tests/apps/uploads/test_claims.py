"""Counting the pipeline's claims of an upload, and failing a stuck upload only if nothing claimed it meanwhile."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from apps.uploads.models import Upload
from apps.uploads.services import upload_create, upload_fail_if_stuck, upload_start_processing

pytestmark = pytest.mark.django_db

STUCK = "Stuck too often."


@pytest.fixture
def upload(one_face_jpeg) -> Upload:
    return upload_create(image=SimpleUploadedFile("me.jpg", one_face_jpeg), channel=Upload.Channel.API)


def test_every_claim_is_counted(upload):
    assert upload.processing_attempts == 0

    attempts = [upload_start_processing(upload_id=upload.pk).processing_attempts for _ in range(3)]

    assert attempts == [1, 2, 3]


def test_the_count_is_incremented_in_the_database_not_from_a_stale_copy(upload):
    first = upload_start_processing(upload_id=upload.pk)
    Upload.objects.filter(pk=upload.pk).update(processing_attempts=7)  # another worker's claims meanwhile

    assert upload_start_processing(upload_id=upload.pk).processing_attempts == 8
    assert first.processing_attempts == 1


def test_a_finished_upload_is_not_claimed_nor_counted(upload):
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.DONE, processing_attempts=2)

    assert upload_start_processing(upload_id=upload.pk) is None
    assert Upload.objects.get(pk=upload.pk).processing_attempts == 2


def stuck_upload(upload: Upload, *, minutes_ago: float = 30, requeue_count: int = 3) -> dict:
    """Leave ``upload`` processing and untouched for ``minutes_ago``; the sweeper's view of it, cut-off 20 min."""
    Upload.objects.filter(pk=upload.pk).update(
        status=Upload.Status.PROCESSING,
        requeue_count=requeue_count,
        updated_at=timezone.now() - timedelta(minutes=minutes_ago),
    )
    return {
        "upload_id": upload.pk,
        "requeue_count": requeue_count,
        "stuck_before": timezone.now() - timedelta(minutes=20),
    }


def test_fail_if_stuck_fails_an_upload_that_did_not_move(upload):
    found = stuck_upload(upload)

    assert upload_fail_if_stuck(reason=STUCK, **found)

    upload.refresh_from_db()
    assert (upload.status, upload.failure_reason) == (Upload.Status.FAILED, STUCK)
    assert upload.finished_at is not None


def test_fail_if_stuck_leaves_an_upload_a_task_claimed_after_it_was_found(upload):
    found = stuck_upload(upload)
    upload_start_processing(upload_id=upload.pk)  # a redelivered or requeued task took it up

    assert not upload_fail_if_stuck(reason=STUCK, **found)

    upload.refresh_from_db()
    assert (upload.status, upload.failure_reason) == (Upload.Status.PROCESSING, "")


def test_fail_if_stuck_leaves_an_upload_another_sweep_counted(upload):
    found = stuck_upload(upload)
    Upload.objects.filter(pk=upload.pk).update(requeue_count=4)  # updated_at kept old on purpose

    assert not upload_fail_if_stuck(reason=STUCK, **found)
    assert Upload.objects.get(pk=upload.pk).status == Upload.Status.PROCESSING


def test_fail_if_stuck_leaves_a_finished_upload_alone(upload):
    found = stuck_upload(upload)
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.DONE)  # updated_at kept old on purpose

    assert not upload_fail_if_stuck(reason=STUCK, **found)
    assert Upload.objects.get(pk=upload.pk).status == Upload.Status.DONE
