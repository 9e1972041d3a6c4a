"""Writes of predictions: starting the pipeline for a photo, the estimation step, deleting everything."""

import csv
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from http import HTTPStatus
from itertools import groupby
from pathlib import Path

import botocore.exceptions
import kombu.exceptions
import numpy as np
import redis.exceptions
from celery import chain
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from PIL import Image
from rest_framework_api_key.models import APIKey

from apps.faces.pipeline import face_pipeline
from apps.faces.services import (
    PHOTO_GONE_FOR_NEW_MODEL,
    TOO_MANY_ATTEMPTS,
    face_crop_align,
    face_crops_for_model,
    face_documents_delete,
    face_documents_delete_expired,
    face_documents_record_outputs,
)
from apps.predictions.models import EstimateReview, FaceEstimate
from apps.predictions.selectors import ml_queue_length, reviewed_faces
from apps.uploads.images import CleanImage
from apps.uploads.models import Upload
from apps.uploads.selectors import upload_get, upload_read_image
from apps.uploads.services import (
    UNFINISHED,
    upload_count_attempt,
    upload_create,
    upload_delete,
    upload_discard,
    upload_fail,
    upload_fail_if_stuck,
    upload_files_delete_expired,
    upload_finish,
    upload_image_delete,
    upload_mark_requeued,
)

logger = logging.getLogger(__name__)

# Exported crops are as large as the UTKFace chips: ml.train and ml.evaluate detect and align them again.
EXPORT_CROP_SIZE = 200
EXPORT_GENDER_CODES = {FaceEstimate.Gender.MALE: 0, FaceEstimate.Gender.FEMALE: 1}  # as in UTKFace
QUEUE_UNAVAILABLE = "The photo could not be queued for analysis. Please try again later."
STORAGE_UNAVAILABLE = "The photo could not be stored. Please try again later."
STUCK_TOO_OFTEN = "The analysis did not finish after several attempts. Please send the photo again."
BROKER_ERRORS = (kombu.exceptions.OperationalError, redis.exceptions.ConnectionError)
STORAGE_ERRORS = (OSError, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)
# What a redelivered estimation overwrites on an existing (upload, face_index) row.
RESULT_FIELDS = [
    "mongo_face_id",
    "box_x",
    "box_y",
    "box_width",
    "box_height",
    "landmarks",
    "detection_confidence",
    "pose_yaw",
    "pose_pitch",
    "pose_roll",
    "sharpness",
    "brightness",
    "age_value",
    "age_low",
    "age_high",
    "age_level",
    "gender_label",
    "gender_probability",
    "model_version",
]


class PredictionUnavailable(Exception):
    """File storage or the broker is down. Nothing of the photo was kept, so sending it again later is safe:
    the API and the page answer ``status_code``, and tell the client to try again after ``retry_after`` seconds."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    retry_after = 30

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def prediction_request(
    *, image: File | CleanImage, channel: str, owner: APIKey | None = None, browser: str = ""
) -> Upload:
    """Accept a photo (a file, or one ``clean_image`` already checked) and, once its row is committed,
    queue its analysis.

    Raises ``apps.uploads.images.UploadRejected`` for files we do not accept, and
    ``PredictionUnavailable`` when the photo cannot be stored or queued: no row and no file
    are left behind then (inside an outer transaction the queueing, and so this error, comes
    when that one commits).
    """
    try:
        # No transaction of its own: one would hold SQLite's write lock while the photo is decoded
        # and stored. Outside a transaction on_commit runs at once, inside one when it commits.
        upload = upload_create(image=image, channel=channel, owner=owner, browser=browser)
        transaction.on_commit(partial(_pipeline_start_or_discard, upload_id=upload.pk))
    except STORAGE_ERRORS as error:
        logger.exception("could not store a photo")
        raise PredictionUnavailable(STORAGE_UNAVAILABLE) from error
    return upload


def prediction_pipeline_start(*, upload_id) -> None:
    """Send faces_detect -> faces_estimate; the face ids travel from one to the other in the broker.

    Raises ``PredictionUnavailable`` when the broker cannot be reached within the bounded publish
    retries (settings ``CELERY_TASK_PUBLISH_RETRY_POLICY``), rather than blocking for ever.
    """
    # Imported here: the task modules import this one.
    from apps.faces import tasks as faces_tasks
    from apps.predictions import tasks

    try:
        chain(faces_tasks.faces_detect.s(str(upload_id)), tasks.faces_estimate.s(str(upload_id))).apply_async()
    except BROKER_ERRORS as error:
        logger.warning("could not queue upload %s: %s", upload_id, error)
        raise PredictionUnavailable(QUEUE_UNAVAILABLE) from error


def _pipeline_restart(*, upload_id) -> None:
    """Queue an upload's pipeline again from inside a task; a broker error is retried like any other (UploadTask)."""
    try:
        prediction_pipeline_start(upload_id=upload_id)
    except PredictionUnavailable as error:
        raise error.__cause__ from error


