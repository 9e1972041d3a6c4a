"""Times every web request for ``mairror_http_request_duration_seconds``; first in MIDDLEWARE, so the
others' time counts too."""

import time

from asgiref.sync import iscoroutinefunction
from django.utils.decorators import sync_and_async_middleware

from apps.metrics.series import REQUEST_SECONDS

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Static files (WhiteNoise answers before any URL is resolved) and URLs that match no view.
UNRESOLVED = "unresolved"


@sync_and_async_middleware
def request_metrics(get_response):
    """Sync or async as the chain is: an async one stays async (the waits hold no thread)."""
    if iscoroutinefunction(get_response):

        async def middleware(request):
            started = time.perf_counter()
            response = await get_response(request)
            _observe(request, response, time.perf_counter() - started)
            return response

    else:

        def middleware(request):
            started = time.perf_counter()
            response = get_response(request)
            _observe(request, response, time.perf_counter() - started)
            return response

    return middleware


def _observe(request, response, seconds: float) -> None:
    """Labels from fixed sets only: the URL pattern's name, not the path (ids would make a series each)."""
    match = request.resolver_match
    REQUEST_SECONDS.labels(
        view=match.view_name if match else UNRESOLVED,
        method=request.method if request.method in METHODS else "other",
        status=str(response.status_code),
    ).observe(seconds)
