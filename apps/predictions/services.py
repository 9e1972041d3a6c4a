"""Writes of predictions: starting the pipeline for a photo, the estimation step, deleting everything; the model
registry (which version the workers serve, promotion) and training a candidate from the reviews."""

import contextlib
import csv
import hashlib
import logging
import shutil
import tempfile
import time
from collections import deque
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
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from PIL import Image
from rest_framework_api_key.models import APIKey

from apps.faces.pipeline import face_pipeline, face_pipeline_serve
from apps.faces.services import (
    PHOTO_GONE_FOR_NEW_MODEL,
    TOO_MANY_ATTEMPTS,
    face_crop_align,
    face_crops_for_model,
    face_documents_delete,
    face_documents_delete_expired,
    face_documents_record_outputs,
)
from apps.predictions.models import EstimateReview, FaceEstimate, ModelVersion, TrainingRun
from apps.predictions.selectors import (
    ml_queue_length,
    model_version_active,
    model_version_previous,
    model_version_promotion_refusals,
    reviewed_faces,
)
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
MODEL_STORAGE_DIR = "models"  # in the file storage, beside uploads/: models/<version>/<weights files>
# What train_from_reviews does unless told otherwise (its replay_size is the setting MODEL_TRAINING_REPLAY_SIZE):
# ml.retraining.fine_tune's arguments, and how many photos of each data set's test split to measure on (0: all).
TRAINING_DEFAULTS = {
    "epochs": 5,
    "epoch_size": 2048,
    "learning_rate": 1e-3,
    "reviewed_share": 0.5,
    "train_trunk": False,
    "test_limit": 0,
}
TRAINING_LOG_LINES = 60
TRAINING_LOST = "The run stopped without finishing (its worker died or lost its message)."
TRAINING_NOT_QUEUED = "The run could not be queued: the broker did not answer."
TRAINING_TIME_UP = "The run was stopped at its time limit (MODEL_TRAINING_SOFT_TIME_LIMIT)."
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


# --- the model registry: versions, promotion, training from reviews --------------------------------------


class ModelWeightsInvalid(Exception):
    """A weights folder that is not the model version it should be: a file missing, damaged or another's."""


class PromotionRefused(Exception):
    """A version may not be made the active one (``reasons``), unless forced."""

    def __init__(self, reasons: list[str]):
        super().__init__("; ".join(reasons))
        self.reasons = reasons


class TrainingRefused(Exception):
    """A training run cannot be queued now (another is under way, the broker is down)."""


def model_weights_local(*, model_version: ModelVersion) -> Path:
    """A folder on this machine with the version's weights, checked against its version: ML_WEIGHTS_DIR for those
    shipped in the code, else MODEL_CACHE_DIR/<version>, fetched from the file storage the first time. Processes
    fetching at once each write their own copy and the first to finish names it. Raises ``ModelWeightsInvalid``."""
    from ml.inference import WEIGHTS_FILES

    if not model_version.weights_prefix:
        return _weights_checked(Path(settings.ML_WEIGHTS_DIR), model_version.version)
    folder = Path(settings.MODEL_CACHE_DIR) / model_version.version
    if not folder.exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        fetching = Path(tempfile.mkdtemp(prefix=f".{model_version.version}-", dir=folder.parent))
        try:
            for name in WEIGHTS_FILES:
                stored = default_storage.open(model_version.weights_prefix + name, "rb")
                with stored as source, open(fetching / name, "wb") as target:
                    shutil.copyfileobj(source, target)
            _weights_checked(fetching, model_version.version)
            with contextlib.suppress(OSError):  # another process named its copy first
                fetching.rename(folder)
        finally:
            shutil.rmtree(fetching, ignore_errors=True)
    try:
        return _weights_checked(folder, model_version.version)
    except ModelWeightsInvalid:
        shutil.rmtree(folder, ignore_errors=True)  # damaged since: fetched again at the next try
        raise


