"""Reads of predictions: an upload with its faces, as its owner may see it."""

import time

from django.db.models import QuerySet
from rest_framework_api_key.models import APIKey

from apps.uploads.models import Upload

POLL_INTERVAL_SECONDS = 0.25


def prediction_list(*, owner: APIKey) -> QuerySet[Upload]:
    return Upload.objects.filter(owner=owner).prefetch_related("faces").order_by("-created_at", "-pk")


def prediction_get(*, owner: APIKey, upload_id) -> Upload | None:
    return prediction_list(owner=owner).filter(pk=upload_id).first()


def prediction_wait(*, owner: APIKey, upload_id, timeout: float) -> Upload | None:
    """``prediction_get``, after waiting up to ``timeout`` seconds for the upload to finish."""
    deadline = time.monotonic() + timeout
    while True:
        upload = prediction_get(owner=owner, upload_id=upload_id)
        if upload is None or upload.is_finished or time.monotonic() >= deadline:
            return upload
        time.sleep(min(POLL_INTERVAL_SECONDS, max(0.0, deadline - time.monotonic())))
