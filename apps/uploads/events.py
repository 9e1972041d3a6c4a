"""Change events of uploads: what wakes the API's ``?wait=`` and the page's progress stream.

Whoever changes an upload (its status, the detection step's timings, its deletion) publishes an
empty message on the Redis pub/sub channel ``mairror:upload:<id>`` once the change is committed
(``apps.uploads.services``). A waiting request subscribes to that channel and re-reads the upload
when woken: the message says only "look again", so a lost or duplicated one is harmless. The
waiters of one web worker share one Redis connection (``_Subscriber``).

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
from collections.abc import AsyncIterator

import redis
import redis.asyncio
from django.conf import settings

logger = logging.getLogger(__name__)

CHANNEL_PREFIX = "mairror:upload:"
# Short: publishing happens inside a pipeline step, and a Redis that hangs must not hold it.
REDIS_TIMEOUT_SECONDS = 1.0
# How long a waiter gives Redis to confirm its subscription (a refused connection fails at once). Not
# shorter: in a burst of a thousand new waiters the web worker's own event loop is what is slow, and a
# waiter that gave up would look again every second instead, adding to the burst.
SUBSCRIBE_TIMEOUT_SECONDS = 5.0
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


class _Subscriber:
    """One Redis connection per event loop (a web worker's) carrying every waiter's subscription.

    A thousand waiters are a thousand channels on one connection, not a thousand connections: no
    connection storm on Redis when they all arrive at once. Waiters come and go without a round trip
    of their own: a flusher task brings the connection's channels in line with the waiters', many
    channels per SUBSCRIBE or UNSUBSCRIBE, and a reader task hands each message to the waiters of its
    channel and each confirmation to whoever waits for it. It lives while it has waiters; a broken
    connection wakes them all (they fall back to sleeping) and the next waiter starts a new one.
    """

    def __init__(self, url: str):
        self.url = url
        self.client = redis.asyncio.Redis.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=None
        )
        self.pubsub = self.client.pubsub()
        self.waiters: dict[str, set[UploadChanges]] = {}
        self.confirmed: dict[str, asyncio.Future] = {}
        self.sent: set[str] = set()  # channels the connection is subscribed to, or is being
        self.flusher: asyncio.Task | None = None
        self.reader: asyncio.Task | None = None
        self.broken = False

    def add(self, channel: str, changes: UploadChanges) -> asyncio.Future:
        """Register a waiter; the future is done once Redis confirmed the channel's subscription."""
        self.waiters.setdefault(channel, set()).add(changes)
        future = self.confirmed.get(channel)
        if future is None:
            future = self.confirmed[channel] = asyncio.get_running_loop().create_future()
            if channel in self.sent:  # left and joined again before the flusher ran: still subscribed
                future.set_result(None)
            self._flush_soon()
        return future

    def remove(self, channel: str, changes: UploadChanges) -> bool:
        """Unregister a waiter; True if it was the last one, and the connection is to be closed."""
        waiters = self.waiters.get(channel)
        if waiters is None or changes not in waiters:
            return False
        waiters.discard(changes)
        if waiters:
            return False
        del self.waiters[channel]
        self.confirmed.pop(channel, None)
        if self.waiters:
            self._flush_soon()
            return False
        self._unregister()  # a waiter arriving from now on starts a new one
        return True

    def _flush_soon(self) -> None:
        if not self.broken and (self.flusher is None or self.flusher.done()):
            self.flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while True:
                wanted = set(self.waiters)
                leave, join = self.sent - wanted, wanted - self.sent
                if not leave and not join:
                    break
                if leave:
                    self.sent -= leave
                    await self.pubsub.unsubscribe(*leave)
                if join:
                    self.sent |= join
                    await self.pubsub.subscribe(*join)
                    if self.reader is None:
                        self.reader = asyncio.create_task(self._read())
        except (redis.RedisError, OSError) as error:
            logger.warning("no change events for %d uploads: %s", len(self.waiters), error)
            self._break()

    async def _read(self) -> None:
        try:
            while True:
                message = await self.pubsub.get_message(timeout=REDIS_TIMEOUT_SECONDS)
                if message is None:
                    continue
                channel = message["channel"]
                channel = channel.decode() if isinstance(channel, bytes) else channel
                if message["type"] == "subscribe":
                    future = self.confirmed.get(channel)
                    if future is not None and not future.done():
                        future.set_result(None)
                elif message["type"] == "message":
                    for changes in self.waiters.get(channel, ()):
                        changes._changed.set()
        except (redis.RedisError, OSError) as error:
            logger.warning("lost the change events of %d uploads: %s", len(self.waiters), error)
            self._break()

    def _unregister(self) -> None:
        key = (asyncio.get_running_loop(), self.url)
        if _subscribers.get(key) is self:
            del _subscribers[key]

    def _break(self) -> None:
        self.broken = True
        self._unregister()
        for channel, waiters in self.waiters.items():
            future = self.confirmed.get(channel)
            if future is not None and not future.done():
                future.set_exception(redis.ConnectionError("the subscriber's connection broke"))
                future.exception()  # retrieved: nobody may be awaiting it any more
            for changes in waiters:
                changes._lost = True
                changes._changed.set()
        asyncio.create_task(self._close_connection())

    async def _close_connection(self) -> None:
        for task in (self.reader, self.flusher):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        with contextlib.suppress(Exception):
            await self.pubsub.aclose()
        with contextlib.suppress(Exception):
            await self.client.aclose()


# Per event loop (one per web worker; the test client makes one per request) and REDIS_URL, while it
# has waiters.
_subscribers: dict[tuple[asyncio.AbstractEventLoop, str], _Subscriber] = {}


def _subscriber() -> _Subscriber:
    key = (asyncio.get_running_loop(), settings.REDIS_URL)
    if key not in _subscribers:
        _subscribers[key] = _Subscriber(key[1])
    return _subscribers[key]


class UploadChanges:
    """A subscription to one upload's changes; ``await changes.wait(seconds)`` until the next one."""

    def __init__(self, upload_id):
        self.upload_id = upload_id
        self._channel = upload_channel(upload_id)
        self._changed = asyncio.Event()
        self._subscriber: _Subscriber | None = None
        self._confirmed: asyncio.Future | None = None
        self._lost = False

    async def _subscribe(self, timeout: float) -> None:
        subscriber = _subscriber()
        self._subscriber = subscriber
        try:
            self._confirmed = subscriber.add(self._channel, self)
            await asyncio.wait_for(asyncio.shield(self._confirmed), timeout)
        except TimeoutError:
            # Sent, not yet confirmed (a burst of new waiters keeps the worker busy): kept, and until
            # it is confirmed each wait lasts at most FALLBACK_INTERVAL_SECONDS, so the caller reads
            # again after the confirmation and sees whatever changed before it.
            logger.info("upload %s: subscription not yet confirmed, looking again soon", self.upload_id)
        except (redis.RedisError, OSError) as error:
            logger.warning("no change events for upload %s (%s): looking again every second", self.upload_id, error)
            await self._close()

    async def wait(self, timeout: float) -> bool:
        """Until the upload changes (True) or ``timeout`` seconds pass (False); never longer.

        Without a subscription (Redis unreachable, or the connection lost) it sleeps up to
        FALLBACK_INTERVAL_SECONDS and answers True, so the caller reads the upload again.
        """
        if timeout <= 0:
            return False
        if self._subscriber is not None and not self._lost:
            confirmed = self._confirmed is not None and self._confirmed.done() and not self._confirmed.exception()
            limit = timeout if confirmed else min(timeout, FALLBACK_INTERVAL_SECONDS)
            try:
                await asyncio.wait_for(self._changed.wait(), limit)
            except TimeoutError:
                return limit < timeout  # unconfirmed: "look again"; else the wait is over
            self._changed.clear()
            if not self._lost:
                return True
            await self._close()
            timeout = FALLBACK_INTERVAL_SECONDS  # lost just now: look again soon
        await asyncio.sleep(min(FALLBACK_INTERVAL_SECONDS, timeout))
        return True

    async def _close(self) -> None:
        subscriber, self._subscriber = self._subscriber, None
        if subscriber is not None and subscriber.remove(self._channel, self):
            await subscriber._close_connection()


@contextlib.asynccontextmanager
async def upload_changes(
    upload_id, subscribe_timeout: float = SUBSCRIBE_TIMEOUT_SECONDS
) -> AsyncIterator[UploadChanges]:
    """Subscribe to an upload's changes for the block: read the upload inside it, then ``wait``.

    Redis gets ``subscribe_timeout`` seconds to confirm the subscription; without one (Redis down,
    or that slow) the block's waits sleep instead, as bounded as ever.

    Unsubscribes and closes its Redis connection on the way out, also when the request is
    cancelled (the client went away).
    """
    changes = UploadChanges(upload_id)
    await changes._subscribe(subscribe_timeout)
    try:
        yield changes
    finally:
        await changes._close()
