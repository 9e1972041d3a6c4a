"""Retention: photos and faces go after RETENTION_DAYS (file, MongoDB, SQL), unless kept for training."""

import importlib
import logging
from datetime import timedelta
from io import StringIO
from pathlib import Path
from types import SimpleNamespace

import pytest
from celery.schedules import crontab
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from apps.predictions import tasks
from apps.predictions.models import FacePrediction, PredictionReview
from apps.predictions.services import expired_data_delete, prediction_review_create
from apps.telegram.models import TelegramUpdate
from apps.uploads.models import Upload
from apps.uploads.services import upload_create
from mairror.celery import app as celery_app
from tests.support import finish_with_faces

pytestmark = pytest.mark.django_db

UPLOADS = "/admin/uploads/upload/"
FACES = "/admin/predictions/faceprediction/"


@pytest.fixture
def make_upload(one_face_jpeg, faces):
    """An analysed upload with one face, ``age_days`` old; returns it with its face."""

    def make(age_days: float, kept: bool = False) -> tuple[Upload, FacePrediction]:
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
        FacePrediction.objects.filter(upload_id=upload.pk).exists(),
    )


def test_old_uploads_are_deleted_everywhere_unless_kept_and_new_ones_stay(make_upload, faces, settings):
    settings.RETENTION_DAYS = 30
    old, _ = make_upload(31)
    kept, _ = make_upload(400, kept=True)
    new, _ = make_upload(29)

    deleted = expired_data_delete()

    assert (deleted.uploads, deleted.kept_for_training) == (1, 1)
    assert is_everywhere(old, faces) == (False, False, False, False)
    assert is_everywhere(kept, faces) == (True, True, True, True)
    assert is_everywhere(new, faces) == (True, True, True, True)
    assert expired_data_delete().uploads == 0  # a second run finds nothing more


def test_the_period_is_a_setting(make_upload, faces, settings):
    upload, _ = make_upload(3)

    settings.RETENTION_DAYS = 4
    assert expired_data_delete().uploads == 0
    settings.RETENTION_DAYS = 2
    assert expired_data_delete().uploads == 1
    assert is_everywhere(upload, faces) == (False, False, False, False)


def test_old_telegram_updates_are_purged_with_their_chat_ids(make_upload, settings):
    settings.RETENTION_DAYS = 30
    kept, _ = make_upload(31, kept=True)
    old = TelegramUpdate.objects.create(update_id=1, chat_id=42, message_id=7, upload=kept)
    recent = TelegramUpdate.objects.create(update_id=2, chat_id=42, message_id=8)
    TelegramUpdate.objects.filter(pk=old.pk).update(received_at=timezone.now() - timedelta(days=31))

    assert expired_data_delete().telegram_updates == 1

    assert list(TelegramUpdate.objects.values_list("pk", flat=True)) == [recent.pk]
    assert Upload.objects.filter(pk=kept.pk).exists()  # kept, no longer tied to the chat


def test_a_reviewed_face_keeps_its_upload(make_upload, admin_user, faces, settings):
    settings.RETENTION_DAYS = 30
    upload, face = make_upload(31)

    prediction_review_create(prediction=face, reviewer=admin_user)

    assert Upload.objects.get(pk=upload.pk).kept_for_training
    assert expired_data_delete().uploads == 0
    assert PredictionReview.objects.filter(prediction=face).exists()


def test_the_command_and_the_daily_task_delete_expired_uploads(make_upload, settings):
    settings.RETENTION_DAYS = 30
    first, _ = make_upload(31)
    make_upload(31, kept=True)
    out = StringIO()

    call_command("delete_expired_uploads", stdout=out)

    assert out.getvalue() == (
        "Deleted 1 uploads older than 30 days (1 as old are kept for training) and 0 Telegram updates.\n"
    )
    assert not Upload.objects.filter(pk=first.pk).exists()
    second, _ = make_upload(31)
    result = tasks.expired_data_delete.apply().get()
    assert result == {"uploads": 1, "kept_for_training": 1, "telegram_updates": 0, "failed": 0}
    assert not Upload.objects.filter(pk=second.pk).exists()
    # At 03:30 every day, whenever beat (re)started: not 24 h after each start of its container.
    [entry] = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == tasks.expired_data_delete.name]
    assert entry["schedule"] == crontab(hour=3, minute=30)
    assert entry["options"]["expires"] == 24 * 3600
    assert tasks.expired_data_delete.name in celery_app.tasks


