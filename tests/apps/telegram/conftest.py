"""A fake Bot API for each module, and this process's settings pointed at it."""

import pytest

from tests.apps.telegram.support import SECRET, TOKEN


@pytest.fixture(autouse=True)
def telegram_settings(settings, fake_api):
    settings.TELEGRAM_BOT_TOKEN = TOKEN
    settings.TELEGRAM_WEBHOOK_SECRET = SECRET
    settings.TELEGRAM_API_BASE = fake_api.url
    fake_api.reset()
