"""``/healthz``: 200 with what it knows of the broker and the ml workers, fast with Redis up, down or hanging."""

import socket
import time
import uuid

import pytest
import redis
from django.conf import settings

from apps.faces import heartbeats
from apps.faces.heartbeats import ml_worker_beat
from devtools.devstack import free_port


@pytest.fixture
def no_workers(stores):
    """The session's Redis with no ml worker in the set (other tests' workers share it)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(heartbeats.KEY)
    yield
    client.delete(heartbeats.KEY)


def timed_get(client, path="/healthz"):
    started = time.perf_counter()
    response = client.get(path)
    return response, time.perf_counter() - started


def test_it_counts_the_ml_worker_processes_that_beat(client, no_workers):
    assert client.get("/healthz").json() == {"status": "ok", "web": "ok", "broker": "ok", "ml_workers": 0}

    ml_worker_beat(f"test-{uuid.uuid4().hex[:8]}@host:1")
    ml_worker_beat(f"test-{uuid.uuid4().hex[:8]}@host:2")

    assert client.get("/healthz").json()["ml_workers"] == 2


def test_with_redis_down_it_still_answers_200_at_once_and_says_so(client, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there

    response, seconds = timed_get(client)

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "web": "ok", "broker": "unavailable", "ml_workers": None}
    assert seconds < 0.5


def test_with_redis_hanging_it_answers_within_the_redis_timeout(client, settings):
    """A server that accepts the connection and never answers: one attempt, bounded by the read timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nothing ever reads or answers
        settings.REDIS_URL = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"

        response, seconds = timed_get(client)

    assert response.status_code == 200
    assert response.json()["broker"] == "unavailable"
    assert heartbeats.REDIS_TIMEOUT_SECONDS <= seconds < 2 * heartbeats.REDIS_TIMEOUT_SECONDS + 0.5