def _weights_checked(folder: Path, version: str) -> Path:
    from ml.inference import ModelInfo, weights_version

    try:
        found = ModelInfo.load(folder).version, weights_version(folder)
    except (OSError, ValueError, KeyError) as error:
        raise ModelWeightsInvalid(f"{folder} holds no readable weights: {error}") from error
    if found != (version, version):
        raise ModelWeightsInvalid(f"{folder} should hold {version}; model.json says {found[0]}, the weights {found[1]}")
    return folder


def model_version_serve_active() -> str:
    """Have this worker process serve the active model version (``apps.faces.pipeline.face_pipeline_serve``), its
    weights fetched first if need be; returns the version it serves now. One that cannot be fetched or loaded is
    logged, and the process goes on serving the one it has: the next check tries again."""
    serving = face_pipeline().model_version
    active = model_version_active()
    if active is None or active.version == serving:
        return serving
    started = time.monotonic()
    try:
        face_pipeline_serve(model_weights_local(model_version=active))
    except Exception:
        logger.exception("could not switch from model %s to the active %s: still serving it", serving, active.version)
        return serving
    logger.info("now serving model %s (was %s), loaded in %.1f s", active.version, serving, time.monotonic() - started)
    return active.version


def model_version_register(
    *, weights_dir: Path, parent: ModelVersion | None, training_data: dict, metrics: dict, baseline_metrics: dict
) -> ModelVersion:
    """Store a weights folder in the file storage (``models/<version>/``) and record it as a candidate, with its
    figures and its parent's from the same evaluation. The same weights again are the same version: a candidate
    gets the new figures, a version that served already keeps its state and figures."""
    from ml.inference import WEIGHTS_FILES, ModelInfo

    info = ModelInfo.load(weights_dir)
    _weights_checked(weights_dir, info.version)
    prefix = f"{MODEL_STORAGE_DIR}/{info.version}/"
    for name in WEIGHTS_FILES:
        default_storage.delete(prefix + name)  # a run that stopped half way may have stored part of it
        with open(weights_dir / name, "rb") as handle:
            default_storage.save(prefix + name, File(handle))
    fields = {
        "parent": parent,
        "training_data": training_data,
        "metrics": metrics,
        "baseline_metrics": baseline_metrics,
    }
    version, created = ModelVersion.objects.get_or_create(
        version=info.version, defaults={"weights_prefix": prefix, "image_size": info.image_size, **fields}
    )
    if not created and version.state == ModelVersion.State.CANDIDATE:
        ModelVersion.objects.filter(pk=version.pk).update(weights_prefix=prefix, **fields)
        version.refresh_from_db()
    return version


def model_version_promote(*, model_version: ModelVersion, user, force: bool = False) -> ModelVersion:
    """Make ``model_version`` the active one, and retire the one it replaces; the workers follow within
    MODEL_VERSION_CHECK_SECONDS. Raises ``PromotionRefused`` when it measured worse than the active one on any
    evaluation set by more than the margins (``model_version_promotion_refusals``), unless ``force``."""
    with transaction.atomic():
        active = ModelVersion.objects.select_for_update().filter(state=ModelVersion.State.ACTIVE).first()
        if active is not None and active.pk == model_version.pk:
            return active
        refusals = model_version_promotion_refusals(candidate=model_version, active=active)
        if refusals and not force:
            raise PromotionRefused(refusals)
        forced = bool(refusals)
        promoted = _model_version_activate(model_version=model_version, replacing=active, user=user, forced=forced)
    replaced = active.version if active else None
    if forced:
        logger.warning("model %s forced active by %s over %s, which measured better: %s", promoted.version, user,
                       replaced, "; ".join(refusals))  # fmt: skip
    else:
        logger.info("model %s promoted by %s, replacing %s", promoted.version, user, replaced)
    return promoted


def model_version_rollback(*, user) -> ModelVersion:
    """Bring back the version the active one replaced (``model_version_previous``), whatever the figures say: it
    served before. Raises ``PromotionRefused`` when there is none."""
    with transaction.atomic():
        active = ModelVersion.objects.select_for_update().filter(state=ModelVersion.State.ACTIVE).first()
        previous = model_version_previous()
        if previous is None:
            raise PromotionRefused(["no version served before the active one"])
        restored = _model_version_activate(model_version=previous, replacing=active, user=user, forced=False)
    logger.warning("model %s rolled back to %s by %s", active.version if active else None, restored.version, user)
    return restored