def _pipeline_start_or_discard(*, upload_id) -> None:
    """Queue a new upload; if the broker is down, delete it again (file and row): the client is told
    to send it later, and a photo kept unanalysed would only be found by the sweeper minutes later."""
    try:
        prediction_pipeline_start(upload_id=upload_id)
    except PredictionUnavailable:
        upload = upload_get(upload_id=upload_id)
        if upload is not None:
            upload_discard(upload=upload)
        raise


def faces_estimate(*, face_ids: list[str], upload_id) -> None:
    """Estimate age and gender of the detected faces in one batch, store the results, finish the upload.

    Idempotent: rows are upserted by (upload, face index); an upload that is already finished is
    left alone, and the faces of an upload deleted while it was being analysed are removed. Faces
    cropped for weights of another size are cut again from the photo (``face_crops_for_model``);
    if it is gone by then, the upload fails with a reason.
    """
    from ml.images import UnreadableImageError

    upload = upload_get(upload_id=upload_id)
    if upload is None:
        face_documents_delete(upload_id=upload_id)
        return
    if upload.status != Upload.Status.PROCESSING:
        return
    # Counted like detection's claims: an estimation that kills its worker every time would
    # otherwise be redelivered for ever.
    if upload_count_attempt(upload=upload) > settings.MAX_PROCESSING_ATTEMPTS:
        upload_fail(upload_id=upload_id, reason=TOO_MANY_ATTEMPTS)
        return
    try:
        crops = face_crops_for_model(upload=upload, face_ids=face_ids)
    except (FileNotFoundError, UnreadableImageError):
        upload_fail(upload_id=upload_id, reason=PHOTO_GONE_FOR_NEW_MODEL)
        return
    if len(crops) != len(set(face_ids)):
        # MongoDB lost faces it had acknowledged (a crash): find them again rather than finish with
        # fewer. The detection claims the upload once more, so MAX_PROCESSING_ATTEMPTS bounds this.
        logger.warning(
            "upload %s: %d of %d faces are gone from MongoDB, detecting again",
            upload_id,
            len(set(face_ids)) - len(crops),
            len(set(face_ids)),
        )
        _pipeline_restart(upload_id=upload_id)
        return
    rows, estimation_ms = [], 0.0
    if crops:
        pipeline = face_pipeline()
        started = time.perf_counter()
        estimates, age_probabilities, female = pipeline.estimate_with_outputs(np.stack([crop.crop for crop in crops]))
        estimation_ms = (time.perf_counter() - started) * 1000  # the model alone, as detection_ms is the detector
        face_documents_record_outputs(
            face_ids=[crop.id for crop in crops],
            model_version=pipeline.model_version,
            age_probabilities=age_probabilities,
            female_probabilities=female,
        )
        rows = [
            _face_estimate(upload, crop, age, gender, pipeline.model_version)
            for crop, (age, gender) in zip(crops, estimates, strict=True)
        ]
    with transaction.atomic():
        FaceEstimate.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["upload", "face_index"],
            update_fields=RESULT_FIELDS,
        )
        FaceEstimate.objects.filter(upload=upload).exclude(face_index__in=[row.face_index for row in rows]).delete()
        upload_finish(upload=upload, timings={"estimation_ms": estimation_ms})


def upload_erase(*, upload: Upload) -> None:
    """Remove a photo and everything made from it, each app deleting its own: the face documents
    (MongoDB), the stored photo, then in one transaction the estimates with their reviews and the
    upload row. Nothing in SQL goes before the photo, so a failure leaves a row for the next try to
    find. A Telegram update that brought the photo keeps its row, unlinked (``SET_NULL``).
    """
    face_documents_delete(upload_id=upload.pk)
    upload_image_delete(upload=upload)
    with transaction.atomic():
        FaceEstimate.objects.filter(upload=upload).delete()
        upload_delete(upload=upload)


