"""The live numbers of the admin's index and dashboard: queue depths from the broker, the last hour's
latency percentiles and failure rate from the uploads' rows, the newest estimate's model version."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from apps.faces.tasks import faces_detect
from apps.predictions.models import FaceEstimate, ModelVersion
from apps.predictions.selectors import live_numbers
from apps.uploads.models import Upload
from apps.uploads.services import upload_create
from devtools import devstack
from tests.support import celery_publishing_to, finish_with_faces

pytestmark = pytest.mark.django_db


@pytest.fixture
def make_upload(one_face_jpeg):
    def make(status: str, *, seconds: float | None = None, finished_minutes_ago: float = 5) -> Upload:
        """An upload of that status, finished that long ago and ``seconds`` after it was sent."""
        upload = upload_create(image=SimpleUploadedFile("a.jpg", one_face_jpeg), channel=Upload.Channel.API)
        finished_at = timezone.now() - timedelta(minutes=finished_minutes_ago)
        Upload.objects.filter(pk=upload.pk).update(
            status=status,
            finished_at=None if seconds is None else finished_at,
            created_at=finished_at - timedelta(seconds=seconds or 0),
        )
        return Upload.objects.get(pk=upload.pk)

    return make


def test_latency_percentiles_and_failure_rate_are_those_of_the_photos_finished_since(broker, make_upload, faces):
    for seconds in range(20, 0, -1):  # 1 to 20 s, in no order of their own
        make_upload(Upload.Status.DONE, seconds=seconds)
    make_upload(Upload.Status.FAILED, seconds=0.5)
    make_upload(Upload.Status.FAILED, seconds=300)
    make_upload(Upload.Status.DONE, seconds=999, finished_minutes_ago=90)  # before the hour
    make_upload(Upload.Status.FAILED, seconds=1, finished_minutes_ago=90)
    make_upload(Upload.Status.PENDING)

    live = live_numbers(since=timezone.now() - timedelta(hours=1))

    assert live.finished == 22
    assert live.failed == 2
    assert live.failure_rate == pytest.approx(2 / 22)
    # Nearest rank of 20 done photos: the 10th and the 19th fastest.
    assert live.latency_p50_ms == pytest.approx(10_000)
    assert live.latency_p95_ms == pytest.approx(19_000)


def test_with_no_photo_finished_there_is_nothing_to_measure(broker, make_upload):
    make_upload(Upload.Status.PENDING)
    make_upload(Upload.Status.DONE, seconds=3, finished_minutes_ago=61)

    live = live_numbers(since=timezone.now() - timedelta(hours=1))

    assert (live.finished, live.failed) == (0, 0)
    assert live.failure_rate is None
    assert live.latency_p50_ms is live.latency_p95_ms is None
    assert live.newest_estimate_version is None


def test_the_model_version_is_the_registrys_active_one_beside_the_newest_estimates(broker, make_upload, faces):
    finish_with_faces(make_upload(Upload.Status.DONE, seconds=1), {"model_version": "ag-old"})
    [newest] = finish_with_faces(make_upload(Upload.Status.DONE, seconds=1), {"model_version": "ag-new"})
    FaceEstimate.objects.exclude(pk=newest.pk).update(created_at=timezone.now() - timedelta(minutes=1))

    live = live_numbers(since=timezone.now() - timedelta(hours=1))

    assert live.model_version == ModelVersion.objects.get(state=ModelVersion.State.ACTIVE).version  # the shipped one
    assert live.newest_estimate_version == "ag-new"


def test_queue_depths_are_the_brokers_per_queue(broker):
    for upload_id in ("a", "b"):
        faces_detect.apply_async((upload_id,))

    assert live_numbers(since=timezone.now()).queue_depths == {"celery": 0, "ml": 2}

    with celery_publishing_to(f"redis://127.0.0.1:{devstack.free_port()}/0"):
        assert live_numbers(since=timezone.now()).queue_depths is None
