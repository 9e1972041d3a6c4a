"""The public JSON API: thin views over the services and selectors. A client sees only what its key created."""

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.api.errors import error_entry
from apps.api.parsers import BASE64_BYTES_PER_CHARACTER, PHOTO_PARSERS
from apps.api.serializers import (
    PredictionBatchInputSerializer,
    PredictionCreateBase64InputSerializer,
    PredictionCreatedSerializer,
    PredictionCreateInputSerializer,
    PredictionInBatchSerializer,
    PredictionSerializer,
    PredictionWaitInputSerializer,
    prediction_url,
)
from apps.api.throttling import UploadRatePerIp, UploadRatePerKey
from apps.faces.selectors import face_crop_png
from apps.predictions.selectors import prediction_get, prediction_list, predictions_by_id
from apps.predictions.services import PredictionUnavailable, prediction_request, upload_erase
from apps.uploads.images import MULTIPART_OVERHEAD_BYTES, FileTooLarge, UploadRejected, reject_oversized_body
from apps.uploads.models import Upload

UNFINISHED = {Upload.Status.PENDING, Upload.Status.PROCESSING}

ERROR_RESPONSE = inline_serializer(
    "Error",
    {
        "error": inline_serializer(
            "ErrorBody",
            {"code": serializers.CharField(), "message": serializers.CharField(), "details": serializers.DictField()},
        )
    },
)


PHOTO_BODIES = {
    "multipart/form-data": PredictionCreateInputSerializer,
    "application/json": PredictionCreateBase64InputSerializer,
    "image/*": OpenApiTypes.BINARY,
    "application/octet-stream": OpenApiTypes.BINARY,
}


