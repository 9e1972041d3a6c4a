"""One error format for every API response that is not a success:

    {"error": {"code": "not_found", "message": "...", "details": {...}}}

``code`` is stable for programs, ``message`` is for people, ``details`` says what exactly was wrong.
"""

from django.http import JsonResponse
from django.urls import Resolver404, resolve
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.views import exception_handler

from apps.faces.selectors import FacesUnavailable
from apps.predictions.services import PredictionUnavailable
from apps.uploads.images import UploadRejected

FACES_RETRY_AFTER_SECONDS = 60  # FacesUnavailable's message says "in a minute"


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


class UploadRejectedError(exceptions.APIException):
    """An ``UploadRejected`` from the uploads app, as an HTTP error."""

    def __init__(self, rejection: UploadRejected):
        super().__init__(rejection.message, rejection.code)
        self.status_code = rejection.status_code
        self.details = rejection.details


class ServiceUnavailableError(exceptions.APIException):
    """Storage, the broker or MongoDB is down (and of a photo nothing was kept): 503, and when to try again."""

    default_code = "service_unavailable"

    status_code = 503

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.wait = retry_after  # DRF's handler sends it as Retry-After


def error_entry(error: UploadRejected | PredictionUnavailable) -> dict:
    """One photo's refusal inside a batch answer, in the error format: the photo's error, not the request's."""
    if isinstance(error, UploadRejected):
        return error_body(error.code, error.message, error.details)
    return error_body("service_unavailable", error.message, {"retry_after": error.retry_after})


def api_exception_handler(exc, context):
    """DRF's handler (statuses, headers such as WWW-Authenticate) with our body."""
    if isinstance(exc, UploadRejected):
        exc = UploadRejectedError(exc)
    elif isinstance(exc, PredictionUnavailable):
        exc = ServiceUnavailableError(exc.message, exc.retry_after)
    elif isinstance(exc, FacesUnavailable):
        exc = ServiceUnavailableError(FacesUnavailable.message, FACES_RETRY_AFTER_SECONDS)
    response = exception_handler(exc, context)
    if response is None:
        return None  # unexpected errors: Django's 500 handler, below
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body("invalid", "The request is not valid.", exc.detail)
    elif isinstance(exc, exceptions.UnsupportedMediaType) and context.get("view") is not None:
        accepted = [parser.media_type for parser in context["view"].parser_classes]
        response.data = error_body(
            "unsupported_media_type",
            f"{exc.detail} This URL takes {', '.join(accepted)}.",
            {"content_type": context["request"].content_type, "accepted": accepted},
        )
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else response.data.get("detail", "")
        response.data = error_body(
            getattr(detail, "code", None) or getattr(exc, "default_code", "error"),
            str(detail),
            getattr(exc, "details", None),
        )
    return response


def not_found(request, exception):
    """404 for URLs that match no view: the error format under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", "There is nothing at this address."), status=404)
    return defaults.page_not_found(request, exception)


@csrf_exempt  # any method: the answer is a 404 in the API's format, never the CSRF failure page
def api_path_not_found(request):
    """Every /api/ URL no view matches, whatever the method; also with DEBUG on, where Django would
    answer its HTML page. Says which URL was meant when it can tell: a slash too many or too few,
    or a prediction id that is not one."""
    path, details = request.path, {"path": request.path}
    for meant in (path.rstrip("/"), path + "/"):
        if meant != path and _is_a_view(meant):
            details["url"] = meant
            return JsonResponse(
                error_body("not_found", f"There is nothing at this address; did you mean {meant}?", details), status=404
            )
    if path.startswith("/api/v1/predictions/"):
        message = "A prediction id is the UUID the upload answered with: /api/v1/predictions/<id>."
        return JsonResponse(error_body("not_found", message, details), status=404)
    return JsonResponse(error_body("not_found", "There is nothing at this address.", details), status=404)


def _is_a_view(path: str) -> bool:
    try:
        return resolve(path).func is not api_path_not_found
    except Resolver404:
        return False


def bad_request(request, exception):
    """400 for what Django refuses before any view (a body past DATA_UPLOAD_MAX_MEMORY_SIZE read whole, too many
    fields or files, a bad Host): the error format under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("bad_request", "The request cannot be read."), status=400)
    return defaults.bad_request(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("server_error", "An internal error occurred."), status=500)
    return defaults.server_error(request)
