"""Change events of uploads: what wakes the API's ``?wait=`` and the page's progress stream.

Whoever changes an upload (its status, the detection step's timings, its deletion) publishes an
empty message on the Redis pub/sub channel ``mairror:upload:<id>`` once the change is committed
(``apps.uploads.services``). A waiting request subscribes to that channel and re-reads the upload
when woken: the message says only "look again", so a lost or duplicated one is harmless.

Pub/sub keeps nothing for a subscriber that was not listening yet, so a waiter subscribes first,
then reads the upload, then waits (``upload_changes``), and every wait is bounded by its timeout:
a missed event costs at most one timeout, never a hung client. When Redis cannot be reached the
waits still end on time (they sleep instead), and publishing logs a warning and never raises into
the pipeline step that changed the upload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import redis
import redis.asyncio
from django.conf import settings

logger = logging.getLogger(__name__)

CHANNEL_PREFIX = "mairror:upload:"
# Short: publishing happens inside a pipeline step, and a Redis that hangs must not hold it.
REDIS_TIMEOUT_SECONDS = 1.0
# While Redis is unreachable a waiter looks at the upload again this often instead.
FALLBACK_INTERVAL_SECONDS = 1.0

_publisher: tuple[str, redis.Redis] | None = None


def upload_channel(upload_id) -> str:
    return f"{CHANNEL_PREFIX}{upload_id}"


def publish_upload_changed(upload_id) -> None:
    """Tell whoever waits on this upload to read it again (call it after the change is committed)."""
    try:
        _publisher_client().publish(upload_channel(upload_id), b"")
    except (redis.RedisError, OSError) as error:
        logger.warning("could not publish the change of upload %s: %s", upload_id, error)


def _publisher_client() -> redis.Redis:
    """One client per process and REDIS_URL (the tests point settings at their own Redis)."""
    global _publisher
    url = settings.REDIS_URL
    if _publisher is None or _publisher[0] != url:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS
        )
        _publisher = (url, client)
    return _publisher[1]


class UploadChanges:
    """A subscription to one upload's changes; ``await changes.wait(seconds)`` until the next one."""

    def __init__(self, upload_id):
        self.upload_id = upload_id
        self._client: redis.asyncio.Redis | None = None
        self._pubsub = None

    async def _subscribe(self) -> None:
        try:
            self._client = redis.asyncio.Redis.from_url(
                settings.REDIS_URL, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=None
            )
            self._pubsub = self._client.pubsub()
            await asyncio.wait_for(self._confirmed_subscription(), REDIS_TIMEOUT_SECONDS * 2)
        except (redis.RedisError, OSError, TimeoutError) as error:
            logger.warning("no change events for upload %s (%s): looking again every second", self.upload_id, error)
            await self._close()

    async def _confirmed_subscription(self) -> None:
        """Subscribe and wait for Redis to confirm it: a change published from then on reaches us."""
        await self._pubsub.subscribe(upload_channel(self.upload_id))
        while True:
            message = await self._pubsub.get_message(timeout=REDIS_TIMEOUT_SECONDS)
            if message is None:
                raise TimeoutError("Redis did not confirm the subscription")
            if message["type"] == "subscribe":
                return

    async def wait(self, timeout: float) -> bool:
        """Until the upload changes (True) or ``timeout`` seconds pass (False); never longer.

        Without a subscription (Redis unreachable) it sleeps up to FALLBACK_INTERVAL_SECONDS and
        answers True, so the caller reads the upload again.
        """
        if timeout <= 0:
            return False
        deadline = time.monotonic() + timeout
        while self._pubsub is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=remaining)
            except (redis.RedisError, OSError) as error:
                logger.warning("lost the change events of upload %s: %s", self.upload_id, error)
                await self._close()
                break
            if message is not None and message["type"] == "message":
                return True
        await asyncio.sleep(min(FALLBACK_INTERVAL_SECONDS, max(0.0, deadline - time.monotonic())))
        return True

    async def _close(self) -> None:
        pubsub, client, self._pubsub, self._client = self._pubsub, self._client, None, None
        with contextlib.suppress(Exception):
            if pubsub is not None:
                await pubsub.aclose()
        with contextlib.suppress(Exception):
            if client is not None:
                await client.aclose()


@contextlib.asynccontextmanager
async def upload_changes(upload_id) -> AsyncIterator[UploadChanges]:
    """Subscribe to an upload's changes for the block: read the upload inside it, then ``wait``.

    Unsubscribes and closes its Redis connection on the way out, also when the request is
    cancelled (the client went away).
    """
    changes = UploadChanges(upload_id)
    await changes._subscribe()
    try:
        yield changes
    finally:
        await changes._close()


async def wait_for_upload_change(upload_id, timeout: float) -> bool:
    """One bounded wait for the next change of an upload (True) or the timeout (False).

    Only for callers that can afford to miss a change made before they subscribed; the views use
    ``upload_changes`` to subscribe, check, then wait.
    """
    async with upload_changes(upload_id) as changes:
        return await changes.wait(timeout)
