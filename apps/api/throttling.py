"""The API's rate limits on photos: per key and per client address (``apps.ratelimits``)."""

from rest_framework_api_key.models import APIKey

from apps.ratelimits import UploadRatePerAddress, UploadRateThrottle


class UploadRatePerKey(UploadRateThrottle):
    """Photos sent with one API key (GETs and DELETEs are not counted)."""

    scope = "upload_key"
    rate_setting = "UPLOAD_RATE_PER_KEY"

    def get_cache_key(self, request, view) -> str | None:
        if request.method != "POST" or not isinstance(request.auth, APIKey):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.prefix}


class UploadRatePerIp(UploadRatePerAddress):
    """Photos sent to the API from one client address, whatever the key."""

    scope = "upload_ip"
    rate_setting = "UPLOAD_RATE_PER_IP"
