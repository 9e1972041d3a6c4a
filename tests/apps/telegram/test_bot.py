"""The bot end to end: webhook -> Redis -> a real Celery worker (download, MTCNN and the model, the reply)
-> the fake Bot API, which records what the user would see.

The worker runs tests.apps.telegram.worker_settings: the real settings with retries a second apart.
"""

import io
from pathlib import Path

import pytest
from PIL import Image

from apps.predictions.models import FaceEstimate
from apps.telegram import replies
from apps.telegram.models import TelegramUpdate
from apps.uploads.models import Upload
from tests.apps.telegram.fake_bot_api import DOWNLOAD
from tests.apps.telegram.support import (
    SECRET,
    TOKEN,
    chat_of,
    document_update,
    next_id,
    photo_update,
    post_update,
    text_update,
    wait_for_reply,
)
from tests.support import PIPELINE_TIMEOUT_SECONDS

pytestmark = pytest.mark.django_db(transaction=True)

MB = 1024 * 1024
RETRIES = 3  # worker_settings


@pytest.fixture(scope="module")
def worker_env(fake_api):
    return {
        "DJANGO_SETTINGS_MODULE": "tests.apps.telegram.worker_settings",
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "TELEGRAM_API_BASE": fake_api.url,
    }


@pytest.fixture
def send(client, worker):
    """Post an update to the webhook, as Telegram does, for the worker to handle."""

    def send(update: dict) -> dict:
        response = post_update(client, update)
        assert response.status_code == 200, response.content
        return update

    return send


def only_message(fake_api, update: dict, timeout: float = 60) -> str:
    [message] = fake_api.wait_for("sendMessage", chat_id=chat_of(update), timeout=timeout)
    assert message.reply_to == update["message"]["message_id"]
    wait_for_reply(update["update_id"])
    assert [r.status for r in fake_api.requests("sendMessage", chat_id=chat_of(update))][-1:] == [200]
    assert len(fake_api.wait_for("sendMessage", chat_id=chat_of(update), timeout=0)) == 1
    return message.fields["text"]


def test_a_photo_is_answered_with_its_faces_boxed_and_described(send, fake_api, one_face_jpeg):
    update = send(photo_update(fake_api.add_file(one_face_jpeg), size=len(one_face_jpeg)))

    [reply] = fake_api.wait_for("sendPhoto", chat_id=chat_of(update), timeout=PIPELINE_TIMEOUT_SECONDS)

    row = wait_for_reply(update["update_id"])
    assert row.reply_status == TelegramUpdate.ReplyStatus.SENT
    assert (row.upload.channel, row.upload.status) == (Upload.Channel.TELEGRAM, Upload.Status.DONE)
    face = FaceEstimate.objects.get(upload=row.upload)
    caption = reply.fields["caption"]
    assert caption.startswith(f"1 face found:\n1. Age {face.age_value:.0f}, {face.age_level:.0%} likely ")
    assert caption.endswith(f"; {face.gender_label}, {face.gender_probability:.0%} likely")
    assert reply.reply_to == update["message"]["message_id"]
    assert Image.open(io.BytesIO(reply.files["photo"])).size == (512, 512)
    assert len(fake_api.requests("sendPhoto")) == 1
    assert fake_api.requests("sendMessage") == []


def test_a_redelivered_update_is_acknowledged_and_handled_once(client, send, fake_api, one_face_jpeg):
    update = photo_update(fake_api.add_file(one_face_jpeg), size=len(one_face_jpeg))

    for _ in range(3):
        send(update)

    fake_api.wait_for("sendPhoto", chat_id=chat_of(update), timeout=PIPELINE_TIMEOUT_SECONDS)
    wait_for_reply(update["update_id"])
    assert post_update(client, update).status_code == 200  # after the reply, too
    assert Upload.objects.filter(telegram_update__chat_id=chat_of(update)).count() == 1
    assert len(fake_api.requests("getFile")) == 1
    assert len(fake_api.requests("sendPhoto")) == 1


def test_an_image_file_without_faces_is_answered_plainly(send, fake_api, no_face_jpeg):
    update = send(document_update(fake_api.add_file(no_face_jpeg), size=len(no_face_jpeg), mime_type="image/jpeg"))

    assert only_message(fake_api, update, timeout=PIPELINE_TIMEOUT_SECONDS) == replies.NO_FACE
    assert fake_api.requests("sendPhoto") == []


