"""Metrics as ``make run`` has them, over HTTP: gunicorn's two workers and a real Celery worker write to
one PROMETHEUS_MULTIPROC_DIR, so the web's ``/metrics`` adds up all their processes; the worker also
serves its own (WORKER_METRICS_ADDRESS), as each machine of a worker fleet does.

Two photos are sent before any worker runs: both wait in the ``ml`` queue. The stored file of the
second is then removed, and a worker started: the first is analysed, the second fails for its missing
photo. The metrics folder is this module's, so every count is exact.
"""

import time

import httpx
import pytest
import redis
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families
from rest_framework_api_key.models import APIKey

from apps.predictions.models import FaceEstimate
from apps.uploads.models import Upload
from devtools import devstack
from tests.support import app_env, wait_until_finished

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "metrics-integration-token"
AUTHORIZED = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def metrics_env(tmp_path_factory) -> dict[str, str]:
    return {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path_factory.mktemp("metrics")), "METRICS_TOKEN": TOKEN}


@pytest.fixture(scope="module")
def web(stores, django_db_setup, django_db_blocker, services_dir, metrics_env):
    with django_db_blocker.unblock():
        env = app_env(ALLOWED_HOSTS="127.0.0.1", **metrics_env)
    service = devstack.start_web(env, devstack.free_port(), services_dir / "metrics-web.log")
    yield service
    service.stop()


def samples(response: httpx.Response) -> dict[tuple[str, tuple], float]:
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(scraped, name: str, **labels) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_photo_through_the_real_worker_moves_the_counters_histograms_and_queue_depth(
    web, model_weights, services_dir, metrics_env, one_face_jpeg, django_db_blocker
):
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()  # no task of an earlier module
    _, key = APIKey.objects.create_key(name="metrics")
    with httpx.Client(base_url=web.url, timeout=60) as client:
        sent = [
            client.post(
                "/api/v1/predictions", content=one_face_jpeg, headers={"X-Api-Key": key, "Content-Type": "image/jpeg"}
            ).json()["id"]
            for _ in range(2)
        ]
        Upload.objects.get(pk=sent[1]).image.delete(save=False)

        waiting = samples(client.get("/metrics", headers=AUTHORIZED))
        assert value(waiting, "mairror_queue_depth", queue="ml") == 2
        assert value(waiting, "mairror_photos_total", channel="api", status="pending") == 2
        accepted = "mairror_http_request_duration_seconds_count"
        assert value(waiting, accepted, view="api:prediction-list", method="POST", status="202") == 2
        assert value(waiting, "mairror_pipeline_stage_seconds_count", stage="detection") == 0

        worker_port = devstack.free_port()
        with django_db_blocker.unblock():
            env = app_env(WORKER_METRICS_ADDRESS=f"127.0.0.1:{worker_port}", **metrics_env)
        worker = devstack.start_worker(env, log_file=services_dir / "metrics-worker.log")
        try:
            assert wait_until_finished(sent[0]).status == Upload.Status.DONE
            assert wait_until_finished(sent[1]).status == Upload.Status.FAILED
            version = FaceEstimate.objects.get(upload_id=sent[0]).model_version

            after = samples(client.get("/metrics", headers=AUTHORIZED))
            own = httpx.get(f"http://127.0.0.1:{worker_port}/metrics", headers=AUTHORIZED, timeout=10)
            refused = httpx.get(f"http://127.0.0.1:{worker_port}/metrics", timeout=10)
        finally:
            worker.stop()

    assert value(after, "mairror_queue_depth", queue="ml") == 0
    assert value(after, "mairror_broker_up") == 1
    assert value(after, "mairror_ml_workers_ready") >= 1
    assert value(after, "mairror_photos_total", channel="api", status="done") == 1
    assert value(after, "mairror_photos_total", channel="api", status="failed") == 1
    assert value(after, "mairror_photo_failures_total", reason="photo_missing") == 1
    for stage in ("queue", "decode", "detection", "estimation"):  # the failed photo got no further than its claim
        assert value(after, "mairror_pipeline_stage_seconds_count", stage=stage) == 1, stage
    assert value(after, "mairror_photo_duration_seconds_count", channel="api") == 1
    assert value(after, "mairror_worker_model_info", worker=worker.url, version=version) == 1

    assert refused.status_code == 401
    on_the_worker = samples(own)
    assert value(on_the_worker, "mairror_photos_total", channel="api", status="done") == 1
    assert value(on_the_worker, "mairror_worker_model_info", worker=worker.url, version=version) == 1
    assert not any(name == "mairror_queue_depth" for name, _ in on_the_worker)  # the web's alone


def test_a_stopped_workers_gauges_go_and_its_counts_stay(web):
    """After the first test's worker stopped: its processes are dead, so their model gauge is dropped at
    the next scrape, and what they counted is still there."""
    deadline = time.monotonic() + 30
    while True:
        scraped = samples(httpx.get(f"{web.url}/metrics", headers=AUTHORIZED, timeout=10))
        if not any(name == "mairror_worker_model_info" for name, _ in scraped) or time.monotonic() > deadline:
            break
        time.sleep(0.5)

    assert not any(name == "mairror_worker_model_info" for name, _ in scraped)
    assert value(scraped, "mairror_photos_total", channel="api", status="done") == 1
