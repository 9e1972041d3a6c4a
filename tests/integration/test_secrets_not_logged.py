"""The bot token, the webhook secret and API keys never reach a log, with every logger at DEBUG.

An API flow and a Telegram flow run against a real worker whose app, Django, Celery and httpx
loggers are at DEBUG (tests/integration/secrets_worker_settings.py); this process logs at DEBUG
too. Both logs are searched for every secret, whole and in part. httpx logs each request's URL,
and Bot API URLs hold the token: the logs must show those requests, with the token cut out.
"""

import logging
import os
import subprocess
import sys
from io import StringIO
from types import SimpleNamespace

import httpx
import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from devtools import devstack
from mairror.log_filters import REDACTED, RedactSecrets
from mairror.settings import BASE_DIR
from tests.apps.telegram.support import SECRET, TOKEN, photo_update, post_update, text_update, wait_for_reply
from tests.support import PIPELINE_TIMEOUT_SECONDS, app_env, photo_file, wait_until_finished

pytestmark = pytest.mark.django_db(transaction=True)

LIST_URL = "/api/v1/predictions"
DEBUG_LOGGERS = ("", "apps", "mairror", "django", "celery", "kombu", "redis", "httpx", "httpcore")


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
    assert "faces_estimate" in worker_log
    assert "telegram_update_handle" in worker_log


def test_the_web_servers_access_log_keeps_no_query_string(tmp_path, django_db_blocker):
    """Clients put keys in the URL (``?api_key=``, ``?secret_token=``): gunicorn's access log (uvicorn's
    lines) shows each request, its path and status, and none of its query string."""
    key = new_key("dave")
    with django_db_blocker.unblock():
        env = app_env(ALLOWED_HOSTS="127.0.0.1", TELEGRAM_WEBHOOK_SECRET=SECRET)
    web = devstack.start_web(env, devstack.free_port(), tmp_path / "web.log")
    try:
        for path in (
            f"/api/v1/predictions?api_key={key}",
            f"/telegram/webhook?secret_token={SECRET}",
            f"/healthz?token={TOKEN}&x=1",
        ):
            httpx.get(web.url + path, timeout=30)
    finally:
        web.stop()

    log = (tmp_path / "web.log").read_text(errors="replace")
    for secret in (key, key.split(".")[1], SECRET, TOKEN.split(":")[1]):
        assert secret not in log
    assert f'"GET /api/v1/predictions?{REDACTED} HTTP/1.1" 401' in log
    assert f'"GET /telegram/webhook?{REDACTED} HTTP/1.1" 405' in log
    assert f'"GET /healthz?{REDACTED} HTTP/1.1" 200' in log


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


def test_a_record_whose_arguments_do_not_fit_is_reported_by_logging_not_raised(bot_settings, capsys):
    key = new_key("carol")
    logger = logging.getLogger("tests.secrets.mismatched")
    stream = StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets())
    logger.addHandler(handler)
    logger.propagate = False
    try:
        # Each would raise TypeError out of the filter into the caller (a 500 on a request) if
        # the filter formatted the message unguarded.
        logger.warning(f"value %d while calling /bot{TOKEN}/getMe", "x")
        logger.warning("value %d sent with %s", "x", f"Api-Key {key}")
        logger.warning("value %d: %r", "x", SimpleNamespace(webhook_secret=SECRET))
        logger.warning("value %(count)d for %(key)s", {"count": "x", "key": key})
    finally:
        logger.removeHandler(handler)
        logger.propagate = True

    reported = capsys.readouterr().err  # logging's own "--- Logging error ---" reports
    assert reported.count("--- Logging error ---") == 4
    assert "TypeError" in reported
    assert TOKEN not in reported and SECRET not in reported and key.split(".")[1] not in reported
    assert f"/bot{REDACTED}/getMe" in reported and f"Api-Key {REDACTED}" in reported
    assert f"webhook_secret='{REDACTED}'" in reported
    assert stream.getvalue() == ""


SUBPROCESS_LOGGING = """
import logging

import django

django.setup()
logging.getLogger("django.request").warning("Not Found: /bot%s/getMe", TOKEN)
logging.getLogger("django.security.csrf").warning("refused Api-Key %s", KEY)
logging.getLogger("httpcore.http11").warning("sent to /bot%s/getUpdates", TOKEN)  # a child of httpcore
logging.getLogger("django.request").warning("value %d", "x")  # reported, not raised
print("still running", flush=True)
"""


def test_with_debug_on_django_and_httpcore_records_reach_the_console_only_redacted(bot_settings):
    key = f"AbCdEfGh.{'k' * 32}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mairror.settings",
        "DJANGO_DEBUG": "1",
        "LOG_LEVEL": "INFO",
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
    }
    code = f"TOKEN = {TOKEN!r}\nKEY = {key!r}\n{SUBPROCESS_LOGGING}"

    run = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=120
    )

    assert run.returncode == 0, run.stderr
    assert run.stdout == "still running\n"
    log = run.stderr
    assert TOKEN not in log and TOKEN.split(":")[1] not in log and key not in log and "k" * 32 not in log
    # Once each: Django's default console handler (unredacted) no longer prints "django" records too.
    assert log.count(f"Not Found: /bot{REDACTED}/getMe") == 1
    assert log.count(f"refused Api-Key {REDACTED}") == 1
    assert log.count(f"sent to /bot{REDACTED}/getUpdates") == 1
    assert log.count("--- Logging error ---") == 1
