"""Writes of predictions: starting the pipeline for a photo, the estimation step, deleting everything."""

import csv
import hashlib
import logging
import time
from functools import partial
from itertools import groupby
from pathlib import Path

import kombu.exceptions
import numpy as np
import redis.exceptions
from celery import chain
from django.core.files import File
from django.db import transaction
from PIL import Image
from rest_framework_api_key.models import APIKey

from apps.faces.pipeline import face_pipeline
from apps.faces.selectors import face_crops_get
from apps.faces.services import face_documents_delete, face_documents_record_estimates
from apps.predictions.models import FacePrediction, PredictionReview
from apps.predictions.selectors import reviewed_faces
from apps.uploads.models import Upload
from apps.uploads.selectors import upload_get, upload_read_image
from apps.uploads.services import upload_create, upload_delete, upload_fail, upload_finish

logger = logging.getLogger(__name__)

# Exported crops are as large as the UTKFace chips: ml.train and ml.evaluate detect and align them again.
EXPORT_CROP_SIZE = 200
EXPORT_GENDER_CODES = {FacePrediction.Gender.MALE: 0, FacePrediction.Gender.FEMALE: 1}  # as in UTKFace
QUEUE_UNAVAILABLE = "The photo could not be queued for analysis. Please try again later."
# What a redelivered estimation overwrites on an existing (upload, face_index) row.
RESULT_FIELDS = [
    "mongo_face_id",
    "box_x",
    "box_y",
    "box_width",
    "box_height",
    "landmarks",
    "detection_confidence",
    "age_value",
    "age_low",
    "age_high",
    "age_level",
    "gender_label",
    "gender_probability",
    "model_version",
]


def prediction_request(*, image: File, channel: str, owner: APIKey | None = None) -> Upload:
    """Accept a photo and, once its row is committed, queue its analysis.

    Raises ``apps.uploads.images.UploadRejected`` for files we do not accept.
    """
    with transaction.atomic():
        upload = upload_create(image=image, channel=channel, owner=owner)
        transaction.on_commit(partial(prediction_pipeline_start, upload_id=upload.pk))
    return upload


def prediction_pipeline_start(*, upload_id) -> None:
    """Send detect_faces -> predict_ages; the face ids travel from one to the other in the broker.

    When the broker cannot be reached the upload fails at once rather than waiting for ever.
    """
    # Imported here: the task modules import this one.
    from apps.faces.tasks import detect_faces
    from apps.predictions.tasks import predict_ages

    try:
        chain(detect_faces.s(str(upload_id)), predict_ages.s(str(upload_id))).apply_async()
    except (kombu.exceptions.OperationalError, redis.exceptions.ConnectionError):
        logger.exception("could not queue upload %s", upload_id)
        upload_fail(upload_id=upload_id, reason=QUEUE_UNAVAILABLE)


def predictions_estimate(*, face_ids: list[str], upload_id) -> None:
    """Estimate age and gender of the detected faces in one batch, store the results, finish the upload.

    Idempotent: rows are upserted by (upload, face index); an upload that is already finished is
    left alone, and the faces of an upload deleted while it was being analysed are removed.
    """
    upload = upload_get(upload_id=upload_id)
    if upload is None:
        face_documents_delete(upload_id=upload_id)
        return
    if upload.status != Upload.Status.PROCESSING:
        return
    crops = face_crops_get(upload_id=upload_id, face_ids=face_ids)
    started = time.perf_counter()
    if crops:
        pipeline = face_pipeline()
        estimates, age_probabilities, female = pipeline.estimate_with_outputs(np.stack([crop.crop for crop in crops]))
        face_documents_record_estimates(
            face_ids=[crop.id for crop in crops],
            estimates=estimates,
            model_version=pipeline.model_version,
            age_probabilities=age_probabilities,
            female_probabilities=female,
        )
        rows = [
            _face_prediction(upload, crop, age, gender, pipeline.model_version)
            for crop, (age, gender) in zip(crops, estimates, strict=True)
        ]
    else:
        rows = []
    estimated = time.perf_counter()
    with transaction.atomic():
        FacePrediction.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["upload", "face_index"],
            update_fields=RESULT_FIELDS,
        )
        FacePrediction.objects.filter(upload=upload).exclude(face_index__in=[row.face_index for row in rows]).delete()
        upload_finish(upload=upload, timings={"estimation_ms": (estimated - started) * 1000})


def prediction_delete(*, upload: Upload) -> None:
    """Remove a photo and everything derived from it: face documents, stored file, SQL rows."""
    face_documents_delete(upload_id=upload.pk)
    upload_delete(upload=upload)


def _face_prediction(upload, crop, age, gender, model_version: str) -> FacePrediction:
    return FacePrediction(
        upload=upload,
        face_index=crop.face_index,
        mongo_face_id=crop.id,
        box_x=round(crop.box["x"]),
        box_y=round(crop.box["y"]),
        box_width=round(crop.box["width"]),
        box_height=round(crop.box["height"]),
        landmarks=crop.landmarks,
        detection_confidence=crop.detection_confidence,
        age_value=age.value,
        age_low=age.low,
        age_high=age.high,
        age_level=age.level,
        gender_label=gender.label,
        gender_probability=gender.probability,
        model_version=model_version,
    )


def prediction_review_create(
    *, prediction: FacePrediction, reviewer, age: int | None = None, gender: str | None = None
) -> PredictionReview:
    """Record a reviewer's verdict on a face, leaving the prediction as the model made it.

    Without ``age`` and ``gender`` the reviewer confirms the prediction (its age rounded to years).
    Raises ``django.core.exceptions.ValidationError`` for an impossible age or an unknown gender.
    """
    predicted_age = round(prediction.age_value)
    age = predicted_age if age is None else age
    gender = prediction.gender_label if gender is None else gender
    review = PredictionReview(
        prediction=prediction,
        reviewer=reviewer,
        age=age,
        gender=gender,
        confirmed=(age, gender) == (predicted_age, prediction.gender_label),
    )
    review.full_clean()
    review.save()
    return review


def reviewed_faces_export(*, directory: Path, size: int = EXPORT_CROP_SIZE) -> dict[str, int]:
    """Write the reviewed faces as a dataset in the UTKFace layout, for ``ml.train`` and ``ml.evaluate``.

    ``directory/images/<face id>.jpg`` are aligned crops cut from the stored photos (landmarks
    in upright pixels, as the photo decodes upright); ``directory/labels.csv`` has
    ``filename,age,gender,race,split`` with the newest review's verdict, gender 0 male / 1 female,
    race empty, and a split that depends only on the face id, so re-exports keep faces where they were.
    Returns the number of faces per split, and ``skipped``: faces whose photo is gone or unreadable.
    """
    from ml.alignment import LANDMARK_NAMES, align_face
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
            landmarks = np.array([face.landmarks[name] for name in LANDMARK_NAMES], dtype=np.float64)
            filename = f"{face.mongo_face_id}.jpg"
            Image.fromarray(align_face(image, landmarks, size)).save(images_dir / filename, quality=95)
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