def _face_estimate(upload, crop, age, gender, model_version: str) -> FaceEstimate:
    pose, quality = crop.pose or {}, crop.quality or {}  # faces detected before these were computed have none
    return FaceEstimate(
        upload=upload,
        face_index=crop.face_index,
        mongo_face_id=crop.id,
        box_x=round(crop.box["x"]),
        box_y=round(crop.box["y"]),
        box_width=round(crop.box["width"]),
        box_height=round(crop.box["height"]),
        landmarks=crop.landmarks,
        detection_confidence=crop.detection_confidence,
        pose_yaw=pose.get("yaw"),
        pose_pitch=pose.get("pitch"),
        pose_roll=pose.get("roll"),
        sharpness=quality.get("sharpness"),
        brightness=quality.get("brightness"),
        age_value=age.value,
        age_low=age.low,
        age_high=age.high,
        age_level=age.level,
        gender_label=gender.label,
        gender_probability=gender.probability,
        model_version=model_version,
    )


def estimate_review_create(
    *, estimate: FaceEstimate, reviewer, age: int | None = None, gender: str | None = None
) -> EstimateReview:
    """Record a reviewer's verdict on a face, leaving the estimate as the model made it.

    A reviewed face is training data: its upload is marked kept past the retention period, and
    the retention skips it even if an admin stops keeping it. Without ``age`` and ``gender`` the
    reviewer confirms the estimate (its age rounded to years). Raises
    ``django.core.exceptions.ValidationError`` for an impossible age or an unknown gender.
    """
    predicted_age = round(estimate.age_value)
    age = predicted_age if age is None else age
    gender = estimate.gender_label if gender is None else gender
    review = EstimateReview(
        estimate=estimate,
        reviewer=reviewer,
        age=age,
        gender=gender,
        confirmed=(age, gender) == (predicted_age, estimate.gender_label),
    )
    review.full_clean()
    with transaction.atomic():
        review.save()
        uploads_keep_for_training(uploads=Upload.objects.filter(pk=estimate.upload_id), keep=True)
    return review


def reviewed_faces_export(*, directory: Path, size: int = EXPORT_CROP_SIZE) -> dict[str, int]:
    """Write the reviewed faces as a dataset in the UTKFace layout, for ``ml.train`` and ``ml.evaluate``.

    ``directory/images/<face id>.jpg`` are aligned crops cut from the stored photos (landmarks
    in upright pixels, as the photo decodes upright); ``directory/labels.csv`` has
    ``filename,age,gender,race,split`` with the newest review's verdict, gender 0 male / 1 female,
    race empty, and a split that depends only on the face id, so re-exports keep faces where they were.
    Returns the number of faces per split, and ``skipped``: faces whose photo is gone or unreadable.
    """
    from ml.images import UnreadableImageError, load_rgb

    images_dir = directory / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    rows, skipped = [], 0
    faces = reviewed_faces().select_related("upload").order_by("upload_id", "face_index")
    for _, group in groupby(faces, key=lambda face: face.upload_id):
        group = list(group)
        try:
            image = load_rgb(upload_read_image(upload=group[0].upload))
        except (FileNotFoundError, UnreadableImageError):
            logger.warning("export: the photo of upload %s is gone or unreadable", group[0].upload_id)
            skipped += len(group)
            continue
        for face in group:
            filename = f"{face.mongo_face_id}.jpg"
            Image.fromarray(face_crop_align(image, face.landmarks, size)).save(images_dir / filename, quality=95)
            gender = EXPORT_GENDER_CODES[face.true_gender]
            rows.append([filename, face.true_age, gender, "", dataset_split(face_id=face.mongo_face_id)])
    partial_labels = directory / "labels.csv.partial"
    with open(partial_labels, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "age", "gender", "race", "split"])
        writer.writerows(rows)
    partial_labels.replace(directory / "labels.csv")  # a reader never sees half a file
    counts = {split: sum(row[4] == split for row in rows) for split in ("train", "val", "test")}
    return {**counts, "skipped": skipped}


def dataset_split(*, face_id: str) -> str:
    """train, val or test (80/10/10) from a hash of the face id: the same face always lands in the same split."""
    bucket = int(hashlib.sha256(face_id.encode()).hexdigest(), 16) % 10
    return "train" if bucket < 8 else "val" if bucket == 8 else "test"


