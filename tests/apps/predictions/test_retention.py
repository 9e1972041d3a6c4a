"""Retention: photos and faces go after RETENTION_DAYS (file, MongoDB, SQL), unless kept for training, and so
does what of them an earlier failure left behind."""

import importlib
import logging
import os
import uuid
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from celery.schedules import crontab
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from apps.predictions import tasks
from apps.predictions.models import EstimateReview, FaceEstimate
from apps.predictions.services import estimate_review_create, uploads_delete_expired
from apps.uploads.models import UPLOADS_DIR, Upload
from apps.uploads.services import upload_create
from mairror.celery import app as celery_app
from tests.support import finish_with_faces

pytestmark = pytest.mark.django_db

UPLOADS = "/admin/uploads/upload/"
FACES = "/admin/predictions/faceestimate/"


@pytest.fixture
def make_upload(one_face_jpeg, faces):
    """An analysed upload with one face, ``age_days`` old; returns it with its face."""

    def make(age_days: float, kept: bool = False) -> tuple[Upload, FaceEstimate]:
        upload = upload_create(image=SimpleUploadedFile("a.jpg", one_face_jpeg), channel=Upload.Channel.WEB)
        [face] = finish_with_faces(upload, {})
        Upload.objects.filter(pk=upload.pk).update(
            created_at=timezone.now() - timedelta(days=age_days), kept_for_training=kept
        )
        upload.refresh_from_db()
        return upload, face

    return make


def is_everywhere(upload: Upload, faces) -> tuple[bool, bool, bool, bool]:
    """Whether the photo file, the face documents, the upload row and the face rows exist."""
    return (
        Path(upload.image.path).exists(),
        faces.count_documents({"upload_id": str(upload.pk)}) > 0,
        Upload.objects.filter(pk=upload.pk).exists(),
        FaceEstimate.objects.filter(upload_id=upload.pk).exists(),
    )


def test_old_uploads_are_deleted_everywhere_unless_kept_and_new_ones_stay(make_upload, faces, settings):
    settings.RETENTION_DAYS = 30
    old, _ = make_upload(31)
    kept, _ = make_upload(400, kept=True)
    new, _ = make_upload(29)

    deleted = uploads_delete_expired()

    assert (deleted.uploads, deleted.kept_for_training) == (1, 1)
    assert is_everywhere(old, faces) == (False, False, False, False)
    assert is_everywhere(kept, faces) == (True, True, True, True)
    assert is_everywhere(new, faces) == (True, True, True, True)
    assert uploads_delete_expired().uploads == 0  # a second run finds nothing more


def test_the_period_is_a_setting(make_upload, faces, settings):
    upload, _ = make_upload(3)

    settings.RETENTION_DAYS = 4
    assert uploads_delete_expired().uploads == 0
    settings.RETENTION_DAYS = 2
    assert uploads_delete_expired().uploads == 1
    assert is_everywhere(upload, faces) == (False, False, False, False)


def test_a_reviewed_face_keeps_its_upload(make_upload, admin_user, faces, settings):
    settings.RETENTION_DAYS = 30
    upload, face = make_upload(31)

    estimate_review_create(estimate=face, reviewer=admin_user)

    assert Upload.objects.get(pk=upload.pk).kept_for_training
    assert uploads_delete_expired().uploads == 0
    assert EstimateReview.objects.filter(estimate=face).exists()


def test_the_command_and_the_daily_task_delete_expired_uploads(make_upload, settings):
    settings.RETENTION_DAYS = 30
    first, _ = make_upload(31)
    make_upload(31, kept=True)
    out = StringIO()

    call_command("delete_expired_uploads", stdout=out)

    assert out.getvalue() == (
        "Deleted 1 uploads older than 30 days (1 as old are kept for training), "
        "and 0 face documents and 0 photo files left behind.\n"
    )
    assert not Upload.objects.filter(pk=first.pk).exists()
    second, _ = make_upload(31)
    result = tasks.uploads_delete_expired.apply().get()
    assert result == {"uploads": 1, "kept_for_training": 1, "face_documents": 0, "files": 0, "failed": 0}
    assert not Upload.objects.filter(pk=second.pk).exists()
    # At 03:30 every day, whenever beat (re)started: not 24 h after each start of its container.
    [entry] = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == tasks.uploads_delete_expired.name]
    assert entry["schedule"] == crontab(hour=3, minute=30)
    assert entry["options"]["expires"] == 24 * 3600
    assert tasks.uploads_delete_expired.name in celery_app.tasks


# --- what an earlier failure left behind ------------------------------------------------------------


def age(days: float):
    return timezone.now() - timedelta(days=days)


def test_face_documents_and_photo_files_of_no_upload_are_deleted_once_expired(make_upload, faces, settings):
    settings.RETENTION_DAYS = 30
    kept, _ = make_upload(400, kept=True)
    faces.insert_many(
        [
            {"upload_id": str(uuid.uuid4()), "face_index": 0, "created_at": age(31)},  # its upload is gone
            {"upload_id": str(uuid.uuid4()), "face_index": 0, "created_at": age(1)},  # maybe still detecting
        ]
    )
    faces.update_many({"upload_id": str(kept.pk)}, {"$set": {"created_at": age(400)}})
    media = Path(settings.MEDIA_ROOT) / UPLOADS_DIR
    old_orphan, new_orphan = media / "old-orphan.jpg", media / "new-orphan.jpg"
    for orphan in (old_orphan, new_orphan):
        orphan.write_bytes(b"x")
    os.utime(old_orphan, (age(31).timestamp(), age(31).timestamp()))
    os.utime(kept.image.path, (age(400).timestamp(), age(400).timestamp()))

    deleted = uploads_delete_expired()

    assert (deleted.face_documents, deleted.files, deleted.uploads) == (1, 1, 0)
    assert faces.count_documents({}) == 2  # the recent orphan's and the kept upload's
    assert is_everywhere(kept, faces) == (True, True, True, True)
    assert not old_orphan.exists() and new_orphan.exists()
    new_orphan.unlink()


