"""The Bot API client against the fake server: results, errors to retry or not, and no token in messages."""

import pytest

from apps.telegram.bot_api import BotApi, BotApiError, BotApiRateLimited, BotApiUnavailable, DownloadTooLarge, bot_api
from devtools import devstack
from tests.apps.telegram.fake_bot_api import DOWNLOAD
from tests.apps.telegram.support import TOKEN


def test_send_photo_is_multipart_with_the_caption_and_reply(fake_api):
    with bot_api() as api:
        api.send_photo(42, b"\xff\xd8jpeg", caption="1 face found", reply_to=7)

    [request] = fake_api.requests("sendPhoto")
    assert (request.chat_id, request.fields["caption"], request.reply_to) == (42, "1 face found", 7)
    assert request.files == {"photo": b"\xff\xd8jpeg"}


def test_get_file_and_download(fake_api):
    file_id = fake_api.add_file(b"image bytes")

    with bot_api() as api:
        file = api.get_file(file_id)
        data = api.download(file["file_path"], max_bytes=100)

    assert (file["file_size"], data) == (11, b"image bytes")


def test_download_stops_past_the_limit(fake_api):
    file_id = fake_api.add_file(b"x" * 5000, size=10)  # the announced size lies

    with bot_api() as api, pytest.raises(DownloadTooLarge):
        api.download(api.get_file(file_id)["file_path"], max_bytes=1000)


def test_429_carries_retry_after(fake_api):
    fake_api.fail("sendMessage", status=429, retry_after=7, times=1)

    with bot_api() as api, pytest.raises(BotApiRateLimited) as raised:
        api.send_message(1, "hi")

    assert raised.value.retry_after == 7
    assert isinstance(raised.value, BotApiUnavailable)


@pytest.mark.parametrize("method", ["sendMessage", DOWNLOAD])
def test_server_errors_are_worth_retrying(fake_api, method):
    file_id = fake_api.add_file(b"data")
    fake_api.fail(method, status=502)

    with bot_api() as api, pytest.raises(BotApiUnavailable, match="HTTP 502"):
        api.send_message(1, "hi")
        api.download(api.get_file(file_id)["file_path"], max_bytes=100)


def test_client_errors_are_not(fake_api):
    fake_api.fail("sendMessage", status=403)

    with bot_api() as api, pytest.raises(BotApiError) as raised:
        api.send_message(1, "hi")

    assert (raised.value.status, raised.value.description) == (403, "Forbidden: bot was blocked by the user")
    assert not isinstance(raised.value, BotApiUnavailable)


def test_a_wrong_token_is_an_error_that_does_not_show_the_token(fake_api):
    with BotApi(token="987:wrong-token", base_url=fake_api.url) as api, pytest.raises(BotApiError) as raised:
        api.send_message(1, "hi")

    assert raised.value.status == 401
    assert "wrong-token" not in str(raised.value)


def test_an_unreachable_api_is_worth_retrying_and_the_message_has_no_token():
    with BotApi(token=TOKEN, base_url=f"http://127.0.0.1:{devstack.free_port()}") as api:
        with pytest.raises(BotApiUnavailable) as raised:
            api.send_message(1, "hi")
        with pytest.raises(BotApiUnavailable) as download:
            api.download("photos/a.jpg", max_bytes=10)

    assert str(raised.value).startswith("sendMessage: ConnectError")
    assert str(download.value).startswith("download: ConnectError")
    for error in (raised.value, download.value):
        assert TOKEN not in str(error)
        assert error.__cause__ is None and error.__suppress_context__  # no httpx error (with its URL) chained


def test_no_token_no_bot(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.TELEGRAM_BOT_TOKEN = ""

    with pytest.raises(ImproperlyConfigured):
        bot_api()
