"""The API's waits as async views: a waiting client costs a coroutine, no thread.

The DRF views stay what answers: authentication, the query's checks, the lookup, the JSON and every
error are theirs, called through ``sync_to_async``. These views only decide when to call them.

``GET /api/v1/predictions/<id>?wait=N``: the DRF view answers; if the upload is unfinished, this view
waits for it (``_wait_until_finished``) and lets the DRF view answer again. ``POST
/api/v1/predictions?wait=N`` and ``POST /api/v1/predictions/batch?wait=N``: the DRF view takes the
photos and answers; when it accepted some, this view waits for them and reads the finished ones
into the answer (``apps.api.apis.created_answer_refresh``).

A wait subscribes to the uploads' changes first (``apps.uploads.events``), then reads their
statuses, then waits while any is unfinished: a change that is a step of the pipeline (claimed,
faces found) costs one indexed query, not an answer. No change is missed, and nothing polls SQL.

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
from apps.uploads.selectors import uploads_unfinished
from mairror.request_threads import run_sync_then_release

UNFINISHED = {Upload.Status.PENDING, Upload.Status.PROCESSING}

_detail = PredictionDetailApi.as_view()
_list_create = PredictionListCreateApi.as_view()
_batch = PredictionBatchApi.as_view()


@csrf_exempt  # as every DRF view: API keys, not cookies
async def prediction_detail(request, prediction_id):
    """The detail view for every method; a GET with ``wait`` waits here, not in a thread. The DRF view
    answers first (the key, the lookup, the checks), so only the owner of an unfinished upload waits."""
    wait = _wait_asked(request.method, request.GET, "GET")
    deadline = time.monotonic() + wait
    response = await _answer(request, prediction_id)
    if not wait or not _unfinished(response):
        return response
    await _wait_until_finished([str(prediction_id)], deadline)
    return await _answer(request, prediction_id)


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
    """A DRF detail answer whose upload is pending or processing."""
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
