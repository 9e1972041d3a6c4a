"""Change events on the session's real Redis: published once a change is committed, every wait bounded."""

import asyncio
import contextlib
import time
import uuid

import pytest
import redis
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from apps.uploads import events
from apps.uploads.events import publish_upload_changed, upload_changes, upload_channel
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

    async def scenario():
        async with upload_changes(uuid.uuid4()) as changes:
            return await changes.wait(0.3)

    assert run(scenario()) is False
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
        # Besides the publishing, only the metrics' count of a finished photo (apps.metrics) waits for the commit.
        publishing = [callback for callback in callbacks if callback.func is original]
        assert len(callbacks) - len(publishing) == (1 if step is steps[2] else 0)
        published += [callback.keywords or callback.args for callback in publishing]

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


def test_waiters_share_one_connection_and_each_wakes_on_its_own_upload():
    ids = [uuid.uuid4() for _ in range(50)]
    client = redis.Redis.from_url(settings.REDIS_URL)

    async def scenario():
        async with contextlib.AsyncExitStack() as stack:
            waiting = [await stack.enter_async_context(upload_changes(upload_id)) for upload_id in ids]
            subscribers = {changes._subscriber for changes in waiting}
            pubsub_connections = sum(int(c.get("sub", 0)) > 0 for c in client.client_list())
            await asyncio.to_thread(publish_upload_changed, ids[7])
            woke = await asyncio.gather(*(changes.wait(0.5) for changes in waiting))
            return len(subscribers), pubsub_connections, woke

    subscribers, pubsub_connections, woke = run(scenario())

    assert subscribers == 1 and pubsub_connections == 1
    assert [i for i, w in enumerate(woke) if w] == [7]
    assert not events._subscribers  # the last waiter out closed it


def test_two_waiters_on_one_upload_both_wake_and_one_leaving_keeps_the_other_subscribed():
    upload_id = uuid.uuid4()

    async def scenario():
        async with upload_changes(upload_id) as staying:
            async with upload_changes(upload_id) as leaving:
                await asyncio.to_thread(publish_upload_changed, upload_id)
                both = [await staying.wait(2), await leaving.wait(2)]
            await asyncio.to_thread(publish_upload_changed, upload_id)
            return both, await staying.wait(2)

    both, still = run(scenario())

    assert both == [True, True] and still is True


def test_a_lost_connection_wakes_its_waiters_who_then_look_again_on_their_own():
    upload_id = uuid.uuid4()
    client = redis.Redis.from_url(settings.REDIS_URL)

    async def scenario():
        async with upload_changes(upload_id) as changes:
            for info in client.client_list():
                if int(info.get("sub", 0)) > 0:
                    client.client_kill_filter(_id=info["id"])
            started = time.monotonic()
            first = await changes.wait(10)
            second = await changes.wait(10)  # no subscription now: a bounded sleep
            return first, second, time.monotonic() - started

    first, second, seconds = run(scenario())

    assert first is True and second is True
    assert seconds < 3
