"""The webhook view: the secret, idempotency by update_id, and handing the work to a task (recorded here, not run).

Transactional, so that the view's on-commit queueing runs inside the request, as in production."""

import kombu.exceptions
import pytest

from apps.telegram.models import TelegramUpdate
from apps.telegram.tasks import telegram_update_handle
from tests.apps.telegram.support import SECRET, WEBHOOK_URL, post_update, text_update

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


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '{"message": {}}', '{"update_id": "12"}'])
def test_a_body_that_is_not_an_update_is_refused(client, queued, body):
    response = client.post(
        WEBHOOK_URL, body, content_type="application/json", HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=SECRET
    )

    assert response.status_code == 400
    assert not TelegramUpdate.objects.exists()


def test_only_post(client):
    assert client.get(WEBHOOK_URL, HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=SECRET).status_code == 405
