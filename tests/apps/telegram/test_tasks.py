"""The bot's tasks' retries and failure state, run eagerly in this process (retries follow at once)."""

import pytest
from celery import Task

from apps.telegram.bot_api import BotApiRateLimited, BotApiUnavailable
from apps.telegram.models import TelegramUpdate
from apps.telegram.services import telegram_update_receive
from apps.telegram.tasks import TelegramTask, telegram_result_send, telegram_update_handle
from mairror import celery_app
from tests.apps.telegram.support import text_update

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("task", [telegram_update_handle, telegram_result_send])
def test_tasks_retry_for_minutes_and_acknowledge_late(task):
    assert BotApiUnavailable in task.autoretry_for
    assert (task.max_retries, task.retry_backoff, task.retry_backoff_max) == (8, 2, 300)
    assert task.acks_late and task.reject_on_worker_lost
    assert isinstance(task, TelegramTask)
    assert celery_app.amqp.router.route({}, task.name)["queue"].name == "celery"  # not "ml": no model work


def received(text: str) -> int:
    update = text_update(text)
    telegram_update_receive(update=update)
    return update["update_id"]


def test_an_api_that_stays_down_ends_in_a_failed_reply_with_the_reason(fake_api):
    fake_api.fail(status=500)
    update_id = received("/help")

    result = telegram_update_handle.apply(args=[update_id])

    assert result.failed()
    assert len(fake_api.requests("sendMessage")) == 1 + telegram_update_handle.max_retries
    row = TelegramUpdate.objects.get(pk=update_id)
    assert row.reply_status == TelegramUpdate.ReplyStatus.FAILED
    assert row.reply_failure_reason == "The Bot API stayed unavailable: sendMessage: HTTP 500"
    assert row.handled_at is not None and row.payload == {}


def test_a_refusal_is_not_retried(fake_api):
    fake_api.fail("sendMessage", status=403)
    update_id = received("/help")

    assert telegram_update_handle.apply(args=[update_id]).failed()

    assert len(fake_api.requests("sendMessage")) == 1
    row = TelegramUpdate.objects.get(pk=update_id)
    assert (
        row.reply_failure_reason == "The Bot API refused: sendMessage: HTTP 403 Forbidden: bot was blocked by the user"
    )


def test_a_rate_limit_waits_as_long_as_telegram_says(monkeypatch):
    countdowns = []
    monkeypatch.setattr(Task, "retry", lambda self, *args, countdown=None, **kwargs: countdowns.append(countdown))

    telegram_update_handle.retry(exc=BotApiRateLimited("sendMessage", 17), countdown=4)
    telegram_update_handle.retry(exc=BotApiUnavailable("sendMessage: HTTP 500"), countdown=4)

    assert countdowns == [17, 4]
