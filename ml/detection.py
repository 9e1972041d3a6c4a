"""MTCNN face detection, with the library's known traps handled in one place.

* mtcnn wants RGB; callers pass RGB arrays from :func:`ml.images.load_rgb`.
* ``min_face_size`` above about 23 px makes mtcnn 1.0.0 return no faces at all, so it is
  fixed at 20 here rather than exposed.
* Boxes below 0.9 confidence are mostly false positives (playing cards, patterns).
* mtcnn raises ``InvalidArgumentError`` inside a batch and then returns nothing for the
  whole batch, so batches that come back empty are retried one image at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.alignment import LANDMARK_NAMES

MIN_FACE_SIZE = 20
DEFAULT_MIN_CONFIDENCE = 0.9


@dataclass(frozen=True)
class Detection:
    """One face as MTCNN saw it, in the pixels of the image it was given."""

    box: tuple[float, float, float, float]  # x, y, width, height
    confidence: float
    landmarks: np.ndarray  # 5 x 2, in LANDMARK_NAMES order


class FaceDetector:
    """Loads MTCNN once; ``detect`` and ``detect_batch`` return faces sorted by confidence."""

    def __init__(self, min_confidence: float = DEFAULT_MIN_CONFIDENCE, device: str | None = None):
        import tensorflow as tf  # imported here so that `import ml` stays light
        from mtcnn import MTCNN

        if device is None:
            device = "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"
        self._mtcnn = MTCNN(device=device)
        self.min_confidence = min_confidence

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        return self.detect_batch([image_rgb])[0]

    def detect_batch(self, images_rgb: list[np.ndarray]) -> list[list[Detection]]:
        """Detect faces in several images; same-sized images share one pass through the networks."""
        if not images_rgb:
            return []
        raw = self._mtcnn.detect_faces(list(images_rgb), min_face_size=MIN_FACE_SIZE)
        if len(images_rgb) > 1 and not any(raw):
            raw = [self._mtcnn.detect_faces([image], min_face_size=MIN_FACE_SIZE)[0] for image in images_rgb]
        return [self._parse(faces) for faces in raw]

    def _parse(self, faces: list[dict]) -> list[Detection]:
        detections = [
            Detection(
                box=tuple(float(v) for v in face["box"]),
                confidence=float(face["confidence"]),
                landmarks=np.array([face["keypoints"][name] for name in LANDMARK_NAMES], dtype=np.float64),
            )
            for face in faces
            if float(face["confidence"]) >= self.min_confidence
        ]
        return sorted(detections, key=lambda d: d.confidence, reverse=True)