def uploads_requeue_stuck() -> dict[str, int]:
    """Send uploads pending or processing for longer than STUCK_UPLOAD_MINUTES through the pipeline again.

    Catches work the broker lost: a process that died between committing an upload and queueing
    it, a Redis that lost its data. Each requeue is counted on the upload; one stuck again after
    MAX_UPLOAD_REQUEUES requeues fails with a reason instead. A duplicate of a task that was only
    slow is harmless, the tasks are idempotent.

    While the ``ml`` queue holds messages (a backlog: uploads come faster than the workers analyse
    them), uploads waiting in it are not stuck: pending ones, and processing ones whose detection
    is done (their estimation step waits in that queue). Only the others can be stuck then; the
    rest are looked at once the queue has drained. When the broker cannot be reached the sweep
    ends at once (nothing could be requeued), and at the first publish that fails (the broker went
    down: the next sweep tries again; that upload's requeue was counted all the same). Returns how
    many uploads were requeued and failed.
    """
    try:
        backlog = ml_queue_length()
    except BROKER_ERRORS as error:
        logger.warning("stuck uploads not swept, the broker is unreachable: %s", error)
        return {"requeued": 0, "failed": 0}
    stuck_before = timezone.now() - timedelta(minutes=settings.STUCK_UPLOAD_MINUTES)
    stuck = Upload.objects.filter(status__in=UNFINISHED, updated_at__lt=stuck_before).order_by("updated_at")
    if backlog:
        stuck = stuck.filter(status=Upload.Status.PROCESSING, faces_found__isnull=True)
    counts = {"requeued": 0, "failed": 0}
    most = settings.MAX_UPLOAD_REQUEUES
    for upload_id, requeue_count in stuck.values_list("pk", "requeue_count"):
        if requeue_count >= most:
            # Only if no task claimed it since it was found (as for a requeue below).
            failed = upload_fail_if_stuck(
                upload_id=upload_id, reason=STUCK_TOO_OFTEN, requeue_count=requeue_count, stuck_before=stuck_before
            )
            counts["failed"] += failed
            continue
        # Counted first and only if no other sweep or task touched it since: never sent twice by two sweeps.
        if not upload_mark_requeued(upload_id=upload_id, requeue_count=requeue_count, stuck_before=stuck_before):
            continue
        try:
            prediction_pipeline_start(upload_id=upload_id)
        except PredictionUnavailable:
            break
        logger.warning("upload %s was stuck: requeue %d of at most %d", upload_id, requeue_count + 1, most)
        counts["requeued"] += 1
    return counts


# --- privacy: keeping, expiring -------------------------------------------------------------


def uploads_keep_for_training(*, uploads: QuerySet[Upload], keep: bool) -> int:
    """Keep these uploads past the retention period (``keep``), or let it delete them again."""
    return uploads.update(kept_for_training=keep)


@dataclass(frozen=True)
class ExpiredUploadsDeleted:
    uploads: int
    kept_for_training: int  # old enough, but kept
    face_documents: int  # left behind by an erase that failed half way, deleted now
    files: int  # stored photos no upload named, deleted now
    failed: int = 0  # old enough, not kept, but could not be deleted (logged; the next run tries again)


def uploads_delete_expired() -> ExpiredUploadsDeleted:
    """Erase the uploads older than RETENTION_DAYS (``upload_erase``) unless kept for training; then have
    faces and uploads delete what of theirs is as old and belongs to no upload any more.

    An upload with a reviewed face is never deleted here, marked kept or not (its reviews are
    training data). One that cannot be deleted (MongoDB or the storage failing) is logged and
    counted, and the others are deleted all the same. Idempotent, and safe beside the pipeline:
    a photo deleted mid-analysis is cleaned up by it. (Telegram deletes its updates itself.)
    """
    cutoff = timezone.now() - timedelta(days=settings.RETENTION_DAYS)
    old = Upload.objects.filter(created_at__lt=cutoff)
    reviewed = Exists(EstimateReview.objects.filter(estimate__upload=OuterRef("pk")))
    deleted = failed = 0
    for upload in old.filter(~reviewed, kept_for_training=False).order_by("created_at").iterator():
        try:
            upload_erase(upload=upload)
        except SoftTimeLimitExceeded:
            raise  # the task's time is up: what is deleted stays deleted, the next run goes on
        except Exception:
            logger.exception("retention: could not delete upload %s", upload.pk)
            failed += 1
        else:
            deleted += 1
    leftovers = {}
    leftover_deletes = {"face_documents": face_documents_delete_expired, "files": upload_files_delete_expired}
    for name, delete_expired in leftover_deletes.items():
        try:
            leftovers[name] = delete_expired(cutoff=cutoff)
        except SoftTimeLimitExceeded:
            raise
        except Exception:
            logger.exception("retention: could not delete the expired %s left behind", name)
            leftovers[name] = 0
            failed += 1
    result = ExpiredUploadsDeleted(
        uploads=deleted,
        kept_for_training=old.filter(Q(kept_for_training=True) | reviewed).count(),
        failed=failed,
        **leftovers,
    )
    log = logger.error if failed else logger.info
    log("retention (%s days): %s", settings.RETENTION_DAYS, result)
    return result
