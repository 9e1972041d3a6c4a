"""Listeners to other apps' signals (connected in TelegramConfig.ready)."""

import logging
from functools import partial

from django.db import transaction

from apps.telegram.selectors import telegram_update_id_for_upload

logger = logging.getLogger(__name__)


def reply_when_analysed(sender, upload_id, **kwargs) -> None:
    """``upload_finished``: queue the reply to the Telegram photo this upload came from, if it did."""
    from apps.telegram import tasks  # the task module imports the services, which import us

    update_id = telegram_update_id_for_upload(upload_id=upload_id)
    if update_id is not None:
        # robust: a broker failure is logged here, not raised into the pipeline step that finished the upload.
        transaction.on_commit(partial(tasks.telegram_result_send.delay, update_id), robust=True)
