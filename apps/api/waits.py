"""The API's waits as async views: a waiting client costs a coroutine, no thread.

``GET /api/v1/predictions/<id>?wait=N``: the DRF view (``PredictionDetailApi``) stays what answers:
authentication, the query's checks, the lookup, the JSON and every error are its own, called
through ``sync_to_async``. This view only decides when to call it: once when the client does not
ask to wait; otherwise it subscribes to the upload's changes first (``apps.uploads.events``), then
calls it, and while the upload is unfinished waits for its changes. A change that is a step of the
pipeline (claimed, faces found) costs one indexed lookup, not an answer; the view answers again
once the upload finishes, or when the wait is over and something changed since the last answer.
No change is missed, and nothing polls SQL.

``POST /api/v1/predictions?wait=N`` and ``POST /api/v1/predictions/batch?wait=N``: the DRF view
takes the photos and answers; when it accepted some, this view subscribes to their changes, reads
their statuses, waits while any is unfinished, and reads the finished ones into the answer
(``apps.api.apis.created_answer_refresh``).

Each view says, by its ``waits`` attribute, which requests of its URL wait: only those are served
as coroutines (``mairror.sync_requests``), every other one runs whole in a pooled thread.
"""

import asyncio
import contextlib
import time

from django.views.decorators.csrf import csrf_exempt

from apps.api.apis import (
    PredictionBatchApi,
    PredictionDetailApi,
    PredictionListCreateApi,
    created_answer_refresh,
    unfinished_upload_ids,
)
from apps.api.serializers import PredictionWaitInputSerializer
from apps.uploads.events import SUBSCRIBE_TIMEOUT_SECONDS, upload_changes
from apps.uploads.models import Upload
from apps.uploads.selectors import upload_is_unfinished, uploads_unfinished
from mairror.request_threads import run_sync_then_release

UNFINISHED = {Upload.Status.PENDING, Upload.Status.PROCESSING}

_detail = PredictionDetailApi.as_view()
_list_create = PredictionListCreateApi.as_view()
_batch = PredictionBatchApi.as_view()


@csrf_exempt  # as every DRF view: API keys, not cookies
async def prediction_detail(request, prediction_id):
    """The detail view for every method; a GET with ``wait`` waits here, not in a thread."""
    wait = _wait_asked(request.method, request.GET, "GET")
    if not wait:
        return await _answer(request, prediction_id)
    deadline = time.monotonic() + wait
    async with upload_changes(prediction_id, subscribe_timeout=_subscribe_timeout(wait)) as changes:
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


@csrf_exempt
async def predictions(request):
    """The collection: the list, and the upload of one photo, which with ``wait`` waits for its result."""
    return await _create_then_wait(_list_create, request)


@csrf_exempt
async def prediction_batch(request):
    """Several photos; with ``wait``, until all of them are finished or the wait is over."""
    return await _create_then_wait(_batch, request)


async def _create_then_wait(view, request):
    wait = _wait_asked(request.method, request.GET, "POST")
    started = time.monotonic()
    response = await run_sync_then_release(view, request)
    upload_ids = unfinished_upload_ids(response) if wait and response.status_code == 202 else []
    if not upload_ids:
        return response
    await _wait_until_finished(upload_ids, deadline=started + wait)
    return await run_sync_then_release(created_answer_refresh, response)


async def _wait_until_finished(upload_ids: list[str], deadline: float) -> None:
    """Until none of these uploads is unfinished, or the deadline; subscribed before the first read."""
    async with contextlib.AsyncExitStack() as stack:
        timeout = _subscribe_timeout(deadline - time.monotonic())
        changes = {
            upload_id: await stack.enter_async_context(upload_changes(upload_id, subscribe_timeout=timeout))
            for upload_id in upload_ids
        }
        unfinished = await run_sync_then_release(uploads_unfinished, upload_ids=upload_ids)
        while unfinished:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not await _any_change([changes[upload_id] for upload_id in unfinished], remaining):
                return
            unfinished = await run_sync_then_release(uploads_unfinished, upload_ids=unfinished)


async def _any_change(changes: list, timeout: float) -> bool:
    """``UploadChanges.wait`` for several: True at the first change of any, False when the time is over."""
    if len(changes) == 1:
        return await changes[0].wait(timeout)
    waits = [asyncio.ensure_future(change.wait(timeout)) for change in changes]
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in waits:
            pending.cancel()
    return any(finished.result() for finished in done)


# drf-spectacular documents a URL through its view class: each view here is that class's, waiting aside.
for _view, _drf_view in ((prediction_detail, _detail), (predictions, _list_create), (prediction_batch, _batch)):
    _view.cls, _view.initkwargs = _drf_view.cls, _drf_view.initkwargs

# Which requests wait (``mairror.sync_requests`` serves only those as coroutines): (method, query) -> bool.
prediction_detail.waits = lambda method, query: bool(_wait_asked(method, query, "GET"))
predictions.waits = prediction_batch.waits = lambda method, query: bool(_wait_asked(method, query, "POST"))


async def _answer(request, prediction_id):
    """The DRF view's answer; the thread it ran in is given back, since a wait may follow (no thread waits)."""
    return await run_sync_then_release(_detail, request, prediction_id=prediction_id)


def _unfinished(response) -> bool:
    return response.status_code == 200 and response.data.get("status") in UNFINISHED


def _subscribe_timeout(wait: float) -> float:
    return min(SUBSCRIBE_TIMEOUT_SECONDS, max(wait, 1.0))


def _wait_asked(method: str, query, waiting_method: str) -> float:
    """Seconds a request asks to wait; 0 for other methods and for an invalid ``wait`` (the DRF view
    says why). ``query``: a QueryDict, or ``parse_qs``'s dict of lists."""
    if method != waiting_method or "wait" not in query:
        return 0.0
    wait = query.getlist("wait") if hasattr(query, "getlist") else query["wait"]
    checked = PredictionWaitInputSerializer(data={"wait": wait[-1]})
    return checked.validated_data["wait"] if checked.is_valid() else 0.0
