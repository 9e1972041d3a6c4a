"""Labelled face datasets (UTKFace layout) and the on-disk cache of their aligned crops.

Detection is the slow step (~35 ms a chip on this CPU), so its results are cached once
per dataset and detector; aligned crops are cached per preprocessing version and size.
A second training run, or one at another image size, redoes no detection.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ml.alignment import align_face
from ml.images import UnreadableImageError, load_rgb
from ml.preprocessing import PREPROCESSING_VERSION

log = logging.getLogger(__name__)

DETECTOR_VERSION = "mtcnn-1.0.0-min20-conf0.9"
DETECTION_CHUNK = 1024  # images per saved chunk: an interrupted run resumes from the last one


@dataclass(frozen=True)
class LabelledImage:
    filename: str
    age: int
    gender: int | None  # 0 male, 1 female
    race: int | None
    split: str | None


@dataclass
class FaceDataset:
    """Aligned crops with their labels, row for row."""

    crops: np.ndarray  # N x size x size x 3 uint8
    ages: np.ndarray  # N int
    genders: np.ndarray  # N int, -1 where unknown
    detected: np.ndarray  # N bool: False where the fallback framing was used
    filenames: list[str]


def read_labels(path: Path, split: str | None = None) -> list[LabelledImage]:
    """Read a labels CSV with at least ``filename,age``; optional ``gender``, ``race``, ``split``."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"filename", "age"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        rows = [
            LabelledImage(
                filename=row["filename"],
                age=int(float(row["age"])),
                gender=_optional_int(row.get("gender")),
                race=_optional_int(row.get("race")),
                split=row.get("split") or None,
            )
            for row in reader
        ]
    if split is not None:
        rows = [row for row in rows if row.split == split]
    return rows


def _optional_int(value: str | None) -> int | None:
    return int(float(value)) if value not in (None, "") else None


def _dataset_key(images_dir: Path, rows: list[LabelledImage]) -> str:
    digest = hashlib.sha256(str(images_dir.resolve()).encode())
    for row in rows:
        digest.update(row.filename.encode())
    return digest.hexdigest()[:16]


def detect_all(detector, images_dir: Path, filenames: list[str], cache_dir: Path, batch_size: int = 32) -> dict:
    """Landmarks and confidence of the most confident face of each image, cached in chunks."""
    chunk_dir = cache_dir / DETECTOR_VERSION
    chunk_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, tuple[np.ndarray | None, float]] = {}
    chunks = [filenames[i : i + DETECTION_CHUNK] for i in range(0, len(filenames), DETECTION_CHUNK)]
    with tqdm(total=len(filenames), desc="detecting faces", unit="img") as progress:
        for index, chunk in enumerate(chunks):
            path = chunk_dir / f"chunk-{index:04d}-{hashlib.sha256(''.join(chunk).encode()).hexdigest()[:8]}.npz"
            if not path.exists():
                _detect_chunk(detector, images_dir, chunk, path, batch_size)
            saved = np.load(path)
            for name, landmarks, confidence in zip(chunk, saved["landmarks"], saved["confidence"], strict=True):
                results[name] = (None if confidence < 0 else landmarks, float(confidence))
            progress.update(len(chunk))
    return results


def _detect_chunk(detector, images_dir: Path, chunk: list[str], path: Path, batch_size: int) -> None:
    landmarks = np.zeros((len(chunk), 5, 2), dtype=np.float32)
    confidence = np.full(len(chunk), -1.0, dtype=np.float32)  # -1: no face (or unreadable)
    for start in range(0, len(chunk), batch_size):
        readable = {}
        for i in range(start, min(start + batch_size, len(chunk))):
            try:
                readable[i] = load_rgb(images_dir / chunk[i])
            except (UnreadableImageError, FileNotFoundError) as error:
                log.warning("skipping %s: %s", chunk[i], error)
        for i, faces in zip(readable, detector.detect_batch(list(readable.values())), strict=True):
            if faces:
                landmarks[i], confidence[i] = faces[0].landmarks, faces[0].confidence
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, landmarks=landmarks, confidence=confidence)
    tmp.rename(path)


def fallback_landmarks(detections: dict, shapes: dict[str, tuple[int, int]]) -> np.ndarray:
    """Median landmarks, relative to image size, of the images where a face was found.

    UTKFace chips are already aligned, so for the few where MTCNN finds nothing (very
    small children, heavy blur, profile) the typical chip's landmark positions frame the
    face the way detection would have.
    """
    relative = [
        landmarks / np.array(shapes[name][::-1], dtype=np.float64)
        for name, (landmarks, _) in detections.items()
        if landmarks is not None
    ]
    if not relative:
        raise ValueError("no face was detected in any image: cannot derive a fallback framing")
    return np.median(np.stack(relative), axis=0)


def load_face_dataset(
    images_dir: Path,
    rows: list[LabelledImage],
    size: int,
    cache_dir: Path,
    detector_factory,
) -> FaceDataset:
    """Aligned crops for ``rows``, from the cache when it has them."""
    key = _dataset_key(images_dir, rows)
    cache_dir = Path(cache_dir) / key
    crops_path = cache_dir / f"crops-{PREPROCESSING_VERSION}-{size}.npz"
    filenames = [row.filename for row in rows]
    if not crops_path.exists():
        detections = detect_all(detector_factory(), images_dir, filenames, cache_dir)
        _align_all(images_dir, rows, detections, size, crops_path)
    saved = np.load(crops_path)
    keep = saved["readable"]
    return FaceDataset(
        crops=saved["crops"][keep],
        ages=np.array([row.age for row in rows])[keep],
        genders=np.array([-1 if row.gender is None else row.gender for row in rows])[keep],
        detected=saved["detected"][keep],
        filenames=[name for name, ok in zip(filenames, keep, strict=True) if ok],
    )


def _align_all(images_dir: Path, rows, detections: dict, size: int, crops_path: Path) -> None:
    images = {}
    for row in tqdm(rows, desc="reading images", unit="img"):
        try:
            images[row.filename] = load_rgb(images_dir / row.filename)
        except (UnreadableImageError, FileNotFoundError):
            continue
    shapes = {name: image.shape[:2] for name, image in images.items()}
    fallback = fallback_landmarks({n: d for n, d in detections.items() if n in images}, shapes)
    crops = np.zeros((len(rows), size, size, 3), dtype=np.uint8)
    detected = np.zeros(len(rows), dtype=bool)
    readable = np.zeros(len(rows), dtype=bool)
    for i, row in enumerate(tqdm(rows, desc="aligning faces", unit="img")):
        image = images.get(row.filename)
        if image is None:
            continue
        landmarks, _ = detections.get(row.filename, (None, -1.0))
        detected[i] = landmarks is not None
        if landmarks is None:
            landmarks = fallback * np.array(image.shape[1::-1], dtype=np.float64)
        crops[i], readable[i] = align_face(image, landmarks, size), True
    log.info("aligned %d faces, %d with the fallback framing", readable.sum(), (readable & ~detected).sum())
    tmp = crops_path.with_suffix(".tmp.npz")
    np.savez(tmp, crops=crops, detected=detected, readable=readable)
    tmp.rename(crops_path)
