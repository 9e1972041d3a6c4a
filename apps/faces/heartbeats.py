"""Which ml worker processes are ready to take a photo: warmed up and alive. ``/healthz`` counts them.

An ml worker process, once its models are loaded and warmed (``apps.faces.signals``), beats every
``HEARTBEAT_SECONDS``: its member of the sorted set ``mairror:ml-workers`` gets Redis's time plus
``HEARTBEAT_TTL_SECONDS`` as its score. A process counts while its score lies ahead, so one that stops
beating (SIGKILLed, hung, its machine gone) drops out within the TTL with nobody cleaning up after it,
and one that stops cleanly leaves at once. One sorted set, not a key per process: counting is one
ZCOUNT, where keys would need a SCAN through the whole database (Celery's queues, the cache, the rate
limits). Both scripts read Redis's clock, so the workers' machines and the web's need not agree on the time.

Redis only, no models and no database: web processes import it for ``/healthz``.
"""

from __future__ import annotations

import functools
import logging
import threading

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

KEY = "mairror:ml-workers"
HEARTBEAT_SECONDS = 3.0
HEARTBEAT_TTL_SECONDS = 10.0  # three beats missed in a row: the process is gone
# /healthz must answer at once with Redis down or hanging: one attempt, half a second at most each way.
REDIS_TIMEOUT_SECONDS = 0.5

# KEYS[1]: the set; ARGV: the member, the TTL. Drops the members that expired, (re)sets this one's expiry,
# and lets the set itself expire with its last member.
BEAT = """
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])))
return 1
"""

COUNT = """
local time = redis.call('TIME')
return redis.call('ZCOUNT', KEYS[1], '(' .. time[1] .. '.' .. string.format('%06d', tonumber(time[2])), '+inf')
"""


def ml_worker_beat(member: str, ttl: float = HEARTBEAT_TTL_SECONDS) -> None:
    """Count ``member`` (a worker process) as ready for the next ``ttl`` seconds."""
    _scripts(settings.REDIS_URL)[0](keys=[KEY], args=[member, ttl])


def ml_worker_leave(member: str) -> None:
    """Stop counting ``member`` now (a process that exits cleanly)."""
    _client(settings.REDIS_URL).zrem(KEY, member)


def ml_workers_ready() -> int:
    """How many ml worker processes are warmed up and beat within their TTL; raises ``redis.RedisError``
    (or ``OSError``) when Redis does not answer within ``REDIS_TIMEOUT_SECONDS``."""
    return int(_scripts(settings.REDIS_URL)[1](keys=[KEY]))


class Heartbeat:
    """Beats for one process from a daemon thread until stopped. A beat that fails (Redis away) is
    tried again at the next; the first failure of a run of them is logged, and the recovery."""

    def __init__(self, member: str):
        self.member = member
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ml-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=2 * REDIS_TIMEOUT_SECONDS)
        try:
            ml_worker_leave(self.member)
        except (redis.RedisError, OSError) as error:
            logger.warning("ml worker %s could not deregister (it expires by itself): %s", self.member, error)

    def _run(self) -> None:
        failing = False
        while not self._stopped.is_set():
            try:
                ml_worker_beat(self.member)
            except (redis.RedisError, OSError) as error:
                if not failing:
                    logger.warning("ml worker %s: heartbeat failed, retrying: %s", self.member, error)
                failing = True
            else:
                if failing:
                    logger.info("ml worker %s: heartbeat back", self.member)
                failing = False
            self._stopped.wait(HEARTBEAT_SECONDS)


@functools.cache
def _client(url: str) -> redis.Redis:
    """One client per process and URL (the tests point the settings at their own Redis)."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )


@functools.cache
def _scripts(url: str):
    """The beat and count scripts on that client (EVALSHA; loaded on first use)."""
    client = _client(url)
    return client.register_script(BEAT), client.register_script(COUNT)
