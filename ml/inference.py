"""The inference facade: the only part of ml/ the Django apps call (workers; web processes call only the
Pillow-only ``ml.images``). ``__all__`` is that surface; import-linter holds the apps to it (``make lint``).

``FacePipeline`` loads MTCNN and the Keras model lazily, once per process (or at once with
``warm_up``, as ml workers do when they start), and offers the two halves the Celery tasks run
separately (``find_faces`` on the photo, ``estimate`` on a batch of crops) plus ``predict``, which does both.
Results are deterministic: no randomness at inference, flip averaging included.

On a CPU both run on TensorFlow Lite with XNNPACK (``runtime="tflite"``, :mod:`ml.tflite`),
converted in memory at load; ``runtime="keras"`` keeps TensorFlow's graphs (a GPU's default).
For the age/gender net that more than halves the time of a photo's one face (flip included:
4.7 against 10.6 ms, CPU 8.5 against 15.0) and is about as fast at batch 32 (3.8 against 4.0 ms
a face, CPU 7.4 against 7.2; ``bench/model_speed.py``, load ~1), with the same outputs (logits
within 3e-6, age probabilities within 1e-7).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.alignment import LANDMARK_NAMES, align_face
from ml.detection import MAX_SHORT_SIDE
from ml.face_quality import face_quality, head_pose
from ml.preprocessing import PREPROCESSING_VERSION, Face, detect_and_extract
from ml.types import AgeEstimate, Box, FacePrediction, GenderEstimate, ImagePrediction

__all__ = [
    "DEFAULT_WEIGHTS_DIR",
    "LANDMARK_NAMES",
    "WEIGHTS_FILES",
    "AgeEstimate",
    "Face",
    "FacePipeline",
    "GenderEstimate",
    "ModelInfo",
    "align_face",  # to cut a reviewed face out of its photo again (export_reviewed)
    "face_quality",  # how usable each detected face is, stored beside its crop
    "head_pose",
    "weights_version",
]

DEFAULT_WEIGHTS_DIR = Path(__file__).parent / "weights"
MODEL_FILE = "age_gender.keras"
CARD_DATA_FILE = "model.json"
WEIGHTS_FILES = (MODEL_FILE, CARD_DATA_FILE)  # what a weights folder holds, all a worker needs to serve it


@dataclass(frozen=True)
class ModelInfo:
    """What ``model.json`` beside the weights says about them."""

    version: str
    image_size: int
    preprocessing_version: str
    age_temperature: float
    interval_level: float

    @classmethod
    def load(cls, weights_dir: Path) -> ModelInfo:
        data = json.loads((weights_dir / CARD_DATA_FILE).read_text())
        return cls(
            version=data["version"],
            image_size=int(data["image_size"]),
            preprocessing_version=data["preprocessing_version"],
            age_temperature=float(data.get("age_temperature", 1.0)),
            interval_level=float(data.get("interval_level", 0.8)),
        )


def write_model(model, weights_dir: Path, image_size: int, age_temperature: float, extra: dict) -> ModelInfo:
    """Save weights (no optimizer state) and ``model.json``; the version is a hash of the weights."""
    import keras

    weights_dir.mkdir(parents=True, exist_ok=True)
    path = weights_dir / MODEL_FILE
    # Keras 3 ignores include_optimizer: an uncompiled model on the same layers saves weights
    # only (a quarter of the size once Adam's moments and the weight average are attached).
    keras.Model(model.input, model.output, name=model.name).save(path)
    version = weights_version(weights_dir)
    info = {
        "version": version,
        "image_size": image_size,
        "preprocessing_version": PREPROCESSING_VERSION,
        "age_temperature": age_temperature,
        "interval_level": 0.8,
        **extra,
    }
    (weights_dir / CARD_DATA_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return ModelInfo.load(weights_dir)


def weights_version(weights_dir: Path) -> str:
    """The version a weights folder's model file hashes to: what ``model.json`` says, unless the file is damaged."""
    return "ag-" + hashlib.sha256((Path(weights_dir) / MODEL_FILE).read_bytes()).hexdigest()[:10]


