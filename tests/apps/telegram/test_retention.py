"""The bot deletes its own updates after RETENTION_DAYS, on a beat entry of its own."""

from datetime import timedelta
from io import StringIO

import pytest
from celery.schedules import crontab
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone

from apps.telegram import tasks
from apps.telegram.models import TelegramUpdate
from apps.telegram.services import telegram_updates_delete_expired
from apps.uploads.models import Upload
from apps.uploads.services import upload_create

pytestmark = pytest.mark.django_db


def old_update(update_id: int, days: float, **fields) -> TelegramUpdate:
    update = TelegramUpdate.objects.create(update_id=update_id, chat_id=42, message_id=update_id, **fields)
    TelegramUpdate.objects.filter(pk=update.pk).update(received_at=timezone.now() - timedelta(days=days))
    return update


def test_old_updates_are_deleted_with_their_chat_ids_and_their_photos_stay(settings, one_face_jpeg):
    settings.RETENTION_DAYS = 30
    kept = upload_create(image=SimpleUploadedFile("a.jpg", one_face_jpeg), channel=Upload.Channel.TELEGRAM)
    old_update(1, 31, upload=kept)
    recent = old_update(2, 29)

    assert telegram_updates_delete_expired() == 1

    assert list(TelegramUpdate.objects.values_list("pk", flat=True)) == [recent.pk]
    assert Upload.objects.filter(pk=kept.pk).exists()  # the uploads' retention decides about it


def test_the_command_and_the_daily_task(settings):
    settings.RETENTION_DAYS = 30
    old_update(1, 31)
    out = StringIO()

    call_command("delete_expired_telegram_updates", stdout=out)

    assert out.getvalue() == "Deleted 1 Telegram updates older than 30 days.\n"
    old_update(2, 31)
    assert tasks.telegram_updates_delete_expired.apply().get() == 1
    [entry] = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "telegram_updates_delete_expired"]
    assert entry["schedule"] == crontab(hour=3, minute=30)
    assert entry["options"]["expires"] == 24 * 3600
