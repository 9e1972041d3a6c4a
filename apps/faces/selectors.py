"""Reads of face documents in MongoDB."""

import io
from dataclasses import dataclass

import numpy as np
import pymongo
import pymongo.errors
from bson import ObjectId
from PIL import Image

from apps.faces.mongo import faces_collection


@dataclass(frozen=True)
class FaceCrop:
    """A detected face as the estimation step needs it: where it is, how usable, and its aligned crop."""

    id: str
    face_index: int
    box: dict[str, float]
    landmarks: dict[str, list[float]]
    detection_confidence: float
    pose: dict[str, float] | None  # yaw, pitch, roll in degrees (None: stored before they were computed)
    quality: dict[str, float] | None  # sharpness, brightness (0-100), size (px); None likewise
    crop: np.ndarray  # S x S x 3 uint8 RGB
    crop_size: int  # S
    model_version: str | None  # the weights it was aligned for (None: stored before this was recorded)


def face_document_ids(*, upload_id) -> list[str]:
    """Ids of an upload's face documents, in face order."""
    documents = faces_collection().find({"upload_id": str(upload_id)}, {"_id": 1}).sort("face_index", 1)
    return [str(document["_id"]) for document in documents]


def face_crops_get(*, upload_id, face_ids: list[str]) -> list[FaceCrop]:
    """The faces with these ids that belong to the upload, in face order."""
    documents = faces_collection().find(
        {"_id": {"$in": [ObjectId(face_id) for face_id in face_ids]}, "upload_id": str(upload_id)}
    )
    return sorted(map(_face_crop, documents), key=lambda crop: crop.face_index)


def _face_crop(document: dict) -> FaceCrop:
    crop = np.asarray(Image.open(io.BytesIO(document["crop_png"])).convert("RGB"))
    return FaceCrop(
        id=str(document["_id"]),
        face_index=document["face_index"],
        box=document["box"],
        landmarks=document["landmarks"],
        detection_confidence=document["detection_confidence"],
        pose=document.get("pose"),
        quality=document.get("quality"),
        crop=crop,
        crop_size=crop.shape[0],
        model_version=document.get("model_version"),
    )


# A page asking for a crop gives MongoDB this long, not pymongo's 30 s server selection: a web
# thread must not wait half a minute on a database that is down.
FACE_READ_TIMEOUT_SECONDS = 3.0


class FacesUnavailable(Exception):
    """MongoDB did not answer a read of face documents in time (down, or hung); ``message`` is for people."""

    message = "The face crops cannot be shown right now. Please try again in a minute."


def face_crop_png(*, upload_id, face_index: int) -> bytes | None:
    """The aligned crop of one face of an upload as PNG, or None when there is no such face.

    Raises ``FacesUnavailable`` when MongoDB does not answer within FACE_READ_TIMEOUT_SECONDS.
    """
    try:
        with pymongo.timeout(FACE_READ_TIMEOUT_SECONDS):
            document = faces_collection().find_one(
                {"upload_id": str(upload_id), "face_index": face_index}, {"crop_png": 1}
            )
    except (pymongo.errors.ConnectionFailure, pymongo.errors.ExecutionTimeout) as error:
        raise FacesUnavailable(f"MongoDB did not answer within {FACE_READ_TIMEOUT_SECONDS:g} s") from error
    return document["crop_png"] if document else None
