"""The upload page: thin views over the web services and selectors.

Anyone may send a photo. Its result lives at an address with the upload's random id, which
is what keeps it private; only the browser that sent a photo may delete it.
"""

import json
import time

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponse, HttpResponseForbidden, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.faces.selectors import FacesUnavailable, face_crop_png
from apps.predictions.services import PredictionUnavailable
from apps.uploads.events import upload_changes
from apps.uploads.images import UploadRejected, reject_oversized_body
from apps.uploads.selectors import upload_read_display_jpeg
from apps.web.selectors import (
    STAGE_MESSAGES,
    web_upload_get,
    web_upload_is_from_session,
    web_upload_stage,
    web_uploads_of_session,
)
from apps.web.services import web_upload_create, web_upload_delete
from apps.web.throttling import page_upload_wait
from mairror.request_threads import run_sync_then_release

# The photo and crops of an upload never change; they are private to whoever has the address.
PRIVATE_MAX_AGE = 24 * 3600
# "Your photos" shows each at 64 CSS pixels: twice that is sharp on a phone's screen, and a few kB.
THUMBNAIL_SIDE = 128
FAVICON_MAX_AGE = 24 * 3600
NOT_YOURS = "Only the browser that sent this photo can delete it."
NOT_LISTED = "Only the browser that sent this photo lists it."
TOO_MANY_PHOTOS = "You sent many photos in a short time. Please try again in {seconds} seconds."
# A progress stream ends after this long and the browser's EventSource opens the next one (RETRY_MS
# later): no connection stays open for ever, through proxies that cut idle ones.
EVENTS_STREAM_SECONDS = 60
EVENTS_KEEPALIVE_SECONDS = 15
EVENTS_RETRY_MS = 1000
GONE_MESSAGE = "This photo has been deleted."


class PhotoForm(forms.Form):
    image = forms.FileField(error_messages={"required": "Choose a photo first.", "empty": "The file is empty."})


@require_http_methods(["GET", "POST"])
def upload_page(request):
    """The form (GET); a photo sent from it (POST): to its result, or back with the reason it was refused.

    The page's script asks for JSON so it can show the reason without leaving the page.
    """
    if request.method == "GET":
        return _upload_page(request)
    wait = page_upload_wait(request)
    if wait is not None:  # 429 before the photo is even read
        return _refused(request, TOO_MANY_PHOTOS.format(seconds=wait), 429, retry_after=wait)
    try:
        reject_oversized_body(request.META.get("CONTENT_LENGTH"))
        form = PhotoForm(files=request.FILES)
        if not form.is_valid():
            raise UploadRejected(form.errors["image"][0])
        upload = web_upload_create(image=form.cleaned_data["image"], session=request.session)
    except UploadRejected as rejection:
        return _refused(request, rejection.message, rejection.status_code)
    except PredictionUnavailable as unavailable:  # storage or the broker is down: nothing was kept
        return _refused(request, unavailable.message, unavailable.status_code, retry_after=unavailable.retry_after)
    url = reverse("web:result", args=[upload.pk])
    if _wants_json(request):
        return JsonResponse({"url": url}, status=201)
    return redirect(url)


@require_GET
@never_cache
def result(request, upload_id):
    upload = _get_or_404(upload_id)
    stage = web_upload_stage(upload=upload)
    context = {
        "upload": upload,
        "faces": list(upload.faces.all()),
        "stage": stage,
        "stage_message": STAGE_MESSAGES[stage],
        "can_delete": web_upload_is_from_session(upload=upload, session=request.session),
    }
    response = render(request, "web/result.html", context)
    response["X-Robots-Tag"] = "noindex"
    return response


@require_GET
@never_cache
def status(request, upload_id):
    """What the result page polls while the photo is analysed, where its event stream (``events``) fails."""
    return JsonResponse(_progress(_get_or_404(upload_id)))


@require_GET
@never_cache
async def events(request, upload_id):
    """The result page's progress as server-sent events (``text/event-stream``), woken by the upload's
    change events: a ``stage`` event now and at each change (the same JSON as ``status``), ``gone``
    if the photo is deleted. The stream ends once the upload is finished, or after
    EVENTS_STREAM_SECONDS (the browser then reconnects). An open stream holds no server thread.
    """
    await run_sync_then_release(_get_or_404, upload_id)
    response = StreamingHttpResponse(_progress_events(upload_id), content_type="text/event-stream")
    response["X-Accel-Buffering"] = "no"  # a proxy passes each event on at once
    return response


