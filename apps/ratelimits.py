"""What the rate limits of the API, the upload page and the Telegram bot share; each defines its own.

DRF's throttle classes (rates, keys, Retry-After), counting in a sliding window in Redis (the Django
cache's), so every web process and worker counts together. Each check is one Lua script, so
concurrent requests cannot all read "one left" and all pass: DRF's own counter reads the history,
then writes it back (40 simultaneous uploads against 30/minute got 36 through). Rates come from
the settings (``"N/minute"``; empty: no limit) and are read on every request, so a changed setting
applies at once. A limiter whose Redis
is unreachable lets the request through with a warning: refusing every upload, or answering 500,
because the counters are out of reach would be worse than not counting for a while.

Client IPs are REMOTE_ADDR, or the X-Forwarded-For entry added by the nearest trusted proxy when
``TRUSTED_PROXY_COUNT`` (DRF's NUM_PROXIES) says there are proxies; without it a client's own
X-Forwarded-For is ignored, so it cannot pick a fresh address for every request.

Not an app: it imports none, and the apps that take photos (api, web, telegram) import it.
"""

import functools
import ipaddress
import logging
import math
import uuid

import redis
import redis.exceptions
from django.conf import settings
from django.dispatch import Signal
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

logger = logging.getLogger(__name__)

# Sent each time a limit refuses a request (apps.metrics counts them). Argument: ``scope``, the limit's.
rate_limited = Signal()

# KEYS[1]: the window's sorted set (members: photos, scores: their times). ARGV: the window in seconds,
# the limit, a unique member prefix, the photos this request sends. Counts them and returns -1 if they
# fit under the limit within the window, else returns (as a string) the seconds until enough of those
# counted leave it (the whole window when the request alone sends more than the limit). Redis's clock.
SLIDING_WINDOW = """
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1e6
local window, limit, photos = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local counted = redis.call('ZCARD', KEYS[1])
if counted + photos <= limit then
    for i = 1, photos do
        redis.call('ZADD', KEYS[1], now, ARGV[3] .. ':' .. i)
    end
    redis.call('EXPIRE', KEYS[1], math.ceil(window))
    return -1
end
if photos > limit or counted == 0 then
    return tostring(window)
end
local leaving = redis.call('ZRANGE', KEYS[1], counted + photos - limit - 1, counted + photos - limit - 1, 'WITHSCORES')
return tostring(tonumber(leaving[2]) + window - now)
"""


class UploadRateThrottle(SimpleRateThrottle):
    """Counts photos for what ``get_cache_key`` names; ``rate_setting`` is the setting holding the rate.

    A request counts as many photos as its view's ``photo_count`` says (a batch), else as one.
    """

    rate_setting: str

    def get_rate(self) -> str | None:
        return getattr(settings, self.rate_setting) or None

    def allow_request(self, request, view) -> bool:
        self.seconds_to_wait = None
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        try:
            answer = _sliding_window(settings.CACHES["default"]["LOCATION"])(
                keys=[f"mairror-ratelimit:{key}"],
                args=[self.duration, self.num_requests, uuid.uuid4().hex, getattr(view, "photo_count", 1)],
            )
        except redis.exceptions.RedisError as error:
            logger.warning("rate limit %s not applied, its counters are unreachable: %s", self.scope, error)
            return True
        if int(float(answer)) == -1:
            return True
        self.seconds_to_wait = float(answer)
        rate_limited.send(sender=type(self), scope=self.scope)
        return False

    def wait(self) -> float | None:
        return self.seconds_to_wait

    def retry_after(self) -> int:
        """Whole seconds until the next request may pass, for a Retry-After header; at least 1."""
        return max(1, math.ceil(self.wait() or 0))

    def wait_for(self, request) -> int | None:
        """None when ``request`` may pass now (and is counted), else the seconds it has to wait."""
        return None if self.allow_request(request, None) else self.retry_after()


@functools.cache
def _sliding_window(url: str):
    """The script on a client of the cache's Redis, one per process and URL (EVALSHA; loaded on first use)."""
    client = redis.Redis.from_url(url, **settings.CACHES["default"].get("OPTIONS", {}))
    return client.register_script(SLIDING_WINDOW)


class UploadRatePerAddress(UploadRateThrottle):
    """Photos POSTed from one client address (its network, for IPv6: ``client_network``)."""

    def get_cache_key(self, request, view) -> str | None:
        if request.method != "POST":
            return None
        return self.cache_format % {"scope": self.scope, "ident": client_address(request)}


def client_address(request) -> str:
    """The client a request counts for (its network for IPv6), as the upload limits see it; also what
    django-axes counts failed admin logins by (``AXES_CLIENT_IP_CALLABLE``)."""
    return client_network(BaseThrottle().get_ident(request))


def client_network(address: str) -> str:
    """What one client owns: its IPv4 address, or its IPv6 /64 (one network's hosts pick any address
    in it, and privacy extensions rotate them), so that new addresses do not mean new limits."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return address