class TooManyPhotos(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "too_many_photos"

    def __init__(self, photos: int):
        super().__init__(f"A batch holds at most {settings.MAX_BATCH_PHOTOS} photos; this one has {photos}.")
        self.details = {"max_photos": settings.MAX_BATCH_PHOTOS, "photos": photos}


class PredictionListCreateApi(APIView):
    parser_classes = PHOTO_PARSERS
    pagination_class = PageNumberPagination
    throttle_classes = [UploadRatePerKey, UploadRatePerIp]  # POSTs only: reading is not limited

    @extend_schema(
        tags=["predictions"],
        operation_id="predictions_create",
        summary="Send a photo for analysis, optionally waiting for the result",
        description="The photo as multipart (field `image`), as the body itself (`image/*`, "
        '`application/octet-stream`), or as JSON `{"image": "<base64>"}`. With `wait`, answers 200 and the '
        "result if the analysis finishes within that many seconds, else 202 as without it.",
        request=PHOTO_BODIES,
        parameters=[PredictionWaitInputSerializer],
        responses={
            200: PredictionSerializer,
            202: PredictionCreatedSerializer,
            400: ERROR_RESPONSE,
            401: ERROR_RESPONSE,
            413: ERROR_RESPONSE,
            415: ERROR_RESPONSE,
            429: ERROR_RESPONSE,
            503: ERROR_RESPONSE,
        },
    )
    def post(self, request):
        # ``wait`` is honoured by apps.api.waits, the async view in front of this one; checked here,
        # before the photo is taken.
        PredictionWaitInputSerializer(data=request.query_params).is_valid(raise_exception=True)
        _reject_oversized_photo_body(request)
        serializer = PredictionCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = prediction_request(
            image=serializer.validated_data["image"], channel=Upload.Channel.API, owner=request.auth
        )
        url = prediction_url(request, upload.pk)
        data = PredictionCreatedSerializer({"id": upload.pk, "status": upload.status, "url": url}).data
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": url})

    @extend_schema(
        tags=["predictions"],
        operation_id="predictions_list",
        summary="List your predictions, newest first",
        responses={200: PredictionSerializer(many=True), 401: ERROR_RESPONSE, 404: ERROR_RESPONSE},  # 404: no such page
    )
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(prediction_list(owner=request.auth), request, view=self)
        return paginator.get_paginated_response(PredictionSerializer(page, many=True, context=_context(request)).data)


class PredictionDetailApi(APIView):
    @extend_schema(
        tags=["predictions"],
        operation_id="predictions_retrieve",
        summary="Get a prediction, optionally waiting for it to finish",
        parameters=[PredictionWaitInputSerializer],
        responses={200: PredictionSerializer, 400: ERROR_RESPONSE, 401: ERROR_RESPONSE, 404: ERROR_RESPONSE},
    )
    def get(self, request, prediction_id):
        query = PredictionWaitInputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        # ``wait`` is honoured by apps.api.waits, the async view in front of this one: no thread waits here.
        upload = prediction_get(owner=request.auth, upload_id=prediction_id)
        if upload is None:
            raise NotFound("No prediction with this id.")
        return Response(PredictionSerializer(upload, context=_context(request)).data)

    @extend_schema(
        tags=["predictions"],
        operation_id="predictions_destroy",
        summary="Delete a prediction: the photo, the face crops and the results",
        responses={204: None, 401: ERROR_RESPONSE, 404: ERROR_RESPONSE},
    )
    def delete(self, request, prediction_id):
        upload = prediction_get(owner=request.auth, upload_id=prediction_id)
        if upload is None:
            raise NotFound("No prediction with this id.")
        upload_erase(upload=upload)
        return Response(status=status.HTTP_204_NO_CONTENT)


class FaceCropApi(APIView):
    """One face's aligned crop, as the models saw it; JSON only for errors, whatever the Accept header."""

    @extend_schema(
        tags=["predictions"],
        operation_id="predictions_face_crop",
        summary="Get the aligned crop of one face, as PNG",
        responses={
            (200, "image/png"): OpenApiTypes.BINARY,
            401: ERROR_RESPONSE,
            404: ERROR_RESPONSE,
            503: ERROR_RESPONSE,
        },
    )
    def get(self, request, prediction_id, index: int):
        upload = prediction_get(owner=request.auth, upload_id=prediction_id)
        if upload is None:
            raise NotFound("No prediction with this id.")
        if not 1 <= index <= len(upload.faces.all()):
            raise NotFound(f"This prediction has no face {index}; faces are numbered from 1.")
        crop = face_crop_png(upload_id=upload.pk, face_index=index - 1)
        if crop is None:
            raise NotFound("The crop of this face is gone.")
        response = HttpResponse(crop, content_type="image/png")
        response["Cache-Control"] = "private, max-age=3600"
        return response

    def perform_content_negotiation(self, request, force=False):
        return super().perform_content_negotiation(request, force=True)  # an Accept of image/png gets errors in JSON


class PredictionBatchApi(APIView):
    """Several photos in one request; each is an upload of its own, and a bad one fails alone."""

    parser_classes = [MultiPartParser]
    throttle_classes = [UploadRatePerKey, UploadRatePerIp]

    @extend_schema(
        tags=["predictions"],
        operation_id="predictions_batch_create",
        summary="Send several photos for analysis, optionally waiting for the results",
        description="Multipart, the field `images` repeated. Answers one entry per photo, in the order sent: the "
        "prediction as GET answers it (and its `url`), or the photo's own error. 200 once every photo is finished "
        "or refused, else 202. The rate limits count photos.",
        request={"multipart/form-data": PredictionBatchInputSerializer},
        parameters=[PredictionWaitInputSerializer],
        responses={
            (code, "application/json"): inline_serializer(
                f"BatchResults{code}",
                {
                    "results": PolymorphicProxySerializer(
                        component_name="BatchResult",
                        serializers=[PredictionInBatchSerializer, ERROR_RESPONSE],
                        resource_type_field_name=None,
                        many=True,
                    )
                },
            )
            for code in (200, 202)
        }
        | {400: ERROR_RESPONSE, 401: ERROR_RESPONSE, 413: ERROR_RESPONSE, 429: ERROR_RESPONSE},
    )
    def post(self, request):
        PredictionWaitInputSerializer(data=request.query_params).is_valid(raise_exception=True)
        outcomes = []
        for photo in self.photos:
            try:
                outcomes.append(prediction_request(image=photo, channel=Upload.Channel.API, owner=request.auth).pk)
            except (UploadRejected, PredictionUnavailable) as error:
                outcomes.append(error_entry(error))
        results = batch_results(request, outcomes)
        return Response({"results": results}, status=batch_status(results))

    def check_throttles(self, request):
        """The rate limits count this batch's photos: read them (and refuse a batch too large) first."""
        self.photos = _batch_photos(request)
        self.photo_count = len(self.photos)
        super().check_throttles(request)


def batch_results(request, outcomes: list) -> list[dict]:
    """Each outcome (an upload id, or a photo's error entry) as the batch answers it."""
    uploads = predictions_by_id(owner=request.auth, upload_ids=[o for o in outcomes if not isinstance(o, dict)])
    context = _context(request)
    return [
        outcome
        if isinstance(outcome, dict)
        else PredictionInBatchSerializer(uploads[str(outcome)], context=context).data
        for outcome in outcomes
    ]


def batch_status(results: list[dict]) -> int:
    unfinished = any(result.get("status") in UNFINISHED for result in results)
    return status.HTTP_202_ACCEPTED if unfinished else status.HTTP_200_OK


def unfinished_upload_ids(response) -> list[str]:
    """The uploads a create answer (one photo's, or a batch's) still waits for."""
    results = response.data.get("results", [response.data])
    return [str(result["id"]) for result in results if result.get("status") in UNFINISHED]


def created_answer_refresh(response) -> Response:
    """A create answer, read again after a wait: a finished photo's entry becomes its result.

    One photo: 200 and the prediction once finished, else the 202 as it was, with the current status.
    A batch: every unfinished entry read again; 200 once none is unfinished.
    """
    request = response.renderer_context["request"]
    if "results" in response.data:
        outcomes = [result if "error" in result else result["id"] for result in response.data["results"]]
        response.data["results"] = batch_results(request, outcomes)
        response.status_code = batch_status(response.data["results"])
        return response
    upload = prediction_get(owner=request.auth, upload_id=response.data["id"])
    if upload is None:
        return response  # deleted while it was waited for: the answer it had
    if upload.status in UNFINISHED:
        response.data["status"] = upload.status
        return response
    response.data = PredictionSerializer(upload, context=_context(request)).data
    response.status_code = status.HTTP_200_OK
    return response


def _context(request) -> dict:
    return {"request": request}  # the faces' crop_url is absolute


def _batch_photos(request) -> list:
    """The batch's files, in order; 400 without any, or with more than MAX_BATCH_PHOTOS."""
    length = request.META.get("CONTENT_LENGTH")
    if length and length.isdigit() and int(length) > settings.MAX_BATCH_BYTES + MULTIPART_OVERHEAD_BYTES:
        raise FileTooLarge(
            f"A batch may hold {settings.MAX_BATCH_BYTES} bytes at most; send fewer photos per request.",
            {"max_bytes": settings.MAX_BATCH_BYTES, "bytes": int(length)},
        )
    photos = request.FILES.getlist("images")
    if any(isinstance(value, str) for value in request.data.getlist("images")):
        raise exceptions.ValidationError({"images": ["Each images value must be a file (multipart, with a filename)."]})
    if not photos:
        hint = " (not image: that is the field of POST /api/v1/predictions)" if "image" in request.data else ""
        message = f"No photo was sent: repeat the field images, one file each{hint}."
        raise exceptions.ValidationError({"images": [message]})
    if len(photos) > settings.MAX_BATCH_PHOTOS:
        raise TooManyPhotos(len(photos))
    return photos


def _reject_oversized_photo_body(request) -> None:
    """Refuse a body too long to hold an acceptable photo before reading it: base64 in JSON takes
    4 characters for 3 bytes, a multipart or raw body about its photo's size."""
    length = request.META.get("CONTENT_LENGTH")
    if request.content_type.split(";")[0].strip().lower() == "application/json" and length and length.isdigit():
        length = str(int(int(length) * BASE64_BYTES_PER_CHARACTER))
    reject_oversized_body(length)
