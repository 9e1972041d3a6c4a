"""The public JSON API: thin views over the services and selectors. A client sees only what its key created."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.api.serializers import (
    PredictionCreatedSerializer,
    PredictionCreateInputSerializer,
    PredictionSerializer,
    PredictionWaitInputSerializer,
)
from apps.api.throttling import UploadRatePerIp, UploadRatePerKey
from apps.predictions.selectors import prediction_get, prediction_list
from apps.predictions.services import prediction_request, upload_erase
from apps.uploads.images import reject_oversized_body
from apps.uploads.models import Upload

ERROR_RESPONSE = inline_serializer(
    "Error",
    {
        "error": inline_serializer(
            "ErrorBody",
            {"code": serializers.CharField(), "message": serializers.CharField(), "details": serializers.DictField()},
        )
    },
)


class PredictionListCreateApi(APIView):
    parser_classes = [MultiPartParser]
    pagination_class = PageNumberPagination
    throttle_classes = [UploadRatePerKey, UploadRatePerIp]  # POSTs only: reading is not limited

    @extend_schema(
        tags=["predictions"],
        operation_id="predictions_create",
        summary="Send a photo for analysis",
        request={"multipart/form-data": PredictionCreateInputSerializer},
        responses={
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
        reject_oversized_body(request.META.get("CONTENT_LENGTH"))
        serializer = PredictionCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = prediction_request(
            image=serializer.validated_data["image"], channel=Upload.Channel.API, owner=request.auth
        )
        url = request.build_absolute_uri(reverse("api:prediction-detail", args=[upload.pk]))
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
        return paginator.get_paginated_response(PredictionSerializer(page, many=True).data)


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
        return Response(PredictionSerializer(upload).data)

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
