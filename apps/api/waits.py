"""``GET /api/v1/predictions/<id>?wait=N`` as an async view: a waiting client costs a coroutine, no thread.

The DRF view (``PredictionDetailApi``) stays what answers: authentication, the query's checks, the
lookup, the JSON and every error are its own, called through ``sync_to_async``. This view only
decides when to call it: once when the client does not ask to wait; otherwise it subscribes to the
upload's changes first (``apps.uploads.events``), then calls it, and while the upload is unfinished
waits for its changes. A change that is a step of the pipeline (claimed, faces found) costs one
indexed lookup, not an answer; the view answers again once the upload finishes, or when the wait is
over and something changed since the last answer. No change is missed, and nothing polls SQL.
"""

import time

from django.views.decorators.csrf import csrf_exempt

from apps.api.apis import PredictionDetailApi
from apps.api.serializers import PredictionWaitInputSerializer
from apps.uploads.events import SUBSCRIBE_TIMEOUT_SECONDS, upload_changes
from apps.uploads.models import Upload
from apps.uploads.selectors import upload_is_unfinished
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
        response = await _answer(request, prediction_id)  # subscribed first: a change from now on wakes us
        stale = False  # something changed since ``response`` was read
        while _unfinished(response):
            remaining = deadline - time.monotonic()
            if remaining > 0 and await changes.wait(remaining):
                if await run_sync_then_release(upload_is_unfinished, upload_id=prediction_id):
                    stale = True  # a step, not the end
                    continue
            elif not stale:
                break  # the wait is over, and the upload is as it was read
            response = await _answer(request, prediction_id)
            stale = False
        return response


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
