"""The webhook view: the secret, idempotency by update_id, and handing the work to a task (recorded here, not run).

Transactional, so that the view's on-commit queueing runs inside the request, as in production."""

import kombu.exceptions
import pytest

from apps.telegram.models import TelegramUpdate
from apps.telegram.tasks import telegram_update_handle
from tests.apps.telegram.support import SECRET, WEBHOOK_URL, photo_update, post_update, text_update

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def queued(monkeypatch) -> list:
    """Update ids the view queued for handling."""
    ids = []
    monkeypatch.setattr(telegram_update_handle, "delay", ids.append)
    return ids


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x", SECRET.upper(), "é"])
def test_without_the_secret_nothing_is_stored_or_queued(client, queued, secret):
    response = post_update(client, text_update("/help"), secret=secret)

    assert response.status_code == 403
    assert not TelegramUpdate.objects.exists()
    assert queued == []


def test_an_unset_secret_turns_the_webhook_off(client, settings, queued):
    settings.TELEGRAM_WEBHOOK_SECRET = ""

    assert post_update(client, text_update("/help"), secret="").status_code == 403
    assert not TelegramUpdate.objects.exists()


def test_an_update_is_stored_and_queued_once_redeliveries_included(client, queued):
    update = text_update("/help")

    statuses = [post_update(client, update).status_code for _ in range(3)]

    assert statuses == [200, 200, 200]
    assert queued == [update["update_id"]]
    stored = TelegramUpdate.objects.get()
    assert (stored.update_id, stored.chat_id, stored.message_id) == (
        update["update_id"],
        update["message"]["chat"]["id"],
        update["message"]["message_id"],
    )
    assert stored.payload == update
    assert stored.reply_status == TelegramUpdate.ReplyStatus.PENDING


def test_an_unreachable_broker_gets_503_and_keeps_nothing(client, monkeypatch):
    def broker_down(update_id):
        raise kombu.exceptions.OperationalError("connection refused")

    monkeypatch.setattr(telegram_update_handle, "delay", broker_down)

    response = post_update(client, text_update("/help"))

    assert response.status_code == 503  # Telegram delivers it again
    assert not TelegramUpdate.objects.exists()


DEEP = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "not JSON"),
        ('{"update_id": 1, "deep": ' + DEEP + "}", "not JSON"),  # RecursionError in the decoder
        ("[1, 2]", "a JSON object"),
        ('{"message": {}}', "update_id"),
        ('{"update_id": "12"}', "update_id"),
        ('{"update_id": true}', "update_id"),  # a bool is an int in Python: was stored as update 1
        ('{"update_id": 12.5}', "update_id"),
        ('{"update_id": -1}', "update_id"),
        ('{"update_id": 9223372036854775808}', "update_id"),  # 2**63: OverflowError in SQL
        ('{"update_id": 7, "message": [1]}', "message"),
        ('{"update_id": 7, "message": {"message_id": 1, "chat": "me"}}', "message.chat"),
        ('{"update_id": 7, "message": {"message_id": 1, "chat": {"id": 1e3}}}', "message.chat.id"),
        ('{"update_id": 7, "message": {"message_id": 1, "chat": {"id": 1}, "text": 5}}', "message.text"),
        ('{"update_id": 7, "message": {"message_id": 1, "chat": {"id": 1}, "photo": {"a": 1}}}', "message.photo"),
        ('{"update_id": 7, "message": {"message_id": 1, "chat": {"id": 1}, "photo": [{"width": 9}]}}', "file_id"),
        ('{"update_id": 7, "message": {"message_id": 1, "chat": {"id": 1}, "document": []}}', "message.document"),
    ],
)
def test_a_body_that_is_not_an_update_is_refused_saying_why(client, queued, body, reason):
    response = client.post(
        WEBHOOK_URL, body, content_type="application/json", HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=SECRET
    )

    assert response.status_code == 400
    assert reason in response.content.decode()
    assert not TelegramUpdate.objects.exists()
    assert queued == []


def test_updates_the_bot_does_not_read_and_unknown_fields_still_pass(client, queued):
    edited = {"update_id": 900001, "edited_message": {"anything": [1, {"x": None}]}, "future_field": "x"}
    photo = photo_update("file-1", 2048)
    photo["message"]["caption"] = "me"

    assert post_update(client, edited).status_code == 200
    assert post_update(client, photo).status_code == 200
    assert queued == [900001, photo["update_id"]]


def test_only_post(client):
    assert client.get(WEBHOOK_URL, HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=SECRET).status_code == 405
