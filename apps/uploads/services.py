"""Writes to uploads: accepting a photo, moving it through the pipeline's states, deleting it."""

import logging
from functools import partial

from django.core.files import File
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import DateTimeField, F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from rest_framework_api_key.models import APIKey

from apps.uploads.events import publish_upload_changed
from apps.uploads.images import CleanImage, clean_image
from apps.uploads.models import UPLOADS_DIR, Upload, upload_image_path
from apps.uploads.signals import upload_finished

logger = logging.getLogger(__name__)

UNFINISHED = (Upload.Status.PENDING, Upload.Status.PROCESSING)


def upload_create(*, image: File | CleanImage, channel: str, owner: APIKey | None = None, browser: str = "") -> Upload:
    """Validate the photo, store a clean copy (upright, no metadata) under an unguessable name, record it as pending.

    ``owner``: the API key that sent it; ``browser``: the hash naming the browser that sent it from the page.

    Raises ``apps.uploads.images.UploadRejected`` for files we do not accept.
    """
    clean = image if isinstance(image, CleanImage) else clean_image(image)
    upload = Upload(owner=owner, browser=browser, channel=channel, width=clean.width, height=clean.height)
    # The name is chosen here, not by FieldFile.save, so that a write that fails half way (a full
    # disk) can still be removed: no row would ever point at the part written.
    name = upload_image_path(upload, f"image{clean.extension}")
    try:
        upload.image.name = upload.image.storage.save(name, ContentFile(clean.content))
        upload.save(force_insert=True)
    except Exception:
        _delete_quietly(upload.image.storage, upload.image.name or name)
        raise
    return upload


def _delete_quietly(storage, name: str) -> None:
    """Best-effort removal while another error is on its way up (storage may be what failed)."""
    try:
        storage.delete(name)
    except Exception:
        logger.exception("could not remove %s after a failed upload", name)


def upload_start_processing(*, upload_id) -> Upload | None:
    """Claim an upload for the pipeline; None when it was deleted or is already finished (a redelivery).

    Every claim is counted in ``processing_attempts`` (in the same UPDATE, so concurrent claims
    are all counted): the caller gives up on an upload claimed too often (MAX_PROCESSING_ATTEMPTS).
    """
    now = timezone.now()
    claimed = Upload.objects.filter(pk=upload_id, status__in=UNFINISHED).update(
        status=Upload.Status.PROCESSING,
        started_at=Coalesce(F("started_at"), Value(now, output_field=DateTimeField())),
        updated_at=now,
        processing_attempts=F("processing_attempts") + 1,
    )
    if not claimed:
        return None
    _changed(upload_id)
    return Upload.objects.get(pk=upload_id)


def upload_count_attempt(*, upload: Upload) -> int:
    """Count one more run of a pipeline step on a processing upload (as a claim does); returns the count."""
    Upload.objects.filter(pk=upload.pk).update(processing_attempts=F("processing_attempts") + 1)
    upload.refresh_from_db(fields=["processing_attempts"])
    return upload.processing_attempts


def upload_record_timings(*, upload: Upload, timings: dict[str, float], faces_found: int | None = None) -> None:
    """Add stage timings (and, after detection, how many faces were found) to a processing upload."""
    upload.timings = {**upload.timings, **timings}
    fields = {"timings": upload.timings, "updated_at": timezone.now()}
    if faces_found is not None:
        upload.faces_found = fields["faces_found"] = faces_found
    Upload.objects.filter(pk=upload.pk).update(**fields)
    _changed(upload.pk)  # the page's progress: detection is over


def upload_finish(*, upload: Upload, timings: dict[str, float]) -> bool:
    """Mark a processing upload done; False if it was not processing (finished or deleted meanwhile)."""
    now = timezone.now()
    upload.timings = {**upload.timings, **timings, "total_ms": (now - upload.created_at).total_seconds() * 1000}
    finished = Upload.objects.filter(pk=upload.pk, status=Upload.Status.PROCESSING).update(
        status=Upload.Status.DONE, finished_at=now, updated_at=now, timings=upload.timings
    )
    if finished:
        _changed(upload.pk)
        upload_finished.send(sender=Upload, upload_id=upload.pk)
    return bool(finished)