def _model_version_activate(*, model_version: ModelVersion, replacing: ModelVersion | None, user, forced: bool):
    now = timezone.now()
    if replacing is not None:  # first: one active version at a time (one_active_model_version)
        ModelVersion.objects.filter(pk=replacing.pk).update(state=ModelVersion.State.RETIRED, retired_at=now)
    ModelVersion.objects.filter(pk=model_version.pk).update(
        state=ModelVersion.State.ACTIVE, promoted_by=user, promoted_at=now, promotion_forced=forced, retired_at=None
    )
    return ModelVersion.objects.get(pk=model_version.pk)


def training_run_request(*, user=None, **parameters) -> TrainingRun:
    """Queue ``train_from_reviews`` (the task ``model_candidate_train``, on the ``ml`` queue) once its row is
    committed; ``parameters`` override TRAINING_DEFAULTS. One run at a time: raises ``TrainingRefused`` while
    another is queued or running, except one that outlived its hard time limit (its worker died), failed first."""
    unknown = set(parameters) - set(training_defaults())
    if unknown:
        raise ValueError(f"unknown training parameters: {', '.join(sorted(unknown))}")
    now = timezone.now()
    lost = now - timedelta(seconds=settings.MODEL_TRAINING_TIME_LIMIT)
    with transaction.atomic():
        TrainingRun.objects.filter(
            Q(state=TrainingRun.State.QUEUED, created_at__lt=lost)
            | Q(state=TrainingRun.State.RUNNING, started_at__lt=lost)
        ).update(state=TrainingRun.State.FAILED, error=TRAINING_LOST, finished_at=now)
        busy = TrainingRun.objects.filter(state__in=[TrainingRun.State.QUEUED, TrainingRun.State.RUNNING]).first()
        if busy is not None:
            raise TrainingRefused(f"Training run {busy.pk} is {busy.state}: one at a time.")
        run = TrainingRun.objects.create(requested_by=user, parameters={**training_defaults(), **parameters})
        transaction.on_commit(partial(_training_run_queue, run_id=run.pk))
    return run


def training_defaults() -> dict:
    return {**TRAINING_DEFAULTS, "replay_size": settings.MODEL_TRAINING_REPLAY_SIZE}


def _training_run_queue(*, run_id: int) -> None:
    from apps.predictions import tasks

    try:
        tasks.model_candidate_train.delay(run_id)
    except BROKER_ERRORS as error:
        logger.warning("could not queue training run %s: %s", run_id, error)
        _training_run_finish(run_id, state=TrainingRun.State.FAILED, error=TRAINING_NOT_QUEUED)


