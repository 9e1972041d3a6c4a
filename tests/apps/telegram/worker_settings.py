"""Settings of the telegram tests' worker: the real ones, with the bot's retries a second apart instead of
up to minutes, so that "the Bot API stays down" ends in seconds (test_tasks checks the real schedule)."""

from mairror.settings import *  # noqa: F403

CELERY_TASK_ANNOTATIONS = {
    name: {"retry_backoff_max": 1, "max_retries": 3} for name in ("telegram_update_handle", "telegram_result_send")
}
