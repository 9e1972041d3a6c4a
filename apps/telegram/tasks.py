"""The bot's Celery tasks (queue ``celery``: network I/O, no model work). Each takes an ``update_id``."""

import inspect
import logging

from celery import Task, shared_task

from apps.telegram import services
from apps.telegram.bot_api import BotApiError, BotApiRateLimited, BotApiUnavailable
from apps.uploads.tasks import INFRASTRUCTURE_ERRORS, TIME_LIMIT_ERRORS

logger = logging.getLogger(__name__)


class TelegramTask(Task):
    """Base of the bot's tasks.

    An unreachable or failing Bot API (or one of our own services) is retried 2, 4, 8 ... s apart,
    up to 5 minutes, 8 times; a 429 waits as long as Telegram says. When the retries run out, or
    the API refuses the request, the update's reply is marked failed with the reason, so it never
    stays pending for ever.
    """

    autoretry_for = (BotApiUnavailable, *INFRASTRUCTURE_ERRORS)
    retry_backoff = 2
    retry_backoff_max = 300
    retry_jitter = True
    max_retries = 8

    def retry(self, args=None, kwargs=None, exc=None, throw=True, eta=None, countdown=None, **options):
        if isinstance(exc, BotApiRateLimited):
            countdown = exc.retry_after
        return super().retry(args=args, kwargs=kwargs, exc=exc, throw=throw, eta=eta, countdown=countdown, **options)

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        update_id = inspect.signature(self.run).bind(*args, **kwargs).arguments["update_id"]
        try:
            services.telegram_reply_fail(update_id=update_id, reason=_failure_reason(exc))
        except INFRASTRUCTURE_ERRORS:
            logger.exception("could not mark the reply to update %s failed after %s", update_id, self.name)


@shared_task(base=TelegramTask, name="telegram_update_handle")
def telegram_update_handle(update_id: int) -> None:
    services.telegram_update_handle(update_id=update_id)


@shared_task(base=TelegramTask, name="telegram_result_send")
def telegram_result_send(update_id: int) -> None:
    services.telegram_result_send(update_id=update_id)


@shared_task(name="telegram_updates_delete_expired")
def telegram_updates_delete_expired() -> int:
    """Daily (``CELERY_BEAT_SCHEDULE``): the updates past RETENTION_DAYS."""
    return services.telegram_updates_delete_expired()


def _failure_reason(exc: Exception) -> str:
    if isinstance(exc, BotApiUnavailable):
        return f"The Bot API stayed unavailable: {exc}"
    if isinstance(exc, BotApiError):
        return f"The Bot API refused: {exc}"
    if isinstance(exc, TIME_LIMIT_ERRORS):
        return f"Stopped after its time limit: {type(exc).__name__}"
    if isinstance(exc, INFRASTRUCTURE_ERRORS):
        return f"A service the bot depends on stayed unavailable: {type(exc).__name__}"
    return f"Internal error: {type(exc).__name__}"
