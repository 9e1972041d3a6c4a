"""Handling updates and replying, in this process against the fake Bot API (no worker, no model):
the analysis is stood in for by rows made here."""

import io
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from apps.predictions.models import FaceEstimate
from apps.telegram import replies, tasks
from apps.telegram.models import TelegramUpdate
from apps.telegram.services import (
    telegram_result_send,
    telegram_update_handle,
    telegram_update_receive,
)
from apps.uploads.models import Upload
from apps.uploads.services import upload_create, upload_fail
from tests.apps.telegram.fake_bot_api import DOWNLOAD
from tests.apps.telegram.support import chat_of, document_update, next_id, photo_update, text_update

pytestmark = pytest.mark.django_db

MB = 1024 * 1024


def handle(update: dict) -> TelegramUpdate:
    """Record the update as the webhook does, handle it as the task does, and return its row."""
    telegram_update_receive(update=update)  # queues on commit, which never comes inside a test transaction
    telegram_update_handle(update_id=update["update_id"])
    return TelegramUpdate.objects.get(pk=update["update_id"])


def only_message(fake_api, update: dict) -> str:
    [request] = fake_api.requests("sendMessage", chat_id=chat_of(update))
    assert request.reply_to == update["message"]["message_id"]
    return request.fields["text"]


@pytest.mark.parametrize("command", ["/start", "/help", "/help@MairrorBot", "/HELP please"])
def test_start_and_help_explain_the_bot_and_what_it_keeps(fake_api, command):
    update = text_update(command)

    row = handle(update)

    text = only_message(fake_api, update)
    assert text == replies.help_text()
    assert "/forget" in text and "keep" in text
    assert "(up to 15.0\xa0MB)" in text  # MAX_UPLOAD_BYTES, below Telegram's 20 MB
    assert (row.reply_status, row.payload) == (TelegramUpdate.ReplyStatus.SENT, {})
    assert row.handled_at is not None


def test_other_messages_get_a_hint_in_private_chats_and_nothing_in_groups(fake_api):
    private, group = text_update("hello"), text_update("hello all", chat_type="group")

    assert handle(private).reply_status == TelegramUpdate.ReplyStatus.SENT
    assert handle(group).reply_status == TelegramUpdate.ReplyStatus.NONE

    assert only_message(fake_api, private) == replies.HINT
    assert fake_api.requests(chat_id=chat_of(group)) == []


def test_an_update_is_handled_once(fake_api):
    update = text_update("/help")
    handle(update)

    telegram_update_handle(update_id=update["update_id"])

    assert len(fake_api.requests("sendMessage")) == 1


def test_a_photo_becomes_a_telegram_upload_of_its_largest_size(fake_api, one_face_jpeg):
    file_id = fake_api.add_file(one_face_jpeg)
    update = photo_update(file_id, size=len(one_face_jpeg))

    row = handle(update)

    upload = row.upload
    assert (upload.channel, upload.status, upload.width, upload.height) == ("telegram", "pending", 512, 512)
    stored = Image.open(upload.image.path)  # a clean re-encode of it (tests/apps/uploads/test_images.py)
    assert (stored.format, stored.size) == ("JPEG", (512, 512))
    assert (row.chat_id, row.message_id) == (chat_of(update), update["message"]["message_id"])
    assert (row.reply_status, row.payload) == (TelegramUpdate.ReplyStatus.PENDING, {})
    assert [r.fields["file_id"] for r in fake_api.requests("getFile")] == [file_id]
    assert len(fake_api.requests(DOWNLOAD)) == 1
    assert fake_api.requests("sendMessage") == []  # the answer comes when the analysis is over


def test_an_image_document_is_accepted_and_another_file_refused_unread(fake_api, one_face_jpeg):
    image = document_update(fake_api.add_file(one_face_jpeg), size=len(one_face_jpeg), mime_type="image/jpeg")
    pdf = document_update(fake_api.add_file(b"%PDF-1.7"), size=8, mime_type="application/pdf")

    assert handle(image).upload.channel == Upload.Channel.TELEGRAM
    assert handle(pdf).upload is None

    assert only_message(fake_api, pdf) == replies.NOT_AN_IMAGE
    assert len(fake_api.requests("getFile")) == 1


def test_a_file_that_is_no_image_after_all_gets_the_reason(fake_api):
    update = document_update(fake_api.add_file(b"just text"), size=9, mime_type="image/png")

    row = handle(update)

    assert row.upload is None and not Upload.objects.exists()
    assert only_message(fake_api, update) == "The file is not an image in a supported format."


@pytest.mark.parametrize(
    ("announced", "actual", "reply"),
    [
        (25 * MB, 25 * MB, replies.TOO_LARGE_FOR_TELEGRAM),  # refused from the update
        (None, 25 * MB, replies.TOO_LARGE_FOR_TELEGRAM),  # getFile refuses it, as Telegram does
        (None, 18 * MB, "The file is larger than 15.0\xa0MB."),  # getFile's size is over MAX_UPLOAD_BYTES
    ],
)
def test_large_files_are_refused_without_downloading_them(fake_api, announced, actual, reply):
    update = photo_update(fake_api.add_file(b"\xff\xd8", size=actual), size=announced)

    row = handle(update)

    assert only_message(fake_api, update) == reply
    assert fake_api.requests(DOWNLOAD) == []
    assert row.upload is None and not Upload.objects.exists()
    assert len(fake_api.requests("getFile")) == (0 if announced else 1)


