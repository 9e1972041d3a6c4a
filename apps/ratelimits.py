"""What the rate limits of the API, the upload page and the Telegram bot share; each defines its own.

DRF's sliding-window throttles, with their counters in the shared Django cache (Redis), so every
web process and worker counts together. Rates come from the settings (``"N/minute"``; empty: no
limit) and are read on every request, so a changed setting applies at once. A limiter whose Redis
is unreachable lets the request through with a warning: refusing every upload, or answering 500,
because the counters are out of reach would be worse than not counting for a while.

Client IPs are REMOTE_ADDR, or the X-Forwarded-For entry added by the nearest trusted proxy when
``TRUSTED_PROXY_COUNT`` (DRF's NUM_PROXIES) says there are proxies; without it a client's own
X-Forwarded-For is ignored, so it cannot pick a fresh address for every request.

Not an app: it imports none, and the apps that take photos (api, web, telegram) import it.
"""

import ipaddress
import logging
import math

import redis.exceptions
from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)


class UploadRateThrottle(SimpleRateThrottle):
    """Counts what ``get_cache_key`` names; ``rate_setting`` is the setting holding the rate."""

    rate_setting: str

    def get_rate(self) -> str | None:
        return getattr(settings, self.rate_setting) or None

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except redis.exceptions.RedisError as error:
            logger.warning("rate limit %s not applied, its counters are unreachable: %s", self.scope, error)
            return True

    def retry_after(self) -> int:
        """Whole seconds until the next request may pass, for a Retry-After header; at least 1."""
        return max(1, math.ceil(self.wait() or 0))

    def wait_for(self, request) -> int | None:
        """None when ``request`` may pass now (and is counted), else the seconds it has to wait."""
        return None if self.allow_request(request, None) else self.retry_after()


class UploadRatePerAddress(UploadRateThrottle):
    """Photos POSTed from one client address (its network, for IPv6: ``client_network``)."""

    def get_cache_key(self, request, view) -> str | None:
        if request.method != "POST":
            return None
        return self.cache_format % {"scope": self.scope, "ident": client_network(self.get_ident(request))}


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