def test_a_file_that_is_not_an_image_is_refused_unread(send, fake_api):
    update = send(document_update(fake_api.add_file(b"%PDF-1.7"), size=8, mime_type="application/pdf"))

    assert only_message(fake_api, update) == replies.NOT_AN_IMAGE
    assert fake_api.requests("getFile") == []


@pytest.mark.parametrize(
    ("announced", "actual", "reply"),
    [(25 * MB, 25 * MB, replies.TOO_LARGE_FOR_TELEGRAM), (None, 18 * MB, "The file is larger than 15.0\xa0MB.")],
)
def test_an_oversized_file_is_refused_and_never_downloaded(send, fake_api, announced, actual, reply):
    update = send(photo_update(fake_api.add_file(b"\xff\xd8", size=actual), size=announced))

    assert only_message(fake_api, update) == reply
    assert fake_api.requests(DOWNLOAD) == []
    assert not Upload.objects.exists()


def test_start_help_and_forget(send, fake_api, one_face_jpeg, faces):
    chat = next_id()
    assert only_message(fake_api, send(text_update("/start", chat_id=chat))) == replies.help_text()
    photo = send(photo_update(fake_api.add_file(one_face_jpeg), size=None, chat_id=chat))
    fake_api.wait_for("sendPhoto", chat_id=chat, timeout=PIPELINE_TIMEOUT_SECONDS)
    upload = wait_for_reply(photo["update_id"]).upload
    assert faces.count_documents({"upload_id": str(upload.pk)}) == 1
    fake_api.reset()

    assert only_message(fake_api, send(text_update("/forget", chat_id=chat))) == replies.FORGOTTEN.format(count=1)

    assert not Path(upload.image.path).exists()
    assert faces.count_documents({"upload_id": str(upload.pk)}) == 0
    assert not Upload.objects.exists()
    assert not FaceEstimate.objects.exists()
    assert not TelegramUpdate.objects.filter(chat_id=chat).exists()
    fake_api.reset()
    assert only_message(fake_api, send(text_update("/help", chat_id=chat))) == replies.help_text()
    assert only_message(fake_api, send(text_update("what is this?"))) == replies.HINT


def test_a_rate_limited_reply_waits_as_long_as_telegram_says(send, fake_api):
    fake_api.fail("sendMessage", status=429, retry_after=2, times=1)

    update = send(text_update("/help"))

    assert only_message(fake_api, update) == replies.help_text()
    limited, sent = fake_api.requests("sendMessage", chat_id=chat_of(update))
    assert (limited.status, sent.status) == (429, 200)
    assert sent.at - limited.at >= 1.9


def test_an_api_that_stays_down_is_retried_then_the_reply_fails_with_the_reason(send, fake_api):
    fake_api.fail(status=500)

    update = send(text_update("/help"))

    row = wait_for_reply(update["update_id"])
    assert row.reply_status == TelegramUpdate.ReplyStatus.FAILED
    assert row.reply_failure_reason == "The Bot API stayed unavailable: sendMessage: HTTP 500"
    assert len(fake_api.requests("sendMessage")) == 1 + RETRIES


def test_a_photo_reply_that_cannot_be_sent_fails_with_the_reason(send, fake_api, one_face_jpeg):
    fake_api.fail("sendPhoto", status=502)

    update = send(photo_update(fake_api.add_file(one_face_jpeg), size=None))

    row = wait_for_reply(update["update_id"], timeout=PIPELINE_TIMEOUT_SECONDS)
    assert row.reply_status == TelegramUpdate.ReplyStatus.FAILED
    assert row.reply_failure_reason == "The Bot API stayed unavailable: sendPhoto: HTTP 502"
    assert row.upload.status == Upload.Status.DONE
    assert len(fake_api.requests("sendPhoto")) == 1 + RETRIES


def test_the_token_never_reaches_the_worker_log(worker):
    log = worker.log_file.read_text(errors="replace")
    assert "telegram_result_send" in log  # the log does cover the bot's work
    assert TOKEN not in log
    assert TOKEN.split(":")[1] not in log