# --- faces reviewed before uploads could be kept -------------------------------------------------


def unmarked_review(face: FaceEstimate, reviewer) -> EstimateReview:
    """A review as they were made before reviewing marked the upload kept: the upload is not kept."""
    review = EstimateReview.objects.create(
        estimate=face, reviewer=reviewer, confirmed=True, age=round(face.age_value), gender=face.gender_label
    )
    assert not Upload.objects.get(pk=face.upload_id).kept_for_training
    return review


def test_an_upload_with_a_reviewed_face_is_never_deleted_even_if_not_marked_kept(
    make_upload, admin_user, faces, settings
):
    settings.RETENTION_DAYS = 30
    reviewed, face = make_upload(31)
    unmarked_review(face, admin_user)
    plain, _ = make_upload(31)

    deleted = uploads_delete_expired()

    assert (deleted.uploads, deleted.kept_for_training, deleted.failed) == (1, 1, 0)
    assert is_everywhere(reviewed, faces) == (True, True, True, True)
    assert EstimateReview.objects.filter(estimate=face).exists()
    assert is_everywhere(plain, faces) == (False, False, False, False)


def test_the_migration_keeping_reviewed_uploads_ran_after_the_field_existed():
    """Its function runs only on the schema of its time (``prediction``, before 0005 renamed it): it was
    tried then, on the real models and on a copy of the development database (docs/hardening/security.md)."""
    migration = importlib.import_module("apps.predictions.migrations.0004_keep_reviewed_uploads")

    assert ("predictions", "0004_keep_reviewed_uploads") in MigrationRecorder(connection).applied_migrations()
    assert ("uploads", "0002_upload_faces_found_requeue_kept") in migration.Migration.dependencies


# --- an upload that cannot be deleted ------------------------------------------------------------


def test_an_upload_that_cannot_be_deleted_does_not_stop_the_others(make_upload, faces, settings, caplog):
    settings.RETENTION_DAYS = 30
    broken, _ = make_upload(33)  # the oldest: it comes first
    plain, _ = make_upload(32)
    # Where the photo was, a folder with a file in it: the storage's delete raises OSError.
    photo = Path(broken.image.path)
    photo.unlink()
    photo.mkdir()
    (photo / "in-the-way").write_bytes(b"x")

    with caplog.at_level(logging.ERROR, logger="apps.predictions.services"):
        deleted = uploads_delete_expired()

    assert (deleted.uploads, deleted.failed) == (1, 1)
    assert is_everywhere(plain, faces) == (False, False, False, False)
    # Its face documents went first; nothing in SQL goes before the photo, so the next run finds it.
    assert is_everywhere(broken, faces) == (True, False, True, True)
    [failure] = [r for r in caplog.records if r.getMessage() == f"retention: could not delete upload {broken.pk}"]
    assert failure.exc_info[0] is OSError

    # The command says so, and exits with status 1; once the storage can delete it, it goes.
    out = StringIO()
    with pytest.raises(CommandError, match="1 expired uploads could not be deleted"):
        call_command("delete_expired_uploads", stdout=out)
    assert out.getvalue() == (
        "Deleted 0 uploads older than 30 days (0 as old are kept for training), "
        "and 0 face documents and 0 photo files left behind.\n"
    )
    assert tasks.uploads_delete_expired.apply().get()["failed"] == 1
    (photo / "in-the-way").unlink()
    assert uploads_delete_expired() == type(deleted)(
        uploads=1, kept_for_training=0, face_documents=0, files=0, failed=0
    )
    assert not Upload.objects.filter(pk=broken.pk).exists()


# --- keeping in the admin ------------------------------------------------------------------------


@pytest.fixture
def reviewer_client(client, django_user_model):
    user = django_user_model.objects.create_user("rita", password="not-used", is_staff=True)
    user.groups.add(Group.objects.get(name="Reviewers"))
    client.force_login(user)
    return client


def test_reviewers_keep_uploads_for_training_and_stop_keeping_them(reviewer_client, make_upload):
    upload, face = make_upload(1)
    other, _ = make_upload(1)

    assert "keep_for_training" in reviewer_client.get(UPLOADS).content.decode()
    reviewer_client.post(UPLOADS, {"action": "keep_for_training", "_selected_action": [upload.pk], "index": "0"})
    assert list(Upload.objects.filter(kept_for_training=True).values_list("pk", flat=True)) == [upload.pk]

    reviewer_client.post(FACES, {"action": "stop_keeping", "_selected_action": [face.pk], "index": "0"})
    assert not Upload.objects.filter(kept_for_training=True).exists()

    reviewer_client.post(FACES, {"action": "keep_for_training", "_selected_action": [face.pk], "index": "0"})
    page = reviewer_client.get(f"{UPLOADS}?kept_for_training__exact=1").content.decode()
    assert str(upload.pk) in page and str(other.pk) not in page


def test_staff_who_are_not_reviewers_cannot_keep(client, django_user_model, make_upload):
    viewer = django_user_model.objects.create_user("vic", password="not-used", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_upload"))
    client.force_login(viewer)
    upload, _ = make_upload(1)

    assert "keep_for_training" not in client.get(UPLOADS).content.decode()
    client.post(UPLOADS, {"action": "keep_for_training", "_selected_action": [upload.pk], "index": "0"})

    assert not Upload.objects.get(pk=upload.pk).kept_for_training
