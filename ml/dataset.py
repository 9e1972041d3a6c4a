"""Labelled face datasets (UTKFace layout) and the on-disk cache of their aligned crops.

A label is an exact age (``age``) or an age range (``age_min``/``age_max``, inclusive years,
e.g. the Korean family set's groups); an exact age is the range ``[age, age]``.

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


# UTKFace's race codes; other sets name the group in the column itself ("korean").
UTKFACE_RACES = {"0": "White", "1": "Black", "2": "Asian", "3": "Indian", "4": "Others"}


@dataclass(frozen=True)
class LabelledImage:
    filename: str
    age_min: int
    age_max: int
    gender: int | None  # 0 male, 1 female
    race: str | None
    split: str | None

    @property
    def age(self) -> int | None:
        """The exact age, or None for a range label."""
        return self.age_min if self.age_min == self.age_max else None


@dataclass
class FaceDataset:
    """Aligned crops with their labels, row for row."""

    crops: np.ndarray  # N x size x size x 3 uint8
    age_min: np.ndarray  # N int, inclusive
    age_max: np.ndarray  # N int, inclusive (== age_min for an exact age)
    genders: np.ndarray  # N int, -1 where unknown
    races: np.ndarray  # N str, "" where unknown
    splits: np.ndarray  # N str
    detected: np.ndarray  # N bool: False where the fallback framing was used
    filenames: list[str]
    sources: np.ndarray  # N str: the data set each face comes from

    @staticmethod
    def concatenate(parts: list[FaceDataset]) -> FaceDataset:
        """Several data sets as one, row order kept (``sources`` tells them apart)."""
        return FaceDataset(
            crops=np.concatenate([p.crops for p in parts]),
            age_min=np.concatenate([p.age_min for p in parts]),
            age_max=np.concatenate([p.age_max for p in parts]),
            genders=np.concatenate([p.genders for p in parts]),
            races=np.concatenate([p.races for p in parts]),
            splits=np.concatenate([p.splits for p in parts]),
            detected=np.concatenate([p.detected for p in parts]),
            filenames=[name for p in parts for name in p.filenames],
            sources=np.concatenate([p.sources for p in parts]),
        )


def read_labels(path: Path, split: str | None = None) -> list[LabelledImage]:
    """Read a labels CSV: ``filename`` and ``age`` or ``age_min,age_max``; optional ``gender``, ``race``, ``split``.

    A row may carry both kinds (an empty ``age`` falls back to the range).
    """
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or [])
        if "filename" not in columns or not ({"age"} <= columns or {"age_min", "age_max"} <= columns):
            raise ValueError(f"{path}: needs the columns filename and age, or filename, age_min and age_max")
        rows = [_labelled_image(path, number, row) for number, row in enumerate(reader, start=2)]
    if split is not None:
        rows = [row for row in rows if row.split == split]
    return rows


def _labelled_image(path: Path, line: int, row: dict) -> LabelledImage:
    age = _optional_int(row.get("age"))
    if age is not None:
        age_min = age_max = age
    else:
        age_min, age_max = _optional_int(row.get("age_min")), _optional_int(row.get("age_max"))
    if age_min is None or age_max is None or not 0 <= age_min <= age_max:
        raise ValueError(f"{path}, line {line}: no valid age or age_min..age_max for {row['filename']}")
    race = (row.get("race") or "").strip() or None
    return LabelledImage(
        filename=row["filename"],
        age_min=age_min,
        age_max=age_max,
        gender=_optional_int(row.get("gender")),
        race=UTKFACE_RACES.get(race, race) if race is not None else None,
        split=row.get("split") or None,
    )


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
    source: str = "",
) -> FaceDataset:
    """Aligned crops for ``rows`` (named ``source``), from the cache when it has them."""
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
        age_min=np.array([row.age_min for row in rows], dtype=np.int64)[keep],
        age_max=np.array([row.age_max for row in rows], dtype=np.int64)[keep],
        genders=np.array([-1 if row.gender is None else row.gender for row in rows], dtype=np.int64)[keep],
        races=np.array([row.race or "" for row in rows], dtype=str)[keep],
        splits=np.array([row.split or "" for row in rows], dtype=str)[keep],
        detected=saved["detected"][keep],
        filenames=[name for name, ok in zip(filenames, keep, strict=True) if ok],
        sources=np.full(int(keep.sum()), source, dtype=object).astype(str),
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
