"""Derive the constants of :mod:`ml.face_quality` from a labelled set's faces (UTKFace train by default).

    python -m ml.calibrate_quality                     # writes docs/evaluation/face_quality_calibration.json
    python -m ml.calibrate_quality --limit 500 --out /tmp/calibration.json

Each chip's largest face is found as serving finds it (``FacePipeline.find_faces``). The frontal pose
is the median face's: FRONTAL_NOSE_HEIGHT and FRONTAL_EYE_MOUTH are medians (the frontal eye distance
over eye-to-mouth distance from the faces whose nose sits on the midline). NOSE_DEPTH is fitted to the
faces' foreshortening: a head turned by yaw shows its eyes ``cos(yaw)`` as far apart, and moves its nose
``NOSE_DEPTH * tan(yaw)`` eye distances off the midline, so the eye distance over the eye-to-mouth
distance is ``frontal / sqrt(1 + (offset / NOSE_DEPTH)**2)``; the depth with the least absolute error
over every face wins. SHARPNESS_HALF is the median variance of the Laplacian, so 50 is the median face;
what a 1 and a 2 px Gaussian blur of the same faces score is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import cv2
import numpy as np

from ml.dataset import read_labels
from ml.evaluate import largest_face
from ml.evaluate_all import spread
from ml.face_quality import face_region_grey, laplacian_variance, pose_cues
from ml.images import UnreadableImageError, load_rgb

log = logging.getLogger("ml.calibrate_quality")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "utkface"
CENTERED = 0.05  # |offset| below this: the nose on the midline, a face turned less than ~6 degrees
DEPTHS = np.arange(0.20, 1.00, 0.005)


def calibrate(landmarks: np.ndarray, crops: np.ndarray) -> dict:
    """The constants and the figures behind them, from N x 5 x 2 landmarks and their N aligned crops."""
    _, offset, height, foreshortening = pose_cues(landmarks)
    frontal = float(np.median(foreshortening[np.abs(offset) < CENTERED]))
    errors = [np.abs(foreshortening - frontal / np.sqrt(1 + (offset / depth) ** 2)).sum() for depth in DEPTHS]
    greys = [face_region_grey(crop) for crop in crops]
    variances = np.array([laplacian_variance(grey) for grey in greys])
    half = float(np.median(variances))

    def sharpness(sigma: float) -> float:
        blurred = np.median([laplacian_variance(cv2.GaussianBlur(grey, (0, 0), sigma)) for grey in greys])
        return round(100 * blurred / (blurred + half), 1)

    return {
        "faces": len(landmarks),
        "NOSE_DEPTH": round(float(DEPTHS[int(np.argmin(errors))]), 3),
        "FRONTAL_NOSE_HEIGHT": round(float(np.median(height)), 3),
        "FRONTAL_EYE_MOUTH": round(1 / frontal, 3),
        "SHARPNESS_HALF": round(half, 1),
        "nose_height_quartiles": np.percentile(height, [25, 75]).round(3).tolist(),
        "offset_median": round(float(np.median(offset)), 4),
        "sharpness_percentiles_5_95": [
            round(100 * v / (v + half), 1) for v in np.percentile(variances, [5, 95]).tolist()
        ],
        "sharpness_blurred_1px": sharpness(1.0),
        "sharpness_blurred_2px": sharpness(2.0),
    }


def detect(data: Path, split: str, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks and aligned crops of the largest face of each photo of the split."""
    from ml.inference import FacePipeline

    pipeline = FacePipeline()
    rows = spread(read_labels(data / "labels.csv", split), limit)
    landmarks, crops = [], []
    for start in range(0, len(rows), 32):
        images = []
        for row in rows[start : start + 32]:
            try:
                images.append(load_rgb(data / "images" / row.filename))
            except (UnreadableImageError, FileNotFoundError) as error:
                log.warning("%s: %s", row.filename, error)
        for faces in pipeline.find_faces(images):
            for face in largest_face(faces):
                landmarks.append(face.detection.landmarks)
                crops.append(face.crop)
    return np.array(landmarks), np.array(crops)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ml.calibrate_quality", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a set's folder (labels.csv, images/)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--limit", type=int, default=0, help="only N photos, spread over the split")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "evaluation" / "face_quality_calibration.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = {"data": args.data.name, "split": args.split, **calibrate(*detect(args.data, args.split, args.limit))}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
