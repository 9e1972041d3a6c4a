import io
import re
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from apps.uploads.images import UnsupportedImage
from apps.uploads.models import Upload
from apps.uploads.selectors import upload_read_image
from apps.uploads.services import (
    upload_create,
    upload_delete,
    upload_discard,
    upload_fail,
    upload_finish,
    upload_image_delete,
    upload_record_timings,
    upload_start_processing,
)
from tests.support import stored_files

pytestmark = pytest.mark.django_db


@pytest.fixture
def upload(one_face_jpeg) -> Upload:
    return upload_create(image=SimpleUploadedFile("me.png", one_face_jpeg), channel=Upload.Channel.API)


def test_create_stores_the_photo_under_an_unguessable_name(upload, one_face_jpeg):
    assert upload.status == Upload.Status.PENDING
    assert (upload.width, upload.height) == (512, 512)
    assert re.fullmatch(r"uploads/[A-Za-z0-9_-]{32}\.jpg", upload.image.name)  # by content, not "me.png"
    assert str(upload.pk) not in upload.image.name
    stored = Image.open(io.BytesIO(upload_read_image(upload=upload)))  # a clean re-encode: see test_images.py
    assert (stored.format, stored.size) == ("JPEG", (512, 512))


def test_create_stores_nothing_for_a_rejected_file():
    before = stored_files()

    with pytest.raises(UnsupportedImage):
        upload_create(image=SimpleUploadedFile("a.jpg", b"not an image"), channel=Upload.Channel.WEB)

    assert not Upload.objects.exists()
    assert stored_files() == before


def test_start_processing_claims_unfinished_uploads_only(upload):
    claimed = upload_start_processing(upload_id=upload.pk)
    assert claimed.status == Upload.Status.PROCESSING
    assert claimed.started_at is not None

    again = upload_start_processing(upload_id=upload.pk)  # a redelivered task: still claimable
    assert again.started_at == claimed.started_at

    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.DONE)
    assert upload_start_processing(upload_id=upload.pk) is None


def test_start_processing_of_a_deleted_upload_is_none(upload):
    upload_delete(upload=upload)

    assert upload_start_processing(upload_id=upload.pk) is None


def test_finish_merges_timings_and_marks_done(upload):
    upload = upload_start_processing(upload_id=upload.pk)
    upload_record_timings(upload=upload, timings={"detection_ms": 12.0})

    assert upload_finish(upload=upload, timings={"estimation_ms": 3.0})

    upload.refresh_from_db()
    assert upload.status == Upload.Status.DONE
    assert upload.finished_at is not None
    assert set(upload.timings) == {"detection_ms", "estimation_ms", "total_ms"}
    assert upload.timings["total_ms"] >= 0


def test_finish_does_not_resurrect_a_failed_upload(upload):
    upload = upload_start_processing(upload_id=upload.pk)
    upload_fail(upload_id=upload.pk, reason="Broken.")

    assert not upload_finish(upload=upload, timings={})

    upload.refresh_from_db()
    assert (upload.status, upload.failure_reason) == (Upload.Status.FAILED, "Broken.")


def test_fail_leaves_a_done_upload_alone(upload):
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.DONE, finished_at=timezone.now())

    assert not upload_fail(upload_id=upload.pk, reason="Too late.")

    upload.refresh_from_db()
    assert (upload.status, upload.failure_reason) == (Upload.Status.DONE, "")


def test_the_stored_photo_goes_first_then_the_row(upload):
    path = upload.image.path

    upload_image_delete(upload=upload)

    assert not Path(path).exists()
    assert Upload.objects.filter(pk=upload.pk).exists()
    upload_delete(upload=upload)
    assert not Upload.objects.filter(pk=upload.pk).exists()


def test_discard_removes_the_row_even_when_the_file_cannot_be_removed(upload, settings, caplog):
    path = Path(settings.MEDIA_ROOT) / upload.image.name
    path.unlink()
    path.mkdir()  # a non-empty directory where the file was: the storage cannot delete it
    (path / "stuck").write_bytes(b"x")

    upload_discard(upload=upload)

    assert not Upload.objects.filter(pk=upload.pk).exists()
    assert f"could not remove {upload.image.name}" in caplog.text
