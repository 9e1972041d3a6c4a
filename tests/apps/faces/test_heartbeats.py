"""The ready-worker count on the session's real Redis: beats, their expiry, a clean leave, the thread."""

import time
import uuid

import pytest
import redis
from django.conf import settings

from apps.faces import heartbeats
from apps.faces.heartbeats import Heartbeat, ml_worker_beat, ml_worker_leave, ml_workers_ready


@pytest.fixture(autouse=True)
def _no_workers():
    """The set starts and ends empty (the session's Redis is shared with other tests' workers)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(heartbeats.KEY)
    yield
    client.delete(heartbeats.KEY)


def member() -> str:
    return f"test-{uuid.uuid4().hex[:8]}@host:1000"


def test_a_beating_process_counts_until_it_leaves():
    first, second = member(), member()
    ml_worker_beat(first)
    ml_worker_beat(second)
    ml_worker_beat(first)  # beating again renews, it does not count twice

    assert ml_workers_ready() == 2
    ml_worker_leave(first)
    assert ml_workers_ready() == 1


def test_a_process_that_stops_beating_drops_out_after_its_ttl():
    ml_worker_beat(member(), ttl=0.5)
    ml_worker_beat(member(), ttl=30)
    assert ml_workers_ready() == 2

    time.sleep(0.7)

    assert ml_workers_ready() == 1


def test_the_set_expires_with_its_last_member():
    ml_worker_beat(member(), ttl=1)

    assert 0 < redis.Redis.from_url(settings.REDIS_URL).ttl(heartbeats.KEY) <= 1


def test_the_heartbeat_thread_beats_at_once_and_leaves_when_stopped():
    heartbeat = Heartbeat(member())
    heartbeat.start()
    deadline = time.monotonic() + 5
    while ml_workers_ready() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert ml_workers_ready() == 1
    finally:
        heartbeat.stop()

    assert ml_workers_ready() == 0
    assert not heartbeat._thread.is_alive()