# --- faces reviewed before uploads could be kept -------------------------------------------------


def unmarked_review(face: FacePrediction, reviewer) -> PredictionReview:
    """A review as they were made before reviewing marked the upload kept: the upload is not kept."""
    review = PredictionReview.objects.create(
        prediction=face, reviewer=reviewer, confirmed=True, age=round(face.age_value), gender=face.gender_label
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

    deleted = expired_data_delete()

    assert (deleted.uploads, deleted.kept_for_training, deleted.failed) == (1, 1, 0)
    assert is_everywhere(reviewed, faces) == (True, True, True, True)
    assert PredictionReview.objects.filter(prediction=face).exists()
    assert is_everywhere(plain, faces) == (False, False, False, False)


def test_the_migration_marks_uploads_reviewed_before_it_kept(make_upload, admin_user):
    migration = importlib.import_module("apps.predictions.migrations.0004_keep_reviewed_uploads")
    reviewed, face = make_upload(31)
    unmarked_review(face, admin_user)
    other, _ = make_upload(31)

    # The migration's function, on the real models and database connection.
    marked = migration.keep_reviewed_uploads(django_apps, SimpleNamespace(connection=connection))

    assert marked == 1
    assert Upload.objects.get(pk=reviewed.pk).kept_for_training
    assert not Upload.objects.get(pk=other.pk).kept_for_training
    assert migration.keep_reviewed_uploads(django_apps, SimpleNamespace(connection=connection)) == 0
    # It ran on this database too, after the migration that added the field.
    assert ("predictions", "0004_keep_reviewed_uploads") in MigrationRecorder(connection).applied_migrations()
    assert ("uploads", "0002_upload_faces_found_requeue_kept") in migration.Migration.dependencies


# --- an upload that cannot be deleted ------------------------------------------------------------


def test_an_upload_that_cannot_be_deleted_stops_neither_the_others_nor_the_telegram_purge(
    make_upload, faces, settings, caplog
):
    settings.RETENTION_DAYS = 30
    broken, _ = make_upload(33)  # the oldest: it comes first
    plain, _ = make_upload(32)
    # Where the photo was, a folder with a file in it: the storage's delete raises OSError.
    photo = Path(broken.image.path)
    photo.unlink()
    photo.mkdir()
    (photo / "in-the-way").write_bytes(b"x")
    update = TelegramUpdate.objects.create(update_id=1, chat_id=42, message_id=7)
    TelegramUpdate.objects.filter(pk=update.pk).update(received_at=timezone.now() - timedelta(days=31))

    with caplog.at_level(logging.ERROR, logger="apps.predictions.services"):
        deleted = expired_data_delete()

    assert (deleted.uploads, deleted.failed, deleted.telegram_updates) == (1, 1, 1)
    assert is_everywhere(plain, faces) == (False, False, False, False)
    assert Upload.objects.filter(pk=broken.pk).exists()
    assert not TelegramUpdate.objects.exists()
    [failure] = [r for r in caplog.records if r.getMessage() == f"retention: could not delete upload {broken.pk}"]
    assert failure.exc_info[0] is OSError

    # The command says so, and exits with status 1; once the storage can delete it, it goes.
    out = StringIO()
    with pytest.raises(CommandError, match="1 expired uploads could not be deleted"):
        call_command("delete_expired_uploads", stdout=out)
    assert out.getvalue() == (
        "Deleted 0 uploads older than 30 days (0 as old are kept for training) and 0 Telegram updates.\n"
    )
    assert tasks.expired_data_delete.apply().get()["failed"] == 1
    (photo / "in-the-way").unlink()
    assert expired_data_delete() == type(deleted)(uploads=1, kept_for_training=0, telegram_updates=0, failed=0)
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
