"""The one face pipeline shared by training, evaluation and serving.

:func:`extract_faces` turns a photo into aligned face crops. The training cache, the
evaluation CLI and the inference facade all call it, so they cannot drift apart.
Bump :data:`PREPROCESSING_VERSION` whenever its output changes: cached crops and model
cards carry it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.alignment import align_face
from ml.detection import Detection, FaceDetector

PREPROCESSING_VERSION = "mtcnn1-eyes042-v1"


@dataclass(frozen=True)
class Face:
    detection: Detection
    crop: np.ndarray  # size x size x 3, uint8, RGB


def extract_faces(image_rgb: np.ndarray, detections: list[Detection], size: int) -> list[Face]:
    """Align every detected face of one photo to a ``size`` x ``size`` crop."""
    return [Face(detection=d, crop=align_face(image_rgb, d.landmarks, size)) for d in detections]


def detect_and_extract(detector: FaceDetector, images_rgb: list[np.ndarray], size: int) -> list[list[Face]]:
    """Detect and align the faces of several photos (the batch path used everywhere)."""
    return [
        extract_faces(image, detections, size)
        for image, detections in zip(images_rgb, detector.detect_batch(images_rgb), strict=True)
    ]
