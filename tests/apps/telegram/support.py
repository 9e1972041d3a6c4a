"""Telegram updates to post to the webhook, and waiting for the bot's reply (fixtures live in conftest.py)."""

import itertools
import random
import time

from apps.telegram.models import TelegramUpdate

TOKEN = "123456789:AAE-test_token_that_must_never_be_logged"
SECRET = "webhook-secret_for-tests"
WEBHOOK_URL = "/telegram/webhook"

_ids = itertools.count(random.randrange(10**8, 9 * 10**8))


def next_id() -> int:
    """A fresh update, chat or message id: tests never see each other's updates."""
    return next(_ids)


def message_update(chat_id: int | None = None, chat_type: str = "private", **message) -> dict:
    chat_id = chat_id or next_id()
    return {
        "update_id": next_id(),
        "message": {
            "message_id": next_id(),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": chat_type},
            "from": {"id": chat_id, "is_bot": False, "first_name": "Test"},
            **message,
        },
    }


def text_update(text: str, **kwargs) -> dict:
    return message_update(text=text, **kwargs)


def photo_update(file_id: str, size: int | None, **kwargs) -> dict:
    """A photo as Telegram sends it: several sizes, the largest last (with ``size`` bytes, if given)."""
    largest = {"file_id": file_id, "file_unique_id": file_id, "width": 512, "height": 512}
    if size is not None:
        largest["file_size"] = size
    thumbnail = {"file_id": "thumbnail", "file_unique_id": "thumbnail", "width": 90, "height": 90, "file_size": 2000}
    return message_update(photo=[thumbnail, largest], **kwargs)


def document_update(file_id: str, size: int | None, mime_type: str, **kwargs) -> dict:
    document = {"file_id": file_id, "file_unique_id": file_id, "file_name": "file", "mime_type": mime_type}
    if size is not None:
        document["file_size"] = size
    return message_update(document=document, **kwargs)


def chat_of(update: dict) -> int:
    return update["message"]["chat"]["id"]


def post_update(client, update: dict, secret: str | None = SECRET):
    headers = {} if secret is None else {"HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": secret}
    return client.post(WEBHOOK_URL, update, content_type="application/json", **headers)


def wait_for_reply(update_id: int, timeout: float = 60) -> TelegramUpdate:
    """The update once its reply is no longer pending (sent, failed, or nothing to answer)."""
    deadline = time.monotonic() + timeout
    while True:
        update = TelegramUpdate.objects.filter(pk=update_id).first()
        if update is not None and update.reply_status != TelegramUpdate.ReplyStatus.PENDING:
            return update
        if time.monotonic() > deadline:
            raise AssertionError(f"update {update_id}: reply still pending after {timeout:.0f}s")
        time.sleep(0.2)
