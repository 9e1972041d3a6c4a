from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.apps.telegram.support import SECRET, TOKEN

URL = "https://mairror.example.org/telegram/webhook"


def test_set_webhook_registers_the_url_with_the_secret(fake_api):
    out = StringIO()

    call_command("telegram_set_webhook", URL, stdout=out)

    [request] = fake_api.requests("setWebhook")
    assert request.fields == {"url": URL, "secret_token": SECRET, "allowed_updates": ["message"]}
    assert URL in out.getvalue() and TOKEN not in out.getvalue()


def test_set_webhook_needs_a_secret(fake_api, settings):
    settings.TELEGRAM_WEBHOOK_SECRET = ""

    with pytest.raises(CommandError, match="TELEGRAM_WEBHOOK_SECRET"):
        call_command("telegram_set_webhook", URL)
    assert fake_api.requests() == []


def test_set_webhook_says_why_telegram_refused(fake_api):
    fake_api.fail("setWebhook", status=400)

    with pytest.raises(CommandError, match="setWebhook: HTTP 400 Bad Request"):
        call_command("telegram_set_webhook", "http://insecure.example.org/")
