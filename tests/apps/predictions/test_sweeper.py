"""The stuck-upload sweeper: which uploads it sends through the pipeline again, how it counts, when it gives up.

The pipeline is really queued, in the session's Redis (no worker takes it here): each requeue is a
message on the ``ml`` queue that names the upload. A message already on that queue is a backlog, in
which pending uploads are waiting, not stuck.
"""

import base64
import json
import time
from datetime import timedelta
from io import StringIO

import kombu.exceptions
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone

from apps.faces.tasks import faces_detect
from apps.predictions import services as prediction_services
from apps.predictions import tasks
from apps.predictions.selectors import ml_queue_length
from apps.predictions.services import STUCK_TOO_OFTEN, prediction_pipeline_start, uploads_requeue_stuck
from apps.uploads.models import Upload
from apps.uploads.services import upload_create, upload_fail_if_stuck, upload_start_processing
from devtools import devstack
from tests.support import celery_publishing_to

ML_QUEUE = "ml"


@pytest.fixture
def make_upload(db, broker, one_face_jpeg):
    def make(
        status: str = Upload.Status.PENDING, minutes_ago: float = 0, requeue_count: int = 0, faces_found=None
    ) -> Upload:
        upload = upload_create(image=SimpleUploadedFile("a.jpg", one_face_jpeg), channel=Upload.Channel.API)
        Upload.objects.filter(pk=upload.pk).update(
            status=status,
            requeue_count=requeue_count,
            faces_found=faces_found,
            updated_at=timezone.now() - timedelta(minutes=minutes_ago),
        )
        upload.refresh_from_db()
        return upload

    return make


def queued_upload_ids(broker) -> list[str]:
    """The upload of every pipeline start waiting on the ``ml`` queue (its first task, faces_detect)."""
    ids = []
    for message in broker.lrange(ML_QUEUE, 0, -1):
        args, _kwargs, _embed = json.loads(base64.b64decode(json.loads(message)["body"]))
        ids.append(args[0])
    return ids


def stuck(minutes: float = 0) -> float:
    """Minutes ago that are past the timeout by ``minutes``."""
    return settings.STUCK_UPLOAD_MINUTES + 1 + minutes


def test_only_unfinished_uploads_older_than_the_timeout_are_requeued(make_upload, broker):
    pending = make_upload(Upload.Status.PENDING, minutes_ago=stuck())
    processing = make_upload(Upload.Status.PROCESSING, minutes_ago=stuck(5))
    recent = make_upload(Upload.Status.PROCESSING, minutes_ago=settings.STUCK_UPLOAD_MINUTES - 1)
    done = make_upload(Upload.Status.DONE, minutes_ago=stuck())
    failed = make_upload(Upload.Status.FAILED, minutes_ago=stuck())

    assert uploads_requeue_stuck() == {"requeued": 2, "failed": 0}

    assert sorted(queued_upload_ids(broker)) == sorted([str(pending.pk), str(processing.pk)])
    counts = dict(Upload.objects.values_list("pk", "requeue_count"))
    assert counts == {pending.pk: 1, processing.pk: 1, recent.pk: 0, done.pk: 0, failed.pk: 0}
    statuses = dict(Upload.objects.values_list("pk", "status"))
    assert statuses == {
        pending.pk: "pending",
        processing.pk: "processing",
        recent.pk: "processing",
        done.pk: "done",
        failed.pk: "failed",
    }


def test_a_requeued_upload_gets_a_full_timeout_before_the_next_requeue(make_upload, broker):
    upload = make_upload(minutes_ago=stuck())

    first, second = uploads_requeue_stuck(), uploads_requeue_stuck()

    assert (first, second) == ({"requeued": 1, "failed": 0}, {"requeued": 0, "failed": 0})
    assert queued_upload_ids(broker) == [str(upload.pk)]
    upload.refresh_from_db()
    assert upload.requeue_count == 1
    assert timezone.now() - upload.updated_at < timedelta(minutes=1)


