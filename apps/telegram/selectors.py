"""Reads of Telegram updates and the uploads they brought."""

from django.db.models import QuerySet

from apps.telegram.models import TelegramUpdate
from apps.uploads.models import Upload


def telegram_update_get(*, update_id: int) -> TelegramUpdate | None:
    """The update with its upload (if it brought a photo) and that upload's faces, in face order."""
    return (
        TelegramUpdate.objects.select_related("upload").prefetch_related("upload__faces").filter(pk=update_id).first()
    )


def telegram_update_id_for_upload(*, upload_id) -> int | None:
    """The update that brought this upload; None for uploads from other channels."""
    return TelegramUpdate.objects.filter(upload_id=upload_id).values_list("update_id", flat=True).first()


def telegram_chat_uploads(*, chat_id: int) -> QuerySet[Upload]:
    return Upload.objects.filter(telegram_update__chat_id=chat_id)
