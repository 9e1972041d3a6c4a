"""Writes to uploads: accepting a photo, moving it through the pipeline's states, deleting it."""

import logging

from django.core.files import File
from django.db.models import DateTimeField, F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from rest_framework_api_key.models import APIKey

from apps.uploads.images import inspect_image
from apps.uploads.models import Upload
from apps.uploads.signals import upload_finished

logger = logging.getLogger(__name__)

UNFINISHED = (Upload.Status.PENDING, Upload.Status.PROCESSING)


def upload_create(*, image: File, channel: str, owner: APIKey | None = None) -> Upload:
    """Validate the photo, store it under an unguessable name and record it as pending.

    Raises ``apps.uploads.images.UploadRejected`` for files we do not accept.
    """
    info = inspect_image(image)
    upload = Upload(owner=owner, channel=channel, width=info.width, height=info.height)
    upload.image.save(f"image{info.extension}", image, save=False)
    try:
        upload.save(force_insert=True)
    except Exception:
        upload.image.delete(save=False)  # no row points at it: it would never be cleaned up
        raise
    return upload


def upload_start_processing(*, upload_id) -> Upload | None:
    """Claim an upload for the pipeline; None when it was deleted or is already finished (a redelivery)."""
    now = timezone.now()
    claimed = Upload.objects.filter(pk=upload_id, status__in=UNFINISHED).update(
        status=Upload.Status.PROCESSING,
        started_at=Coalesce(F("started_at"), Value(now, output_field=DateTimeField())),
        updated_at=now,
    )
    return Upload.objects.get(pk=upload_id) if claimed else None


def upload_record_timings(*, upload: Upload, timings: dict[str, float]) -> None:
    upload.timings = {**upload.timings, **timings}
    Upload.objects.filter(pk=upload.pk).update(timings=upload.timings, updated_at=timezone.now())


def upload_finish(*, upload: Upload, timings: dict[str, float]) -> bool:
    """Mark a processing upload done; False if it was not processing (finished or deleted meanwhile)."""
    now = timezone.now()
    upload.timings = {**upload.timings, **timings, "total_ms": (now - upload.created_at).total_seconds() * 1000}
    finished = Upload.objects.filter(pk=upload.pk, status=Upload.Status.PROCESSING).update(
        status=Upload.Status.DONE, finished_at=now, updated_at=now, timings=upload.timings
    )
    if finished:
        upload_finished.send(sender=Upload, upload_id=upload.pk)
    return bool(finished)


def upload_fail(*, upload_id, reason: str) -> bool:
    """Mark an unfinished upload failed with a reason a user can read; a finished one is left alone."""
    now = timezone.now()
    failed = Upload.objects.filter(pk=upload_id, status__in=UNFINISHED).update(
        status=Upload.Status.FAILED, failure_reason=reason, finished_at=now, updated_at=now
    )
    if failed:
        logger.info("upload %s failed: %s", upload_id, reason)
        upload_finished.send(sender=Upload, upload_id=upload_id)
    return bool(failed)


def upload_delete(*, upload: Upload) -> None:
    """Remove the stored photo, then the row (face predictions go with it)."""
    upload.image.delete(save=False)
    upload.delete()
