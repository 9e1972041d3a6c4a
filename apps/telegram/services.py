"""Writes of the Telegram bot: recording webhook updates, answering them, replying with results, forgetting a chat."""

import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

import kombu.exceptions
import redis.exceptions
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models.functions import Coalesce, Now
from django.utils import timezone

from apps.predictions.services import PredictionUnavailable, prediction_request, upload_erase
from apps.telegram import replies
from apps.telegram.bot_api import MAX_DOWNLOAD_BYTES, BotApi, BotApiError, DownloadTooLarge, bot_api
from apps.telegram.models import TelegramUpdate
from apps.telegram.selectors import telegram_chat_uploads, telegram_update_get
from apps.telegram.throttling import telegram_upload_wait
from apps.uploads.images import UploadRejected, clean_image, reject_oversized
from apps.uploads.models import Upload
from apps.uploads.selectors import upload_read_image

logger = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message"]
TOO_MANY_PHOTOS = "You sent many photos in a short time. Please send this one again in {seconds} seconds."
BROKER_ERRORS = (kombu.exceptions.OperationalError, redis.exceptions.ConnectionError)


class UpdateNotQueued(Exception):
    """The broker was unreachable: the update was not kept, so Telegram's redelivery gets a fresh start."""


@dataclass(frozen=True)
class IncomingImage:
    file_id: str
    size: int | None  # as the update announces it; may be missing


# A document that is not an image: refused without downloading it.
NOT_AN_IMAGE = object()


def telegram_update_receive(*, update: dict) -> None:
    """Record a webhook update and, once committed, queue its handling; a redelivered one is already
    recorded and left alone. Raises UpdateNotQueued when the broker is unreachable."""
    message = update.get("message") or {}
    # A redelivery's insert fails on the update id, which rolls back its on-commit queueing too.
    with contextlib.suppress(IntegrityError), transaction.atomic():
        TelegramUpdate.objects.create(
            update_id=update["update_id"],
            chat_id=(message.get("chat") or {}).get("id"),
            message_id=message.get("message_id"),
            payload=update,
        )
        transaction.on_commit(partial(_queue_handling, update_id=update["update_id"]))


def telegram_update_handle(*, update_id: int) -> None:
    """Answer an update: help, forgetting the chat, a refusal, or a photo queued for analysis
    (``telegram_result_send`` answers that one when the analysis is over).

    Idempotent: a handled update is left alone. A reply sent just before a crash may be sent
    again by the redelivered task: at least once rather than at most once.
    """
    update = telegram_update_get(update_id=update_id)
    if update is None or update.handled_at is not None:
        return
    message = update.payload.get("message") or {}
    command = _command(message)
    image = _incoming_image(message)
    if command is None and image is None and (message.get("chat") or {}).get("type") != "private":
        # Not a message (allowed_updates excludes those), or group chatter the bot was not asked about.
        _update_mark_handled(update_id=update_id, reply_status=TelegramUpdate.ReplyStatus.NONE)
        return
    with bot_api() as api:
        if command in ("start", "help"):
            text = replies.help_text()
        elif command == "forget":
            text = replies.FORGOTTEN.format(
                count=telegram_chat_forget(chat_id=update.chat_id, keep_update_id=update_id)
            )
        elif image is NOT_AN_IMAGE:
            text = replies.NOT_AN_IMAGE
        elif image is not None and (wait := telegram_upload_wait(chat_id=update.chat_id)) is not None:
            text = TOO_MANY_PHOTOS.format(seconds=wait)
        elif image is not None:
            text = _accept_image(api, update, image)
            if text is None:
                return  # queued for analysis
        else:
            text = replies.HINT
        api.send_message(update.chat_id, text, reply_to=update.message_id)
    forgotten = {"chat_id": None, "message_id": None} if command == "forget" else {}
    _update_mark_handled(update_id=update_id, reply_status=TelegramUpdate.ReplyStatus.SENT, **forgotten)


def telegram_result_send(*, update_id: int) -> None:
    """Reply to a photo whose analysis is over: the photo with boxes and a caption, or plainly why not.

    Idempotent: a reply already sent (or failed) is not sent again.
    """
    update = telegram_update_get(update_id=update_id)
    if update is None or update.reply_status != TelegramUpdate.ReplyStatus.PENDING or update.upload is None:
        return
    upload = update.upload
    if not upload.is_finished:
        return
    faces = list(upload.faces.all())
    chat_id, reply_to = update.chat_id, update.message_id
    with bot_api() as api:
        if upload.status == Upload.Status.FAILED:
            api.send_message(chat_id, upload.failure_reason or replies.COULD_NOT_READ, reply_to=reply_to)
        elif not faces:
            api.send_message(chat_id, replies.NO_FACE, reply_to=reply_to)
        else:
            caption = replies.result_caption(faces)
            photo = replies.annotated_photo(upload_read_image(upload=upload), faces)
            try:
                api.send_photo(chat_id, photo, caption=caption, reply_to=reply_to)
            except BotApiError as error:
                if error.status != 400:
                    raise
                logger.warning("update %s: sendPhoto refused (%s), answering with text", update_id, error)
                api.send_message(chat_id, caption, reply_to=reply_to)
    TelegramUpdate.objects.filter(pk=update_id, reply_status=TelegramUpdate.ReplyStatus.PENDING).update(
        reply_status=TelegramUpdate.ReplyStatus.SENT, replied_at=Now()
    )


