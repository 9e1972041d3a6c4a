"""The result page's event stream in-process, on the session's real Redis: woken by the upload's changes."""

import json
import time
import uuid
import warnings

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.uploads.models import Upload
from apps.uploads.services import (
    upload_create,
    upload_delete,
    upload_finish,
    upload_record_timings,
    upload_start_processing,
)
from apps.web import views
from tests.support import change_later

pytestmark = pytest.mark.django_db(transaction=True)  # the other thread must see the upload


@pytest.fixture
def pending(one_face_jpeg) -> Upload:
    return upload_create(image=SimpleUploadedFile("me.jpg", one_face_jpeg), channel=Upload.Channel.WEB)


def stream(upload_id, then=None) -> tuple[list[tuple[str, dict]], float, object]:
    """The whole stream (it ends by itself), as (event, data) pairs, and how long it took from its start;
    ``then`` starts (in another thread) once the response is there, before the stream is read."""
    response = Client().get(f"/r/{upload_id}/events")
    started = time.monotonic()
    thread = then() if then else None
    with warnings.catch_warnings():  # the test client consumes the async stream synchronously, and says so
        warnings.simplefilter("ignore")
        body = b"".join(response).decode() if response.status_code == 200 else ""
    events = []
    for block in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    seconds = time.monotonic() - started
    if thread:
        thread.join()
    return events, seconds, response


def test_the_stream_sends_each_stage_as_it_happens_and_ends_when_done(pending):
    upload_id = pending.pk
    steps = [
        lambda: upload_start_processing(upload_id=upload_id),
        lambda: upload_record_timings(upload=Upload.objects.get(pk=upload_id), timings={"detection_ms": 1.0}),
        lambda: upload_finish(upload=Upload.objects.get(pk=upload_id), timings={}),
    ]

    events, seconds, response = stream(upload_id, then=lambda: change_later(0.5, *steps))

    assert response["Content-Type"] == "text/event-stream"
    assert "no-cache" in response["Cache-Control"]
    assert [data["stage"] for _, data in events] == ["queued", "finding_faces", "predicting", "done"]
    assert events[-1] == ("stage", {"stage": "done", "message": "Done.", "finished": True})
    assert seconds < 4  # woken by each change, not by a timeout (15 s)


def test_a_finished_upload_gets_one_event_and_the_end(pending):
    upload_start_processing(upload_id=pending.pk)
    upload_finish(upload=Upload.objects.get(pk=pending.pk), timings={})

    events, seconds, _ = stream(pending.pk)

    assert events == [("stage", {"stage": "done", "message": "Done.", "finished": True})]
    assert seconds < 1


def test_a_photo_deleted_while_streaming_is_said_gone(pending):
    events, seconds, _ = stream(pending.pk, then=lambda: change_later(0.5, lambda: upload_delete(upload=pending)))

    assert [name for name, _ in events] == ["stage", "gone"]
    assert events[-1][1]["message"] == "This photo has been deleted."
    assert seconds < 2


def test_a_stream_ends_after_its_time_with_a_keep_alive_in_between(pending, monkeypatch):
    monkeypatch.setattr(views, "EVENTS_STREAM_SECONDS", 0.6)
    monkeypatch.setattr(views, "EVENTS_KEEPALIVE_SECONDS", 0.25)
    started = time.monotonic()

    response = Client().get(f"/r/{pending.pk}/events")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        body = b"".join(response).decode()

    assert 0.5 < time.monotonic() - started < 3
    assert body.startswith("retry: 1000\n\n")
    assert ": keep-alive" in body
    assert body.count("event: stage") == 1


def test_unknown_and_api_uploads_are_not_found(one_face_jpeg):
    api_upload = upload_create(image=SimpleUploadedFile("me.jpg", one_face_jpeg), channel=Upload.Channel.API)

    assert Client().get(f"/r/{uuid.uuid4()}/events").status_code == 404
    assert Client().get(f"/r/{api_upload.pk}/events").status_code == 404


def test_the_result_page_names_its_stream_and_its_fallback(pending):
    page = Client().get(f"/r/{pending.pk}").content.decode()

    assert f'data-events-url="/r/{pending.pk}/events"' in page
    assert f'data-status-url="/r/{pending.pk}/status"' in page
