"""Change events on the session's real Redis: published once a change is committed, every wait bounded."""

import asyncio
import time
import uuid

import pytest
import redis
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from apps.uploads import events
from apps.uploads.events import publish_upload_changed, upload_changes, upload_channel, wait_for_upload_change
from apps.uploads.models import Upload
from apps.uploads.services import (
    upload_create,
    upload_delete,
    upload_fail,
    upload_finish,
    upload_record_timings,
    upload_start_processing,
)
from devtools.devstack import free_port


def run(coroutine):
    return asyncio.run(coroutine)


def test_a_waiter_wakes_on_a_change_published_while_it_waits():
    upload_id = uuid.uuid4()

    async def scenario():
        async with upload_changes(upload_id) as changes:
            await asyncio.to_thread(publish_upload_changed, upload_id)
            started = time.monotonic()
            woke = await changes.wait(5)
            return woke, time.monotonic() - started

    woke, seconds = run(scenario())

    assert woke and seconds < 1


def test_a_wait_ends_at_its_timeout_without_a_change():
    started = time.monotonic()

    assert run(wait_for_upload_change(uuid.uuid4(), 0.3)) is False
    assert 0.25 < time.monotonic() - started < 2


def test_other_uploads_changes_do_not_wake_a_waiter():
    async def scenario():
        async with upload_changes(uuid.uuid4()) as changes:
            await asyncio.to_thread(publish_upload_changed, uuid.uuid4())
            return await changes.wait(0.3)

    assert run(scenario()) is False


def test_the_subscription_is_gone_after_the_block():
    upload_id = uuid.uuid4()
    client = redis.Redis.from_url(settings.REDIS_URL)

    async def scenario():
        async with upload_changes(upload_id):
            return client.pubsub_numsub(upload_channel(upload_id))[0][1]

    assert run(scenario()) == 1
    deadline = time.monotonic() + 2  # Redis handles the closed connection on its own time
    while client.pubsub_numsub(upload_channel(upload_id))[0][1] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.pubsub_numsub(upload_channel(upload_id))[0][1] == 0


def test_without_redis_waits_stay_bounded_and_publishing_does_not_raise(caplog):
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"):
        publish_upload_changed(uuid.uuid4())
        started = time.monotonic()

        async def scenario():
            async with upload_changes(uuid.uuid4()) as changes:
                return await changes.wait(0.4)

        assert run(scenario()) is True  # "look again": the caller reads the upload itself
        assert time.monotonic() - started < 4
    events._publisher = None
    assert "could not publish" in caplog.text and "no change events" in caplog.text


@pytest.mark.django_db
def test_each_change_of_an_upload_is_published_once_committed(one_face_jpeg, django_capture_on_commit_callbacks):
    published = []
    upload = upload_create(image=SimpleUploadedFile("me.jpg", one_face_jpeg), channel=Upload.Channel.API)
    upload_id = upload.pk
    steps = [
        lambda: upload_start_processing(upload_id=upload.pk),
        lambda: upload_record_timings(upload=upload, timings={"detection_ms": 1.0}, faces_found=1),
        lambda: upload_finish(upload=Upload.objects.get(pk=upload.pk), timings={}),
        lambda: upload_delete(upload=upload),
    ]
    original = events.publish_upload_changed
    for step in steps:
        with django_capture_on_commit_callbacks() as callbacks:
            step()
        assert all(callback.func is original for callback in callbacks)
        published += [callback.keywords or callback.args for callback in callbacks]

    assert published == [(upload_id,)] * 4


@pytest.mark.django_db
def test_a_failure_is_published(one_face_jpeg, django_capture_on_commit_callbacks):
    upload = upload_create(image=SimpleUploadedFile("me.jpg", one_face_jpeg), channel=Upload.Channel.API)
    upload_id = upload.pk
    client = redis.Redis.from_url(settings.REDIS_URL)
    pubsub = client.pubsub()
    pubsub.subscribe(upload_channel(upload_id))
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"

    with django_capture_on_commit_callbacks(execute=True):
        upload_fail(upload_id=upload_id, reason="broken")

    message = pubsub.get_message(timeout=2)
    assert message is not None and message["channel"] == upload_channel(upload_id).encode()
    pubsub.close()
