"""``/metrics``: the token, the text format, and what the web process records itself (its requests, the
photos it accepts, the rate limits it applies, failures as reason codes). The pipeline's series, recorded
in a real worker, are in tests/integration/test_metrics.py.

Counters live as long as this process: each test compares before and after.
"""

import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from prometheus_client.parser import text_string_to_metric_families

from apps.faces.services import UNREADABLE_IMAGE
from apps.uploads.models import Upload
from apps.uploads.services import upload_create, upload_fail
from devtools import devstack
from mairror.log_filters import redact
from tests.support import celery_publishing_to, make_client, photo_file

pytestmark = pytest.mark.django_db(transaction=True)  # the photos are counted once committed

TOKEN = "metrics-test-token"
URL = "/metrics"


@pytest.fixture(autouse=True)
def metrics_on(settings):
    settings.METRICS_TOKEN = TOKEN


def scrape(client) -> dict[tuple[str, tuple], float]:
    """Every sample of a scrape by (name, sorted labels)."""
    response = client.get(URL, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.content
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_without_a_token_setting_there_is_no_such_page(client, settings):
    settings.METRICS_TOKEN = ""

    response = client.get(URL, headers={"Authorization": "Bearer "})

    assert response.status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"Api-Key {TOKEN}"],
)
def test_a_scrape_without_the_token_is_refused(client, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}

    response = client.get(URL, headers=headers)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"mairror_" not in response.content


def test_with_the_token_it_is_the_prometheus_text_format(client, broker):
    response = client.get(URL, headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert "no-cache" in response["Cache-Control"]
    families = {family.name: family for family in text_string_to_metric_families(response.content.decode())}
    for name in (
        "mairror_photos",
        "mairror_photo_failures",
        "mairror_pipeline_stage_seconds",
        "mairror_photo_duration_seconds",
        "mairror_http_request_duration_seconds",
        "mairror_rate_limit_refusals",
        "mairror_worker_model_info",
        "mairror_queue_depth",
        "mairror_ml_workers_ready",
        "mairror_broker_up",
    ):
        assert name in families
    samples = scrape(client)
    assert value(samples, "mairror_broker_up") == 1
    assert value(samples, "mairror_queue_depth", queue="ml") == 0
    assert value(samples, "mairror_queue_depth", queue="celery") == 0
    assert value(samples, "mairror_ml_workers_ready") == 0  # no worker in this test


def test_each_request_is_timed_by_view_method_and_status(client):
    before = scrape(client)

    client.get("/healthz")
    client.get(f"/r/{uuid.uuid4()}")  # a result that does not exist
    client.get("/no/such/page")

    after = scrape(client)
    counted = "mairror_http_request_duration_seconds_count"
    assert value(after, counted, view="healthz", method="GET", status="200") == (
        value(before, counted, view="healthz", method="GET", status="200") + 1
    )
    assert value(after, counted, view="web:result", method="GET", status="404") == (
        value(before, counted, view="web:result", method="GET", status="404") + 1
    )
    assert value(after, counted, view="unresolved", method="GET", status="404") == (
        value(before, counted, view="unresolved", method="GET", status="404") + 1
    )
    # Labels are the URL patterns' names, never the paths.
    assert not any("/no/such" in str(labels) for _, labels in after)


def test_an_accepted_photo_counts_as_pending_and_its_queued_task_as_queue_depth(client, broker, one_face_jpeg):
    api, _ = make_client("counted")
    before = scrape(client)

    response = api.post("/api/v1/predictions", {"image": photo_file(one_face_jpeg)}, format="multipart")

    assert response.status_code == 202, response.content
    after = scrape(client)
    assert value(after, "mairror_photos_total", channel="api", status="pending") == (
        value(before, "mairror_photos_total", channel="api", status="pending") + 1
    )
    assert value(after, "mairror_queue_depth", queue="ml") == 1  # no worker took it


def test_a_rate_limit_refusal_is_counted_per_limit(client, broker, settings, one_face_jpeg):
    settings.UPLOAD_RATE_PER_KEY = "1/minute"
    api, _ = make_client("limited")
    before = scrape(client)

    statuses = [
        api.post("/api/v1/predictions", {"image": photo_file(one_face_jpeg)}, format="multipart").status_code
        for _ in range(3)
    ]

    assert statuses == [202, 429, 429]
    after = scrape(client)
    refusals = "mairror_rate_limit_refusals_total"
    assert value(after, refusals, scope="upload_key") == value(before, refusals, scope="upload_key") + 2
    assert value(after, refusals, scope="upload_ip") == value(before, refusals, scope="upload_ip")


def test_a_failure_is_counted_by_its_reason_code_never_its_text(client, broker, one_face_jpeg):
    known = upload_create(image=SimpleUploadedFile("a.jpg", one_face_jpeg), channel=Upload.Channel.TELEGRAM)
    unknown = upload_create(image=SimpleUploadedFile("b.jpg", one_face_jpeg), channel=Upload.Channel.TELEGRAM)
    before = scrape(client)

    upload_fail(upload_id=known.pk, reason=UNREADABLE_IMAGE)
    upload_fail(upload_id=unknown.pk, reason="Something nobody mapped, with an id 1234 in it.")
    upload_fail(upload_id=known.pk, reason=UNREADABLE_IMAGE)  # already failed: not again

    after = scrape(client)
    failures = "mairror_photo_failures_total"
    assert value(after, failures, reason="unreadable_image") == value(before, failures, reason="unreadable_image") + 1
    assert value(after, failures, reason="other") == value(before, failures, reason="other") + 1
    assert value(after, "mairror_photos_total", channel="telegram", status="failed") == (
        value(before, "mairror_photos_total", channel="telegram", status="failed") + 2
    )
    assert not any("nobody mapped" in str(labels) for _, labels in after)


def test_a_broker_that_does_not_answer_leaves_its_series_out(client, stores):
    with celery_publishing_to(f"redis://127.0.0.1:{devstack.free_port()}/0"):
        samples = scrape(client)

    assert value(samples, "mairror_broker_up") == 0
    assert not any(name == "mairror_queue_depth" for name, _ in samples)


def test_the_token_is_cut_out_of_any_log_line():
    assert redact(f"scraped with Authorization: Bearer {TOKEN}") == "scraped with Authorization: Bearer <redacted>"
