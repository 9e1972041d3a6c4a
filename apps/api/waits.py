"""``GET /api/v1/predictions/<id>?wait=N`` as an async view: a waiting client costs a coroutine, no thread.

The DRF view (``PredictionDetailApi``) stays what answers: authentication, the query's checks, the
lookup, the JSON and every error are its own, called through ``sync_to_async``. This view only
decides when to call it: once when the client does not ask to wait; otherwise it subscribes to the
upload's changes first (``apps.uploads.events``), then calls it, and while the upload is unfinished
calls it again at each change until it finishes or the wait is over: no change is missed, and
nothing polls SQL meanwhile.
"""

import time

from django.views.decorators.csrf import csrf_exempt

from apps.api.apis import PredictionDetailApi
from apps.api.serializers import PredictionWaitInputSerializer
from apps.uploads.events import SUBSCRIBE_TIMEOUT_SECONDS, upload_changes
from apps.uploads.models import Upload
from mairror.request_threads import run_sync_then_release

UNFINISHED = {Upload.Status.PENDING, Upload.Status.PROCESSING}

_detail = PredictionDetailApi.as_view()


@csrf_exempt  # as every DRF view: API keys, not cookies
async def prediction_detail(request, prediction_id):
    """The detail view for every method; a GET with ``wait`` waits here, not in a thread."""
    wait = _wait_asked(request)
    if not wait:
        return await _answer(request, prediction_id)
    deadline = time.monotonic() + wait
    async with upload_changes(
        prediction_id, subscribe_timeout=min(SUBSCRIBE_TIMEOUT_SECONDS, max(wait, 1.0))
    ) as changes:
        while True:
            response = await _answer(request, prediction_id)  # subscribed first: a change from now on wakes us
            remaining = deadline - time.monotonic()
            if not _unfinished(response) or remaining <= 0:
                return response
            if not await changes.wait(remaining):
                return response  # no change since it was read: still as it was


# drf-spectacular documents a URL through its view class: this view is that class's, waiting aside.
prediction_detail.cls = _detail.cls
prediction_detail.initkwargs = _detail.initkwargs


async def _answer(request, prediction_id):
    """The DRF view's answer; the thread it ran in is given back, since a wait may follow (no thread waits)."""
    return await run_sync_then_release(_detail, request, prediction_id=prediction_id)


def _unfinished(response) -> bool:
    return response.status_code == 200 and response.data.get("status") in UNFINISHED


def _wait_asked(request) -> float:
    """Seconds a GET asks to wait; 0 for anything else, an invalid ``wait`` included (the DRF view says why)."""
    if request.method != "GET" or "wait" not in request.GET:
        return 0.0
    query = PredictionWaitInputSerializer(data=request.GET)
    return query.validated_data["wait"] if query.is_valid() else 0.0