def test_requeues_are_counted_up_to_the_maximum_then_the_upload_fails(make_upload, broker, settings):
    settings.MAX_UPLOAD_REQUEUES = 2
    upload = make_upload(Upload.Status.PROCESSING, minutes_ago=stuck())

    results = []
    for _ in range(3):
        results.append(uploads_requeue_stuck())
        Upload.objects.filter(pk=upload.pk).update(updated_at=timezone.now() - timedelta(minutes=stuck()))

    assert results == [{"requeued": 1, "failed": 0}, {"requeued": 1, "failed": 0}, {"requeued": 0, "failed": 1}]
    assert queued_upload_ids(broker) == [str(upload.pk)] * 2
    upload.refresh_from_db()
    assert (upload.status, upload.failure_reason, upload.requeue_count) == ("failed", STUCK_TOO_OFTEN, 2)
    assert upload.finished_at is not None


def test_the_timeout_is_a_setting(make_upload, broker, settings):
    settings.STUCK_UPLOAD_MINUTES = 60
    make_upload(minutes_ago=30)

    assert uploads_requeue_stuck() == {"requeued": 0, "failed": 0}
    assert queued_upload_ids(broker) == []


def test_the_celery_task_runs_the_sweeper(make_upload, broker):
    upload = make_upload(minutes_ago=stuck())

    assert tasks.uploads_requeue_stuck() == {"requeued": 1, "failed": 0}
    assert queued_upload_ids(broker) == [str(upload.pk)]


def test_the_command_runs_the_sweeper_and_says_what_it_did(make_upload, broker, settings):
    settings.MAX_UPLOAD_REQUEUES = 1
    requeued = make_upload(minutes_ago=stuck())
    given_up = make_upload(Upload.Status.PROCESSING, minutes_ago=stuck(), requeue_count=1)
    out = StringIO()

    call_command("requeue_stuck_uploads", stdout=out)

    assert out.getvalue() == "Requeued 1 stuck uploads, failed 1.\n"
    assert queued_upload_ids(broker) == [str(requeued.pk)]
    assert Upload.objects.get(pk=given_up.pk).status == Upload.Status.FAILED


def test_a_broker_that_is_down_ends_the_sweep_before_it_touches_anything(make_upload, broker, settings):
    settings.MAX_UPLOAD_REQUEUES = 1
    oldest, newer = make_upload(minutes_ago=stuck(5)), make_upload(minutes_ago=stuck())
    given_up = make_upload(Upload.Status.PROCESSING, minutes_ago=stuck(), requeue_count=1)

    with celery_publishing_to(f"redis://127.0.0.1:{devstack.free_port()}/0"):
        assert uploads_requeue_stuck() == {"requeued": 0, "failed": 0}
    counts = dict(Upload.objects.values_list("pk", "requeue_count"))
    assert counts == {oldest.pk: 0, newer.pk: 0, given_up.pk: 1}  # no attempt spent while nothing can be sent
    assert Upload.objects.get(pk=given_up.pk).status == Upload.Status.PROCESSING

    assert uploads_requeue_stuck() == {"requeued": 2, "failed": 1}  # the broker is back
    assert sorted(queued_upload_ids(broker)) == sorted([str(oldest.pk), str(newer.pk)])


def test_a_broker_that_goes_down_during_the_sweep_ends_it_and_leaves_the_rest_to_the_next(
    make_upload, broker, monkeypatch
):
    oldest, newer = make_upload(minutes_ago=stuck(5)), make_upload(minutes_ago=stuck())
    monkeypatch.setattr(prediction_services, "ml_queue_length", lambda: 0)  # it answered that, then went away

    with celery_publishing_to(f"redis://127.0.0.1:{devstack.free_port()}/0"):
        assert uploads_requeue_stuck() == {"requeued": 0, "failed": 0}
    assert uploads_requeue_stuck() == {"requeued": 1, "failed": 0}  # the broker is back: the newer one

    counts = dict(Upload.objects.values_list("pk", "requeue_count"))
    assert counts == {oldest.pk: 1, newer.pk: 1}  # the oldest's failed attempt was counted
    assert queued_upload_ids(broker) == [str(newer.pk)]
    assert set(Upload.objects.values_list("status", flat=True)) == {Upload.Status.PENDING}