def telegram_reply_fail(*, update_id: int, reason: str) -> None:
    """Give up on an update's reply, saying why; nothing more is done for it."""
    logger.warning("update %s: no reply sent: %s", update_id, reason)
    TelegramUpdate.objects.filter(pk=update_id, reply_status=TelegramUpdate.ReplyStatus.PENDING).update(
        reply_status=TelegramUpdate.ReplyStatus.FAILED,
        reply_failure_reason=reason,
        handled_at=Coalesce("handled_at", Now()),
        payload={},
    )


def telegram_chat_forget(*, chat_id: int, keep_update_id: int | None = None) -> int:
    """Delete every photo a chat sent (files, face documents, rows) and what its updates said; returns how
    many photos. ``keep_update_id`` (the /forget being answered) keeps its chat until it is answered."""
    uploads = list(telegram_chat_uploads(chat_id=chat_id))
    for upload in uploads:
        upload_erase(upload=upload)
    TelegramUpdate.objects.filter(chat_id=chat_id).exclude(pk=keep_update_id).update(
        chat_id=None, message_id=None, payload={}
    )
    return len(uploads)


def telegram_updates_delete_expired() -> int:
    """Delete the updates older than RETENTION_DAYS, which tie chats to messages and photos (a photo kept
    for training loses that tie, and /forget no longer finds it); returns how many."""
    cutoff = timezone.now() - timedelta(days=settings.RETENTION_DAYS)
    deleted, _ = TelegramUpdate.objects.filter(received_at__lt=cutoff).delete()
    logger.info("retention (%s days): %s Telegram updates deleted", settings.RETENTION_DAYS, deleted)
    return deleted


def telegram_webhook_set(*, url: str) -> None:
    """Point Telegram at our webhook, with the secret it must send back."""
    if not settings.TELEGRAM_WEBHOOK_SECRET:
        raise ImproperlyConfigured("TELEGRAM_WEBHOOK_SECRET is not set.")
    with bot_api() as api:
        api.set_webhook(url, secret_token=settings.TELEGRAM_WEBHOOK_SECRET, allowed_updates=ALLOWED_UPDATES)


def _queue_handling(*, update_id: int) -> None:
    from apps.telegram import tasks  # the task module imports this one

    try:
        tasks.telegram_update_handle.delay(update_id)
    except BROKER_ERRORS as error:
        logger.exception("could not queue update %s", update_id)
        TelegramUpdate.objects.filter(pk=update_id).delete()
        raise UpdateNotQueued from error


def _accept_image(api: BotApi, update: TelegramUpdate, image: IncomingImage) -> str | None:
    """Download the image and send it for analysis; None once queued, else the refusal to answer."""
    max_bytes = min(MAX_DOWNLOAD_BYTES, settings.MAX_UPLOAD_BYTES)
    refusal = _size_refusal(image.size)
    if refusal:
        return refusal
    try:
        file = api.get_file(image.file_id)
        refusal = _size_refusal(file.get("file_size"))
        if refusal:
            return refusal
        data = api.download(file["file_path"], max_bytes=max_bytes)
    except DownloadTooLarge:
        return _size_refusal(max_bytes + 1)
    except BotApiError as error:
        return replies.TOO_LARGE_FOR_TELEGRAM if "too big" in error.description else replies.NOT_DOWNLOADED
    try:
        # Decoded before the transaction, which holds SQLite's write lock.
        photo = clean_image(ContentFile(data, name="telegram"))
        # One transaction: the link exists before the analysis starts (on commit), so its end finds it.
        with transaction.atomic():
            upload = prediction_request(image=photo, channel=Upload.Channel.TELEGRAM)
            _update_mark_handled(update_id=update.pk, upload=upload)
    except UploadRejected as rejection:
        return rejection.message
    except PredictionUnavailable as unavailable:
        # Nothing of the photo was kept: put the update back as it came (it may have been marked
        # handled before the queueing failed) and retry on the infrastructure error underneath.
        TelegramUpdate.objects.filter(pk=update.pk).update(handled_at=None, upload=None, payload=update.payload)
        raise unavailable.__cause__ from unavailable
    return None


def _size_refusal(size: int | None) -> str | None:
    """What to answer to a file of this many bytes, before downloading it; None when it is acceptable."""
    if size is None:
        return None
    if size > MAX_DOWNLOAD_BYTES:
        return replies.TOO_LARGE_FOR_TELEGRAM
    try:
        reject_oversized(size)
    except UploadRejected as rejection:
        return rejection.message
    return None


def _update_mark_handled(*, update_id: int, **fields) -> None:
    TelegramUpdate.objects.filter(pk=update_id).update(handled_at=Now(), payload={}, **fields)


def _command(message: dict) -> str | None:
    """``help`` for "/help", "/help@SomeBot" or "/help me"; None when the message is not a command."""
    text = message.get("text") or ""
    words = text[1:].split(maxsplit=1) if text.startswith("/") else []
    return words[0].split("@")[0].lower() if words else None


def _incoming_image(message: dict) -> IncomingImage | object | None:
    """The photo's largest size, an image sent as a file, NOT_AN_IMAGE for another file, or None."""
    if message.get("photo"):
        largest = max(message["photo"], key=lambda size: size.get("width", 0) * size.get("height", 0))
        return IncomingImage(largest["file_id"], largest.get("file_size"))
    document = message.get("document")
    if document:
        if not (document.get("mime_type") or "").startswith("image/"):
            return NOT_AN_IMAGE
        return IncomingImage(document["file_id"], document.get("file_size"))
    return None
