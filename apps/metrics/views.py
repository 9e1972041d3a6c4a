from django.http import Http404, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.metrics.exposition import scrape


@require_GET
@never_cache
def metrics(request):
    """Prometheus's scrape of the web (``apps.metrics.exposition``); the site's 404 while METRICS_TOKEN is empty."""
    answer = scrape(authorization=request.headers.get("Authorization"), live=True)
    if answer.status == 404:
        raise Http404("Metrics are off.")
    return HttpResponse(answer.body, status=answer.status, headers=answer.headers)