def model_candidate_train(*, run_id: int) -> ModelVersion | None:
    """Run a queued training run: export the reviewed faces (``reviewed_faces_export``), fine-tune the active model
    on their train split plus a replay sample of its training data (``ml.retraining.fine_tune``), measure it and the
    active one on the same photos, the data sets' test splits (at most ``test_limit`` each) and the reviewed faces'
    own, and register it as a candidate with both tables. Returns it; None for a run that is not queued (already
    run) or that failed: its row says why. The reviewed faces' files go with the run's folder, whatever happens."""
    claimed = TrainingRun.objects.filter(pk=run_id, state=TrainingRun.State.QUEUED).update(
        state=TrainingRun.State.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return None
    run = TrainingRun.objects.get(pk=run_id)
    work = Path(settings.MODEL_TRAINING_DIR) / f"run-{run.pk}"
    recorder = _TrainingRecorder(run.pk)
    try:
        with recorder.capturing():
            candidate = _candidate_train(run, work, recorder)
    except SoftTimeLimitExceeded:
        _training_run_finish(run.pk, state=TrainingRun.State.FAILED, error=TRAINING_TIME_UP, log_tail=recorder.tail())
        return None
    except Exception as error:
        logger.exception("training run %s failed", run.pk)
        _training_run_finish(run.pk, state=TrainingRun.State.FAILED, error=str(error) or repr(error),
                             log_tail=recorder.tail())  # fmt: skip
        return None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _training_run_finish(run.pk, state=TrainingRun.State.DONE, candidate=candidate, progress=1.0,
                         stage=f"registered {candidate.version}", log_tail=recorder.tail())  # fmt: skip
    return candidate


def _candidate_train(run: TrainingRun, work: Path, recorder: "_TrainingRecorder") -> ModelVersion:
    from ml.retraining import REVIEWED, EvaluationSet, compare, fine_tune

    parameters = run.parameters
    base = model_version_active()
    if base is None:
        raise ValueError("no model version is active")
    TrainingRun.objects.filter(pk=run.pk).update(base=base)
    base_weights = model_weights_local(model_version=base)
    folders = [Path(settings.MODEL_TRAINING_DATA_DIR) / name for name in settings.MODEL_TRAINING_SETS]
    missing = [str(folder) for folder in folders if not (folder / "labels.csv").exists()]
    if missing:
        raise ValueError(f"the training data is missing (MODEL_TRAINING_DATA_DIR): {', '.join(missing)}")

    recorder(0.0, "exporting the reviewed faces")
    reviewed = work / REVIEWED
    exported = reviewed_faces_export(directory=reviewed)
    logger.info("exported the reviewed faces: %s", exported)
    if not exported["train"]:
        raise ValueError(f"no reviewed face is in the train split yet ({exported})")
    tuned = fine_tune(
        reviewed=reviewed,
        replay=folders,
        replay_size=parameters["replay_size"],
        init_from=base_weights,
        out=work / "fine-tune",
        cache=Path(settings.MODEL_TRAINING_DIR) / "cache",
        epochs=parameters["epochs"],
        epoch_size=parameters["epoch_size"],
        learning_rate=parameters["learning_rate"],
        reviewed_share=parameters["reviewed_share"],
        train_trunk=parameters["train_trunk"],
        progress=recorder.part(0.05, 0.75),
    )
    sets = [EvaluationSet(f.name, f / "labels.csv", f / "images", "test", parameters["test_limit"]) for f in folders]
    sets.append(EvaluationSet(REVIEWED, reviewed / "labels.csv", reviewed / "images", "test"))
    figures = compare({"candidate": tuned["weights"], "active": base_weights}, sets, progress=recorder.part(0.75, 0.95))
    recorder(0.95, f"registering {tuned['version']}")
    training_data = {**tuned["training_data"], "reviewed_export": exported, "test_limit": parameters["test_limit"]}
    return model_version_register(
        weights_dir=tuned["weights"],
        parent=base,
        training_data=training_data,
        metrics=figures["candidate"],
        baseline_metrics=figures["active"],
    )


def _training_run_finish(run_id: int, *, state: str, **fields) -> None:
    TrainingRun.objects.filter(pk=run_id).update(state=state, finished_at=timezone.now(), **fields)


class _TrainingRecorder(logging.Handler):
    """A training run's progress and its last log lines (of ``ml`` and this module), written to its row as it goes:
    called with (fraction done, what is happening) at each stage and epoch."""

    LOGGERS = ("ml", __name__)

    def __init__(self, run_id: int):
        super().__init__(level=logging.INFO)
        self.run_id = run_id
        self.lines: deque[str] = deque(maxlen=TRAINING_LOG_LINES)
        self.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def tail(self) -> str:
        return "\n".join(self.lines)

    def __call__(self, fraction: float, stage: str) -> None:
        TrainingRun.objects.filter(pk=self.run_id).update(progress=fraction, stage=stage[:200], log_tail=self.tail())

    def part(self, start: float, end: float):
        """Progress of one step that reports 0 to 1, as its share ``start`` to ``end`` of the run."""
        return lambda fraction, stage: self(start + (end - start) * fraction, stage)

    @contextlib.contextmanager
    def capturing(self):
        loggers = [logging.getLogger(name) for name in self.LOGGERS]
        for each in loggers:
            each.addHandler(self)
        try:
            yield
        finally:
            for each in loggers:
                each.removeHandler(self)
