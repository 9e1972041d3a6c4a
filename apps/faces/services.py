"""Writes of face documents in MongoDB, and the detection step of the pipeline.

Each document says which weights its crop was aligned for (``model_version``) and its side in
pixels (``crop_size``): a worker on other weights aligns the face again from the stored photo
(``face_crops_for_model``) instead of feeding the model crops of a size it was not built for.
"""

from __future__ import annotations

import dataclasses
import io
import time
from typing import TYPE_CHECKING

import numpy as np
from bson import ObjectId
from django.conf import settings
from django.utils import timezone
from PIL import Image
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from apps.faces.mongo import faces_collection
from apps.faces.pipeline import face_pipeline
from apps.faces.selectors import FaceCrop, face_crops_get, face_document_ids
from apps.uploads.models import Upload
from apps.uploads.selectors import upload_ids_existing, upload_read_image
from apps.uploads.services import upload_fail, upload_record_timings, upload_start_processing

if TYPE_CHECKING:
    from ml.inference import Face

UNREADABLE_IMAGE = "This file could not be read as a photo."
MISSING_IMAGE = "The stored photo was not found. Please upload it again."
TOO_MANY_ATTEMPTS = "This photo stopped the analysis several times and was set aside."
PHOTO_GONE_FOR_NEW_MODEL = (
    "The model was updated while this photo was analysed, and the photo needed to cut the faces "
    "again for it is no longer stored. Please upload it again."
)
DUPLICATE_KEY = 11000


def faces_detect(*, upload_id: str) -> list[str]:
    """Find and align the faces of an upload and store them; returns their document ids, in face order.

    A crowd is cut to the MAX_FACES_PER_PHOTO largest faces, so that one photo cannot hold a worker
    for long; ``Upload.faces_found`` keeps how many there were. The faces kept are numbered left to
    right (``faces_left_to_right``). An upload that is gone or already
    finished (a redelivered task) is left alone: returns []. So is one claimed more than
    MAX_PROCESSING_ATTEMPTS times, after failing it: its tasks kept dying with their worker (a photo
    that runs it out of memory or crashes a decoder), and the broker would redeliver it for ever.
    """
    from ml.images import UnreadableImageError, load_rgb

    upload = upload_start_processing(upload_id=upload_id)
    if upload is None:
        return []
    if upload.processing_attempts > settings.MAX_PROCESSING_ATTEMPTS:
        upload_fail(upload_id=upload_id, reason=TOO_MANY_ATTEMPTS)
        return []
    started = time.perf_counter()
    try:
        image = load_rgb(upload_read_image(upload=upload))
    except FileNotFoundError:
        upload_fail(upload_id=upload_id, reason=MISSING_IMAGE)
        return []
    except UnreadableImageError:
        upload_fail(upload_id=upload_id, reason=UNREADABLE_IMAGE)
        return []
    decoded = time.perf_counter()
    pipeline = face_pipeline()
    found = pipeline.find_faces([image])[0]
    detected = time.perf_counter()
    face_ids = face_documents_store(
        upload_id=upload_id,
        faces=faces_left_to_right(largest_faces(found, settings.MAX_FACES_PER_PHOTO)),
        model_version=pipeline.model_version,
        first_run=upload.processing_attempts == 1,
    )
    upload_record_timings(
        upload=upload,
        faces_found=len(found),
        timings={
            "queue_ms": (upload.started_at - upload.created_at).total_seconds() * 1000,
            "decode_ms": (decoded - started) * 1000,
            "detection_ms": (detected - decoded) * 1000,
        },
    )
    return face_ids


def largest_faces(faces: list[Face], count: int) -> list[Face]:
    """The ``count`` largest faces (the ones age and gender can be told best from), in their given order."""
    if len(faces) <= count:
        return faces
    largest = sorted(range(len(faces)), key=lambda i: faces[i].detection.box[2] * faces[i].detection.box[3])[-count:]
    return [faces[i] for i in sorted(largest)]