class FacePipeline:
    """Detection, alignment and age/gender estimation, with models loaded on first use."""

    def __init__(
        self,
        weights_dir: Path | str = DEFAULT_WEIGHTS_DIR,
        min_confidence: float = 0.9,
        batch_size: int = 32,
        max_short_side: int = MAX_SHORT_SIDE,
        runtime: str | None = None,
    ):
        """``runtime``: "tflite" or "keras" for both networks; by default TFLite unless a GPU is visible."""
        self.weights_dir = Path(weights_dir)
        self.info = ModelInfo.load(self.weights_dir)
        if self.info.preprocessing_version != PREPROCESSING_VERSION:
            raise RuntimeError(
                f"weights were trained with preprocessing {self.info.preprocessing_version!r}, "
                f"this code runs {PREPROCESSING_VERSION!r}: retrain or check out matching code"
            )
        self.min_confidence = min_confidence
        self.max_short_side = max_short_side  # detection's size policy (ml.detection)
        self.batch_size = batch_size
        if runtime not in (None, "tflite", "keras"):
            raise ValueError(f"runtime must be 'tflite' or 'keras', not {runtime!r}")
        self.runtime = runtime  # None: decided when the models load
        self._detector = None
        self._model = None
        self._lock = threading.Lock()

    def with_weights(self, weights_dir: Path | str) -> FacePipeline:
        """The same pipeline on other age/gender weights, sharing this one's detector (loaded here if need be):
        a worker switching versions loads only the new network."""
        other = FacePipeline(weights_dir, self.min_confidence, self.batch_size, self.max_short_side, self.runtime)
        other._detector = self._load_detector()
        return other

    @property
    def model_version(self) -> str:
        return self.info.version

    @property
    def crop_size(self) -> int:
        return self.info.image_size

    def _load_detector(self):
        with self._lock:
            if self._detector is None:
                from ml.detection import FaceDetector

                self._detector = FaceDetector(
                    min_confidence=self.min_confidence, max_short_side=self.max_short_side, runtime=self.runtime
                )
        return self._detector

    def _load_model(self):
        """The Keras model, or its TFLite version (a callable returning the same dict of outputs)."""
        with self._lock:
            if self._model is None:
                import keras
                import tensorflow as tf

                model = keras.models.load_model(self.weights_dir / MODEL_FILE, compile=False)
                runtime = self.runtime or ("keras" if tf.config.list_physical_devices("GPU") else "tflite")
                if runtime == "tflite":
                    from ml.tflite import LiteNetwork

                    model = LiteNetwork(model, (self.crop_size, self.crop_size, 3))
                self._model = model
        return self._model

    def warm_up(self) -> None:
        """Load both networks and run each once, so that a process's first photo costs what its tenth does:
        loading takes seconds, and each network's first call plans its interpreters (or traces its graph).

        The photo is seeded noise: faceless, so detection also runs its retry, yet PNet finds candidates
        there and RNet runs too. The age/gender net gets one blank crop (and its mirror), a photo's usual batch.
        """
        noise = np.random.default_rng(0).integers(0, 256, (self.max_short_side, self.max_short_side, 3), np.uint8)
        self.find_faces([noise])
        self.estimate(np.zeros((1, self.crop_size, self.crop_size, 3), np.uint8))

    def find_faces(self, images_rgb: list[np.ndarray]) -> list[list[Face]]:
        """Detect and align every face of each photo, most confident first."""
        return detect_and_extract(self._load_detector(), images_rgb, self.crop_size)

    def estimate(self, crops: np.ndarray | list[np.ndarray]) -> list[tuple[AgeEstimate, GenderEstimate]]:
        """Age and gender for a batch of aligned crops (the output of ``find_faces``)."""
        return self.estimate_with_outputs(crops)[0]

    def estimate_with_outputs(self, crops: np.ndarray | list[np.ndarray]):
        """``estimate`` plus the model's own outputs per face: the calibrated probability of each
        year 0..MAX_AGE (N x AGE_BINS) and P(female) (N), kept for review and retraining."""
        from ml.model import age_distribution, summarize_ages

        age_logits, female = self.raw_outputs(crops)
        mean, low, high = summarize_ages(age_logits, self.info.age_temperature, self.info.interval_level)
        estimates = [
            (AgeEstimate(float(value), float(lo), float(hi), self.info.interval_level), _gender(float(p_female)))
            for value, lo, hi, p_female in zip(mean, low, high, female, strict=True)
        ]
        return estimates, age_distribution(age_logits, self.info.age_temperature), female

    def raw_outputs(self, crops: np.ndarray | list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Age logits (N x AGE_BINS) and P(female) (N), averaged with the mirrored crops."""
        from ml.model import AGE_BINS, predict_with_flip

        if len(crops) == 0:
            return np.zeros((0, AGE_BINS)), np.zeros(0)
        crops = np.asarray(crops, dtype=np.uint8)
        if crops.shape[1:] != (self.crop_size, self.crop_size, 3):
            # Never reshape: crops aligned for other weights would become other, fewer faces.
            raise ValueError(
                f"crops of shape {crops.shape[1:]} given to {self.model_version}, which takes "
                f"{self.crop_size} x {self.crop_size} x 3: align the faces again for these weights"
            )
        return predict_with_flip(self._load_model(), crops, self.batch_size)

    def predict(self, images_rgb: list[np.ndarray]) -> list[ImagePrediction]:
        """Every face of every photo; faces of all photos go through the model as one batch."""
        started = time.perf_counter()
        faces_per_image = self.find_faces(images_rgb)
        detected = time.perf_counter()
        all_crops = [face.crop for faces in faces_per_image for face in faces]
        estimates = iter(self.estimate(np.array(all_crops)) if all_crops else [])
        finished = time.perf_counter()
        timings = {
            "detection_ms": (detected - started) * 1000 / max(1, len(images_rgb)),
            "model_ms": (finished - detected) * 1000 / max(1, len(images_rgb)),
        }
        results = []
        for image, faces in zip(images_rgb, faces_per_image, strict=True):
            predictions = [self.describe(face, *next(estimates)) for face in faces]
            results.append(ImagePrediction(image.shape[1], image.shape[0], predictions, timings))
        return results

    def describe(self, face: Face, age: AgeEstimate, gender: GenderEstimate) -> FacePrediction:
        x, y, w, h = face.detection.box
        return FacePrediction(
            box=Box(round(x), round(y), round(w), round(h)),
            landmarks={
                name: (float(px), float(py))
                for name, (px, py) in zip(LANDMARK_NAMES, face.detection.landmarks, strict=True)
            },
            detection_confidence=face.detection.confidence,
            pose=head_pose(face.detection.landmarks),
            quality=face_quality(face.crop, face.detection.box),
            age=age,
            gender=gender,
            model_version=self.model_version,
        )


def _gender(p_female: float) -> GenderEstimate:
    return GenderEstimate("female", p_female) if p_female >= 0.5 else GenderEstimate("male", 1.0 - p_female)