async def _progress_events(upload_id):
    deadline = time.monotonic() + EVENTS_STREAM_SECONDS
    yield f"retry: {EVENTS_RETRY_MS}\n\n"
    last = None
    async with upload_changes(upload_id) as changes:  # subscribed before each read: no change is missed
        while True:
            upload = await run_sync_then_release(web_upload_get, upload_id=upload_id)
            if upload is None:
                yield _event("gone", {"message": GONE_MESSAGE})
                return
            progress = _progress(upload)
            if progress != last:
                yield _event("stage", progress)
                last = progress
            remaining = deadline - time.monotonic()
            if progress["finished"] or remaining <= 0:
                return
            if not await changes.wait(min(EVENTS_KEEPALIVE_SECONDS, remaining)):
                yield ": keep-alive\n\n"


def _progress(upload) -> dict:
    stage = web_upload_stage(upload=upload)
    return {"stage": stage, "message": STAGE_MESSAGES[stage], "finished": upload.is_finished}


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


@require_GET
def photo(request, upload_id):
    upload = _get_or_404(upload_id)
    try:
        data = upload_read_display_jpeg(upload=upload)
    except OSError as error:  # gone from storage, or not decodable (the result page says why)
        raise Http404("The photo cannot be shown.") from error
    return _private_image(data, "image/jpeg")


@require_GET
def thumbnail(request, upload_id):
    """The photo made small for the list of this browser's photos, and only for that browser."""
    upload = _get_or_404(upload_id)
    if not web_upload_is_from_session(upload=upload, session=request.session):
        return HttpResponseForbidden(NOT_LISTED)
    try:
        data = upload_read_display_jpeg(upload=upload, max_side=THUMBNAIL_SIDE)
    except OSError as error:
        raise Http404("The photo cannot be shown.") from error
    return _private_image(data, "image/jpeg")


@require_GET
def face_crop(request, upload_id, face_index: int):
    upload = _get_or_404(upload_id)
    try:
        data = face_crop_png(upload_id=upload.pk, face_index=face_index)
    except FacesUnavailable as error:
        return HttpResponse(
            error.message, status=503, content_type="text/plain; charset=utf-8", headers={"Retry-After": "30"}
        )
    if data is None:
        raise Http404("No such face.")
    return _private_image(data, "image/png")


@require_POST
def delete(request, upload_id):
    upload = _get_or_404(upload_id)
    if not web_upload_is_from_session(upload=upload, session=request.session):
        return HttpResponseForbidden(NOT_YOURS)
    web_upload_delete(upload=upload)
    messages.success(request, "The photo, its faces and their results were deleted.")
    return redirect("web:upload")


@require_GET
def favicon(request):
    """Browsers ask for /favicon.ico wherever a page links no icon (the admin, the API's JSON): sent on to the
    SVG the site's pages link, instead of a 404 in every log. A redirect rather than a copy at the root: one
    file, served by WhiteNoise with the other static files; not a permanent one, so it can change."""
    response = redirect(static("web/favicon.svg"))
    patch_cache_control(response, public=True, max_age=FAVICON_MAX_AGE)
    return response


def _upload_page(request, error: str = "", status: int = 200):
    context = {
        "error": error,
        "max_bytes": settings.MAX_UPLOAD_BYTES,
        "max_megapixels": settings.MAX_IMAGE_PIXELS / 1e6,
        "recent": web_uploads_of_session(session=request.session),
    }
    return render(request, "web/upload.html", context, status=status)


def _refused(request, message: str, status: int, retry_after: int | None = None) -> HttpResponse:
    """The photo was not taken: the reason in JSON for the page's script, or the page with the reason."""
    if _wants_json(request):
        response = JsonResponse({"error": message}, status=status)
    else:
        response = _upload_page(request, error=message, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def _get_or_404(upload_id):
    upload = web_upload_get(upload_id=upload_id)
    if upload is None:
        raise Http404("There is no photo at this address. It may have been deleted.")
    return upload


def _private_image(data: bytes, content_type: str) -> HttpResponse:
    response = HttpResponse(data, content_type=content_type)
    patch_cache_control(response, private=True, max_age=PRIVATE_MAX_AGE)
    return response


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")