def faces_left_to_right(faces: list[Face]) -> list[Face]:
    """The faces by their box centre, left to right, so that face 1 on the page, in the API and on the Telegram
    photo is the leftmost: the order people read a photo in. Faces above one another (centres less than half a
    face apart across: a column of a group photo) go top to bottom, not by a pixel's jitter."""

    def centre(face: Face) -> tuple[float, float]:
        x, y, width, height = face.detection.box
        return x + width / 2, y + height / 2

    def beside(face: Face, first: Face) -> bool:  # ``face`` is right of ``first``, not below it
        return centre(face)[0] - centre(first)[0] >= min(face.detection.box[2], first.detection.box[2]) / 2

    ordered, column = [], []
    for face in sorted(faces, key=centre):
        if column and beside(face, column[0]):
            ordered += sorted(column, key=lambda f: centre(f)[1])
            column = []
        column.append(face)
    return ordered + sorted(column, key=lambda f: centre(f)[1])


def face_documents_store(
    *, upload_id: str, faces: list[Face], model_version: str, first_run: bool = False
) -> list[str]:
    """Store one document per face, keyed by (upload, face index: its position in ``faces``), and drop any
    left from an earlier run. Each has its head pose and quality (``ml.face_quality``) beside its crop.

    ``model_version`` names the weights the crops were aligned for. ``first_run``: this is the
    upload's first claim, so no earlier run can have stored faces: one insert, no upsert, delete or
    read back (three round trips fewer). A second delivery racing it upserts, and if it got there
    first the insert's duplicates fall back to the same upserts.
    """
    from ml.inference import face_quality, head_pose

    collection = faces_collection()
    now = timezone.now()
    documents = [
        {
            "upload_id": str(upload_id),
            "face_index": index,
            "crop_png": _png_bytes(face.crop),
            "crop_size": face.crop.shape[0],
            "model_version": model_version,
            "box": dict(zip(("x", "y", "width", "height"), map(float, face.detection.box), strict=True)),
            "landmarks": _landmarks(face.detection.landmarks),
            "detection_confidence": float(face.detection.confidence),
            "pose": dataclasses.asdict(head_pose(face.detection.landmarks)),
            "quality": dataclasses.asdict(face_quality(face.crop, face.detection.box)),
            "created_at": now,
            "updated_at": now,
        }
        for index, face in enumerate(faces)
    ]
    if first_run:
        documents = [{"_id": ObjectId(), **document} for document in documents]
        try:
            if documents:
                collection.insert_many(documents, ordered=False)
            return [str(document["_id"]) for document in documents]
        except BulkWriteError as error:
            _raise_unless_duplicates(error)
    _upsert(collection, [{k: v for k, v in document.items() if k != "_id"} for document in documents])
    collection.delete_many({"upload_id": str(upload_id), "face_index": {"$gte": len(faces)}})
    return face_document_ids(upload_id=upload_id)


def _upsert(collection, documents: list[dict]) -> None:
    """Write each face over the one stored with its (upload, face index), keeping that one's id and creation time."""
    operations = [
        UpdateOne(
            {"upload_id": document["upload_id"], "face_index": document["face_index"]},
            {
                "$set": {k: v for k, v in document.items() if k != "created_at"},
                "$setOnInsert": {"created_at": document["created_at"]},
            },
            upsert=True,
        )
        for document in documents
    ]
    if not operations:
        return
    try:
        collection.bulk_write(operations, ordered=False)
    except BulkWriteError as error:
        _raise_unless_duplicates(error)
        # Two deliveries of one task upserted the same new face at once; the loser's
        # retry now finds the winner's document and updates it.
        collection.bulk_write(operations, ordered=False)


def _raise_unless_duplicates(error: BulkWriteError) -> None:
    if any(e.get("code") != DUPLICATE_KEY for e in error.details.get("writeErrors", [])):
        raise error