# --- a backlog on the ml queue is not a stuck upload -------------------------------------------------


def test_while_the_ml_queue_holds_messages_only_uploads_not_waiting_in_it_can_be_stuck(make_upload, broker, settings):
    settings.MAX_UPLOAD_REQUEUES = 1
    waiting = make_upload(minutes_ago=0)
    prediction_pipeline_start(upload_id=waiting.pk)  # a backlog: a recent upload still in the queue
    pending = make_upload(minutes_ago=stuck(5))
    pending_given_up = make_upload(minutes_ago=stuck(), requeue_count=1)
    estimating = make_upload(Upload.Status.PROCESSING, minutes_ago=stuck(), faces_found=2)  # faces_estimate queued
    detecting = make_upload(Upload.Status.PROCESSING, minutes_ago=stuck())  # claimed, then nothing

    assert uploads_requeue_stuck() == {"requeued": 1, "failed": 0}

    assert sorted(queued_upload_ids(broker)) == sorted([str(waiting.pk), str(detecting.pk)])
    counts = dict(Upload.objects.values_list("pk", "requeue_count"))
    assert counts == {waiting.pk: 0, pending.pk: 0, pending_given_up.pk: 1, estimating.pk: 0, detecting.pk: 1}
    assert not Upload.objects.filter(status=Upload.Status.FAILED).exists()


def test_once_the_ml_queue_has_drained_pending_uploads_are_swept_again(make_upload, broker, settings):
    settings.MAX_UPLOAD_REQUEUES = 1
    waiting = make_upload(minutes_ago=0)
    prediction_pipeline_start(upload_id=waiting.pk)
    pending = make_upload(minutes_ago=stuck())
    pending_given_up = make_upload(minutes_ago=stuck(), requeue_count=1)
    assert uploads_requeue_stuck() == {"requeued": 0, "failed": 0}

    broker.delete(ML_QUEUE)  # the worker caught up

    assert uploads_requeue_stuck() == {"requeued": 1, "failed": 1}
    assert queued_upload_ids(broker) == [str(pending.pk)]
    assert Upload.objects.get(pk=pending_given_up.pk).failure_reason == STUCK_TOO_OFTEN


def test_the_ml_queue_length_is_read_from_the_broker(stores, broker):
    assert ml_queue_length() == 0  # Redis has no key for an empty queue

    for upload_id in ("a", "b", "c"):
        faces_detect.apply_async((upload_id,))
    faces_detect.apply_async(("d",), priority=5)  # kept by kombu in a list of its own

    assert ml_queue_length() == 4
    assert broker.llen(ML_QUEUE) == 3
    broker.lpush("celery", "not an ml message")
    assert ml_queue_length() == 4


def test_the_ml_queue_length_of_an_unreachable_broker_is_an_error_within_the_timeout(stores):
    started = time.monotonic()
    nothing_listening = celery_publishing_to(f"redis://127.0.0.1:{devstack.free_port()}/0")
    with nothing_listening, pytest.raises(kombu.exceptions.OperationalError):
        ml_queue_length()
    assert time.monotonic() - started < settings.CELERY_BROKER_CONNECTION_TIMEOUT + 3


# --- a task that claims an upload while the sweeper gives up on it ----------------------------------


def test_an_upload_claimed_after_the_sweep_found_it_is_not_failed(make_upload, broker, settings, monkeypatch):
    settings.MAX_UPLOAD_REQUEUES = 1
    upload = make_upload(Upload.Status.PROCESSING, minutes_ago=stuck(), requeue_count=1)

    def claimed_meanwhile(**found):
        upload_start_processing(upload_id=found["upload_id"])  # a redelivered task takes it up first
        return upload_fail_if_stuck(**found)

    monkeypatch.setattr(prediction_services, "upload_fail_if_stuck", claimed_meanwhile)

    assert uploads_requeue_stuck() == {"requeued": 0, "failed": 0}

    upload.refresh_from_db()
    assert (upload.status, upload.failure_reason, upload.processing_attempts) == ("processing", "", 1)
