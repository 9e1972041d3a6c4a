"""The bot token, the webhook secret and API keys never reach a log, with every logger at DEBUG.

An API flow and a Telegram flow run against a real worker whose app, Django, Celery and httpx
loggers are at DEBUG (tests/integration/secrets_worker_settings.py); this process logs at DEBUG
too. Both logs are searched for every secret, whole and in part. httpx logs each request's URL,
and Bot API URLs hold the token: the logs must show those requests, with the token cut out.
"""

import logging
import sys
from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from mairror.log_filters import REDACTED, RedactSecrets
from tests.apps.telegram.fake_bot_api import FakeBotApi
from tests.apps.telegram.support import SECRET, TOKEN, photo_update, post_update, text_update, wait_for_reply
from tests.support import PIPELINE_TIMEOUT_SECONDS, photo_file, wait_until_finished

pytestmark = pytest.mark.django_db(transaction=True)

LIST_URL = "/api/v1/predictions"
DEBUG_LOGGERS = ("", "apps", "mairror", "django", "celery", "kombu", "redis", "httpx", "httpcore")


@pytest.fixture(scope="module")
def fake_api():
    with FakeBotApi(TOKEN) as api:
        yield api


@pytest.fixture(scope="module")
def worker_env(fake_api):
    return {
        "DJANGO_SETTINGS_MODULE": "tests.integration.secrets_worker_settings",
        "LOG_LEVEL": "DEBUG",
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "TELEGRAM_API_BASE": fake_api.url,
    }


@pytest.fixture
def debug_logs(caplog):
    for name in DEBUG_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


@pytest.fixture
def bot_settings(settings, fake_api):
    settings.TELEGRAM_BOT_TOKEN = TOKEN
    settings.TELEGRAM_WEBHOOK_SECRET = SECRET
    settings.TELEGRAM_API_BASE = fake_api.url


def new_key(name: str) -> str:
    out = StringIO()
    call_command("create_api_key", name, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def api_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def test_no_secret_reaches_a_log_at_debug(worker, debug_logs, bot_settings, client, fake_api, one_face_jpeg):
    # The API: upload, wait, list, delete; a revoked key and a wrong one are refused (and logged as such).
    key, revoked_key = new_key("alice"), new_key("old laptop")
    call_command("revoke_api_key", revoked_key.split(".")[0], stdout=StringIO())
    alice = api_client(key)
    created = alice.post(LIST_URL, {"image": photo_file(one_face_jpeg)}, format="multipart")
    assert created.status_code == 202
    upload_id = created.json()["id"]
    assert wait_until_finished(upload_id).status == "done"
    assert alice.get(f"{LIST_URL}/{upload_id}", {"wait": "1"}).json()["status"] == "done"
    assert alice.get(LIST_URL).status_code == 200
    assert api_client(revoked_key).get(LIST_URL).status_code == 401
    assert api_client(f"{key.split('.')[0]}.{'x' * 32}").get(LIST_URL).status_code == 401
    assert alice.delete(f"{LIST_URL}/{upload_id}").status_code == 204

    # The bot: the webhook is set, a photo is answered, the chat is forgotten; a forged update is refused.
    call_command("telegram_set_webhook", "https://mairror.example/telegram/webhook", stdout=StringIO())
    photo = photo_update(fake_api.add_file(one_face_jpeg), size=None)
    assert post_update(client, photo).status_code == 200
    assert wait_for_reply(photo["update_id"], timeout=PIPELINE_TIMEOUT_SECONDS).reply_status == "sent"
    forget = text_update("/forget", chat_id=photo["message"]["chat"]["id"])
    assert post_update(client, forget).status_code == 200
    assert wait_for_reply(forget["update_id"]).reply_status == "sent"
    assert post_update(client, text_update("/help"), secret="wrong-" + SECRET).status_code == 403

    here = debug_logs.text
    worker_log = worker.log_file.read_text(errors="replace")
    secrets = {
        "bot token": TOKEN,
        "bot token's secret part": TOKEN.split(":")[1],
        "webhook secret": SECRET,
        "API key": key,
        "API key's secret part": key.split(".")[1],
        "revoked API key's secret part": revoked_key.split(".")[1],
    }
    for log_name, log in (("this process's log", here), ("the worker's log", worker_log)):
        leaked = [name for name, secret in secrets.items() if secret in log]
        assert not leaked, f"{log_name} shows the {', '.join(leaked)}"
    # The logs did cover the work, URLs with a token included: it was cut out.
    assert f"/bot{REDACTED}/setWebhook" in here
    assert "Unauthorized: /api/v1/predictions" in here and "Forbidden: /telegram/webhook" in here
    assert f"/bot{REDACTED}/sendPhoto" in worker_log and f"/file/bot{REDACTED}/" in worker_log
    assert "apps.predictions.tasks.predict_ages" in worker_log
    assert "apps.telegram.tasks.telegram_handle_update" in worker_log


def test_the_filter_cuts_secrets_out_of_messages_arguments_and_tracebacks(bot_settings):
    key = new_key("bob")
    try:
        raise RuntimeError(f"while calling /bot{TOKEN}/getMe with {SECRET}")
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("any", logging.ERROR, __file__, 1, "sent %s to %s", (f"Api-Key {key}", "x"), exc_info)

    assert RedactSecrets().filter(record) is True

    text = logging.Formatter().format(record)
    assert TOKEN not in text and SECRET not in text and key.split(".")[1] not in text
    assert f"sent Api-Key {REDACTED} to x" in text
    assert f"while calling /bot{REDACTED}/getMe with {REDACTED}" in text