def face_crops_for_model(*, upload: Upload, face_ids: list[str]) -> list[FaceCrop]:
    """The upload's faces with these ids, in face order, each cropped for the worker's weights.

    Crops aligned for weights of another input size (a deploy between the two steps, or a
    redelivery after one) are aligned again from the stored photo and its landmarks, and stored
    so; never resized. Raises ``FileNotFoundError`` when that photo is gone and
    ``ml.images.UnreadableImageError`` when it cannot be read any more.
    """
    from ml.images import load_rgb

    pipeline = face_pipeline()
    crops = face_crops_get(upload_id=upload.pk, face_ids=face_ids)
    stale = [crop for crop in crops if crop.crop_size != pipeline.crop_size]
    if not stale:
        return crops
    image = load_rgb(upload_read_image(upload=upload))
    aligned = {crop.id: face_crop_align(image, crop.landmarks, pipeline.crop_size) for crop in stale}
    now = timezone.now()
    faces_collection().bulk_write(
        [
            UpdateOne(
                {"_id": ObjectId(face_id)},
                {
                    "$set": {
                        "crop_png": _png_bytes(crop),
                        "crop_size": pipeline.crop_size,
                        "model_version": pipeline.model_version,
                        "updated_at": now,
                    }
                },
            )
            for face_id, crop in aligned.items()
        ],
        ordered=False,
    )
    return [
        dataclasses.replace(
            crop, crop=aligned[crop.id], crop_size=pipeline.crop_size, model_version=pipeline.model_version
        )
        if crop.id in aligned
        else crop
        for crop in crops
    ]


def face_crop_align(image_rgb, landmarks: dict[str, list[float]], size: int):
    """A face cut out of its (upright) photo again from its stored landmarks, as detection cut it."""
    from ml.inference import LANDMARK_NAMES, align_face

    return align_face(image_rgb, np.array([landmarks[name] for name in LANDMARK_NAMES], dtype=np.float64), size)


def face_documents_record_outputs(
    *, face_ids: list[str], model_version: str, age_probabilities, female_probabilities
) -> None:
    """Keep what the model said about each face beside its crop, for review and retraining: its age
    distribution (faces x years 0..100) and P(female), before they were summarised into the estimates,
    which are kept in SQL only (``FaceEstimate``)."""
    now = timezone.now()
    operations = [
        UpdateOne(
            {"_id": ObjectId(face_id)},
            {
                "$set": {
                    "raw": {
                        "age_probabilities": [round(float(p), 6) for p in ages],
                        "p_female": float(p_female),
                        "model_version": model_version,
                        "recorded_at": now,
                    },
                    "updated_at": now,
                },
                # Documents written before the estimates were SQL's alone kept a copy here.
                "$unset": {"estimate": ""},
            },
        )
        for face_id, ages, p_female in zip(face_ids, age_probabilities, female_probabilities, strict=True)
    ]
    if operations:
        faces_collection().bulk_write(operations, ordered=False)


def face_documents_delete(*, upload_id: str) -> int:
    return faces_collection().delete_many({"upload_id": str(upload_id)}).deleted_count


def face_documents_delete_expired(*, cutoff) -> int:
    """Delete face documents made before ``cutoff`` whose upload is gone, and return how many: left
    behind when MongoDB failed while an upload was erased, or by a detection that outlived its upload."""
    collection = faces_collection()
    old = collection.distinct("upload_id", {"created_at": {"$lt": cutoff}})
    orphans = sorted(set(old) - upload_ids_existing(upload_ids=old))
    if not orphans:
        return 0
    return collection.delete_many({"upload_id": {"$in": orphans}, "created_at": {"$lt": cutoff}}).deleted_count


def _png_bytes(crop) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(crop).save(buffer, format="PNG")
    return buffer.getvalue()


def _landmarks(points) -> dict[str, list[float]]:
    from ml.inference import LANDMARK_NAMES

    return {name: [float(x), float(y)] for name, (x, y) in zip(LANDMARK_NAMES, points, strict=True)}