def upload_fail(*, upload_id, reason: str) -> bool:
    """Mark an unfinished upload failed with a reason a user can read; a finished one is left alone."""
    return _fail(Upload.objects.filter(pk=upload_id, status__in=UNFINISHED), upload_id=upload_id, reason=reason)


def upload_fail_if_stuck(*, upload_id, reason: str, requeue_count: int, stuck_before) -> bool:
    """``upload_fail`` for the sweeper: only if the upload has not moved since it was found stuck
    (claimed by a task, finished, or counted by another sweep meanwhile), as in ``upload_mark_requeued``."""
    unmoved = Upload.objects.filter(
        pk=upload_id, status__in=UNFINISHED, updated_at__lt=stuck_before, requeue_count=requeue_count
    )
    return _fail(unmoved, upload_id=upload_id, reason=reason)


def _fail(uploads, *, upload_id, reason: str) -> bool:
    now = timezone.now()
    failed = uploads.update(status=Upload.Status.FAILED, failure_reason=reason, finished_at=now, updated_at=now)
    if failed:
        logger.info("upload %s failed: %s", upload_id, reason)
        _changed(upload_id)
        upload_finished.send(sender=Upload, upload_id=upload_id)
    return bool(failed)


def upload_image_delete(*, upload: Upload) -> None:
    """Remove the stored photo (the row stays, for ``upload_delete``)."""
    upload.image.delete(save=False)


def upload_delete(*, upload: Upload) -> None:
    """Remove the row; the photo must be gone first (``upload_image_delete``), or nothing would name it."""
    upload_id = upload.pk
    upload.delete()
    _changed(upload_id)  # a waiting client learns at once that it is gone


def upload_files_delete_expired(*, cutoff) -> int:
    """Delete stored photos older than ``cutoff`` that no upload names, and return how many: left behind
    when a new upload was taken back while the storage failed too (``upload_discard`` logs them)."""
    storage = Upload._meta.get_field("image").storage
    try:
        _, names = storage.listdir(UPLOADS_DIR)
    except FileNotFoundError:  # nothing was ever stored
        return 0
    named = set(Upload.objects.values_list("image", flat=True).iterator())
    orphans = sorted({f"{UPLOADS_DIR}/{name}" for name in names} - named)
    deleted = 0
    for name in orphans:
        # Only old ones: a photo being stored has no row yet.
        if storage.get_modified_time(name) < cutoff:
            storage.delete(name)
            deleted += 1
    return deleted


def upload_discard(*, upload: Upload) -> None:
    """Take back an upload the client was told was not kept, while another error is on its way up.

    The row goes first and whatever happens: a row left would be analysed later by the sweeper.
    A file that cannot be removed (storage down too) is logged by name for an operator.
    """
    Upload.objects.filter(pk=upload.pk).delete()
    _delete_quietly(upload.image.storage, upload.image.name)


def _changed(upload_id) -> None:
    """Wake whoever waits on this upload (``apps.uploads.events``) once the change is committed: every
    status change goes through this module. Outside a transaction at once, inside one when it commits."""
    transaction.on_commit(partial(publish_upload_changed, upload_id))


def upload_mark_requeued(*, upload_id, requeue_count: int, stuck_before) -> bool:
    """Count one more requeue of a stuck upload; False if it moved since it was found stuck
    (finished, claimed by a task, or counted by another sweep), and then it must not be requeued."""
    return bool(
        Upload.objects.filter(
            pk=upload_id, status__in=UNFINISHED, updated_at__lt=stuck_before, requeue_count=requeue_count
        ).update(requeue_count=requeue_count + 1, updated_at=timezone.now())
    )