def test_a_file_larger_than_announced_is_cut_off_while_downloading(fake_api, settings):
    settings.MAX_UPLOAD_BYTES = 1000
    update = photo_update(fake_api.add_file(b"\xff" * 5000, size=100), size=100)

    assert handle(update).upload is None

    assert only_message(fake_api, update) == "The file is larger than 1000\xa0bytes."


# --- replying with the result ---------------------------------------------------------------------


@pytest.fixture
def photo_sent(one_face_jpeg) -> TelegramUpdate:
    """A photo update whose upload is stored, linked and waiting for its analysis."""
    upload = upload_create(image=SimpleUploadedFile("a.jpg", one_face_jpeg), channel=Upload.Channel.TELEGRAM)
    update = photo_update("unused", size=1)
    return TelegramUpdate.objects.create(
        update_id=update["update_id"],
        chat_id=chat_of(update),
        message_id=update["message"]["message_id"],
        upload=upload,
    )


def finish(upload: Upload, faces: int) -> None:
    for index in range(faces):
        FaceEstimate.objects.create(
            upload=upload,
            face_index=index,
            mongo_face_id="0" * 24,
            box_x=180 + index,
            box_y=70,
            box_width=90,
            box_height=110,
            landmarks={},
            detection_confidence=0.99,
            age_value=31.2,
            age_low=25,
            age_high=38,
            age_level=0.8,
            gender_label="female",
            gender_probability=0.91,
            model_version="test",
        )
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.DONE)


def test_faces_are_answered_with_the_annotated_photo_and_a_caption(fake_api, photo_sent):
    finish(photo_sent.upload, faces=2)

    telegram_result_send(update_id=photo_sent.pk)
    telegram_result_send(update_id=photo_sent.pk)  # a redelivered task

    [request] = fake_api.requests("sendPhoto")
    assert (request.chat_id, request.reply_to) == (photo_sent.chat_id, photo_sent.message_id)
    assert request.fields["caption"] == replies.result_caption(list(photo_sent.upload.faces.all()))
    assert "1. Age 31, 80% likely 25–38; female, 91% likely" in request.fields["caption"]
    assert Image.open(io.BytesIO(request.files["photo"])).size == (512, 512)
    photo_sent.refresh_from_db()
    assert photo_sent.reply_status == TelegramUpdate.ReplyStatus.SENT
    assert photo_sent.replied_at is not None


def test_a_refused_photo_falls_back_to_a_text_answer(fake_api, photo_sent):
    finish(photo_sent.upload, faces=1)
    fake_api.fail("sendPhoto", status=400)

    telegram_result_send(update_id=photo_sent.pk)

    [message] = fake_api.requests("sendMessage", chat_id=photo_sent.chat_id)
    assert message.fields["text"].startswith("1 face found:\n1. Age 31")
    photo_sent.refresh_from_db()
    assert photo_sent.reply_status == TelegramUpdate.ReplyStatus.SENT


@pytest.mark.parametrize(
    ("status", "reason", "text"),
    [
        (Upload.Status.DONE, "", replies.NO_FACE),
        (Upload.Status.FAILED, "This file could not be read as a photo.", "This file could not be read as a photo."),
    ],
)
def test_no_face_or_a_failure_is_said_plainly(fake_api, photo_sent, status, reason, text):
    Upload.objects.filter(pk=photo_sent.upload_id).update(status=status, failure_reason=reason)

    telegram_result_send(update_id=photo_sent.pk)

    assert fake_api.requests("sendPhoto") == []
    [message] = fake_api.requests("sendMessage", chat_id=photo_sent.chat_id)
    assert message.fields["text"] == text


def test_the_reply_is_queued_when_a_telegram_upload_finishes(
    photo_sent, one_face_jpeg, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr(tasks.telegram_result_send, "delay", queued.append)
    other = upload_create(image=SimpleUploadedFile("b.jpg", one_face_jpeg), channel=Upload.Channel.API)

    with django_capture_on_commit_callbacks(execute=True):
        upload_fail(upload_id=other.pk, reason="x")
        upload_fail(upload_id=photo_sent.upload_id, reason="x")

    assert queued == [photo_sent.pk]


# --- /forget ----------------------------------------------------------------------------------------


def test_forget_deletes_everything_the_chat_sent_and_nothing_else(fake_api, one_face_jpeg, faces):
    chat, other_chat = next_id(), next_id()
    rows = [
        handle(photo_update(fake_api.add_file(one_face_jpeg), size=None, chat_id=c)) for c in (chat, chat, other_chat)
    ]
    faces.insert_many([{"upload_id": str(row.upload_id), "face_index": 0} for row in rows])
    files = [Path(row.upload.image.path) for row in rows]
    forget = text_update("/forget", chat_id=chat)

    handle(forget)

    assert only_message(fake_api, forget) == replies.FORGOTTEN.format(count=2)
    assert [path.exists() for path in files] == [False, False, True]
    assert list(Upload.objects.values_list("pk", flat=True)) == [rows[2].upload_id]
    assert faces.distinct("upload_id") == [str(rows[2].upload_id)]
    assert not TelegramUpdate.objects.filter(chat_id=chat).exists()  # the chat's updates keep only their ids
    assert TelegramUpdate.objects.filter(pk__in=[rows[0].pk, rows[1].pk, forget["update_id"]]).count() == 3
