"""Measure the serving pipeline on any labelled photo set.

    python -m ml.evaluate --labels ../shared/data/utkface/labels.csv \\
        --images ../shared/data/utkface/images --split test --out var/eval/test

Each image goes through exactly what production runs: decoding (EXIF applied), MTCNN,
alignment, the model with flip averaging. The largest face is scored (a labelled photo is of
one person; others in the frame are smaller); images where no face is found count as
``detection_misses`` (per age band or group) and are left out of the errors. Labels are exact
ages (MAE) or age groups (share of predictions inside the group, distance to it), see
:mod:`ml.metrics`.
Writes ``metrics.json``, ``predictions.csv``, ``report.md`` and PNG plots to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ml.dataset import LabelledImage, read_labels
from ml.images import UnreadableImageError, load_rgb
from ml.metrics import distance_to_range, interval_coverage, is_weak_range, signed_offset

log = logging.getLogger("ml.evaluate")

AGE_BANDS = (("0-12", 0, 12), ("13-19", 13, 19), ("20-39", 20, 39), ("40-59", 40, 59), ("60+", 60, 200))
GENDERS = {0: "male", 1: "female"}
CALIBRATION_LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ml.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=Path, required=True, help="CSV: filename, age or age_min,age_max, ...")
    parser.add_argument("--images", type=Path, required=True, help="folder the filenames are relative to")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--split", help="keep only rows of this split (needs a split column)")
    parser.add_argument("--weights", type=Path, help="weights folder (default: the bundled ml/weights)")
    parser.add_argument("--limit", type=int, default=0, help="evaluate only the first N rows")
    parser.add_argument("--batch-size", type=int, default=32)
    return parser.parse_args(argv)


def run_pipeline(pipeline, rows: list[LabelledImage], images_dir: Path, batch_size: int):
    """Per row: (age logits, P(female), detection confidence) of the best face, or None."""
    return run_pipelines([pipeline], rows, images_dir, batch_size)[0]


def run_pipelines(pipelines: list, rows: list[LabelledImage], images_dir: Path, batch_size: int) -> list[list]:
    """``run_pipeline`` of several models on the very same faces, one list per pipeline: detection runs once
    (the first pipeline's), and each model gets the face aligned at its own crop size."""
    from ml.alignment import align_face

    outputs: list[list[tuple | None]] = [[] for _ in pipelines]
    for start in tqdm(range(0, len(rows), batch_size), desc="evaluating", unit="batch"):
        batch = rows[start : start + batch_size]
        images, readable = [], []
        for row in batch:
            try:
                images.append(load_rgb(images_dir / row.filename))
                readable.append(True)
            except (UnreadableImageError, FileNotFoundError) as error:
                log.warning("%s: %s", row.filename, error)
                readable.append(False)
        detected = iter(zip(images, pipelines[0].find_faces(images), strict=True))
        best = []  # per row: (its photo, [its largest face]), or (None, []) for an unreadable file
        for ok in readable:
            image, faces = next(detected) if ok else (None, [])
            best.append((image, largest_face(faces)))
        found = [(image, faces[0]) for image, faces in best if faces]
        for pipeline, out in zip(pipelines, outputs, strict=True):
            crops = [
                face.crop if face.crop.shape[0] == pipeline.crop_size
                else align_face(image, face.detection.landmarks, pipeline.crop_size)
                for image, face in found
            ]  # fmt: skip
            logits, female = pipeline.raw_outputs(np.array(crops))
            scored = iter(range(len(crops)))
            for _, face in best:
                if face:
                    i = next(scored)
                    out.append((logits[i], float(female[i]), face[0].detection.confidence))
                else:
                    out.append(None)
    return outputs


def largest_face(faces: list) -> list:
    """The face with the largest box, as a list of zero or one."""
    return [max(faces, key=lambda face: face.detection.box[2] * face.detection.box[3])] if faces else []


def compute_metrics(rows, outputs, temperature: float, level: float, seconds: float) -> tuple[dict, list[dict]]:
    """Figures for exact ages (MAE), for age groups (share inside, distance) and for gender, per group too."""
    from ml.model import summarize_ages

    found = [(row, out) for row, out in zip(rows, outputs, strict=True) if out is not None]
    records, calibration = [], {}
    if found:
        logits = np.stack([out[0] for _, out in found])
        low_ages = np.array([r.age_min for r, _ in found])
        high_ages = np.array([r.age_max for r, _ in found])
        informative = ~is_weak_range(low_ages, high_ages)
        mean, low, high = summarize_ages(logits, temperature, level)
        for lvl in CALIBRATION_LEVELS:
            _, lo, hi = summarize_ages(logits, temperature, lvl)
            covered = interval_coverage(lo, hi, low_ages, high_ages)[informative]
            calibration[str(lvl)] = float(covered.mean()) if covered.size else None
        for (row, out), value, lo, hi in zip(found, mean, low, high, strict=True):
            records.append(
                {
                    "filename": row.filename,
                    "age": row.age,
                    "age_min": row.age_min,
                    "age_max": row.age_max,
                    "gender": row.gender,
                    "race": row.race,
                    "age_pred": float(value),
                    "age_low": float(lo),
                    "age_high": float(hi),
                    "p_female": out[1],
                    "detection_confidence": out[2],
                }
            )
    exact = [r for r in records if r["age"] is not None]
    ranged = [r for r in records if r["age"] is None and not is_weak_range(r["age_min"], r["age_max"])]
    weak = [r for r in records if is_weak_range(r["age_min"], r["age_max"])]
    scored = exact + ranged
    missed = [row for row, out in zip(rows, outputs, strict=True) if out is None]
    metrics = {
        "n": len(rows),
        "evaluated": len(records),
        "detection_misses": len(missed),
        "detection_misses_by_group": {
            group: {"n": total, "missed": sum(_group_of(row) == group for row in missed)}
            for group, total in Counter(_group_of(row) for row in rows).items()
        },
        "age_mae": _mean([abs(r["age_pred"] - r["age"]) for r in exact]),
        "mae_by_band": {
            name: _mean([abs(r["age_pred"] - r["age"]) for r in exact if lo <= r["age"] <= hi])
            for name, lo, hi in AGE_BANDS
        },
        "age_in_range": _mean([_in_range(r) for r in ranged]),
        "age_range_distance": _mean([_distance(r) for r in ranged]),
        "by_age_group": _by_age_group(ranged),
        "age_bound_inside": _mean([_in_range(r) for r in weak]),
        "gender_accuracy": _gender_accuracy(records),
        "interval_level": level,
        "interval_coverage": _mean(_coverage(scored)),
        "interval_mean_width": _mean([r["age_high"] - r["age_low"] for r in scored]),
        "interval_calibration": calibration,
        "images_per_second": len(rows) / seconds if seconds > 0 else None,
    }
    if any(r["race"] is not None for r in records):
        metrics["by_race"] = _grouped(records, "race", {})
    if any(r["gender"] is not None for r in records):
        metrics["by_gender"] = _grouped(records, "gender", GENDERS)
    return metrics, records


def _group_of(row: LabelledImage) -> str:
    """The age band of an exact age, or the range itself (``"46-55"``) for a range label."""
    if row.age is not None:
        return next(name for name, lo, hi in AGE_BANDS if lo <= row.age <= hi)
    return f"{row.age_min}-{row.age_max}"


def _in_range(record) -> bool:
    return record["age_min"] <= record["age_pred"] <= record["age_max"]


def _distance(record) -> float:
    return float(distance_to_range(record["age_pred"], record["age_min"], record["age_max"]))


def _coverage(records) -> list[float]:
    if not records:
        return []
    columns = [np.array([r[key] for r in records]) for key in ("age_low", "age_high", "age_min", "age_max")]
    return list(interval_coverage(*columns))


def _by_age_group(records) -> dict:
    groups = {}
    for lo, hi in sorted({(r["age_min"], r["age_max"]) for r in records}):
        members = [r for r in records if (r["age_min"], r["age_max"]) == (lo, hi)]
        groups[f"{lo}-{hi}"] = {
            "n": len(members),
            "in_range": _mean([_in_range(r) for r in members]),
            "distance": _mean([_distance(r) for r in members]),
            "offset": _mean([float(signed_offset(r["age_pred"], lo, hi)) for r in members]),
            "mean_prediction": _mean([r["age_pred"] for r in members]),
            "interval_coverage": _mean(_coverage(members)),
            "gender_accuracy": _gender_accuracy(members),
        }
    return groups


def _mean(values) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()) if values.size else None


def _gender_accuracy(records) -> float | None:
    known = [r for r in records if r["gender"] is not None]
    return _mean([(r["p_female"] >= 0.5) == (r["gender"] == 1) for r in known])


def _grouped(records, key: str, names: dict) -> dict:
    """Per value of ``key``: count, age error (MAE, or distance to the range) and gender accuracy."""
    groups = {}
    for value in sorted({r[key] for r in records if r[key] is not None}):
        members = [r for r in records if r[key] == value]
        informative = [r for r in members if not is_weak_range(r["age_min"], r["age_max"])]
        groups[names.get(value, str(value))] = {
            "n": len(members),
            "age_error": _mean([_distance(r) for r in informative]),
            "gender_accuracy": _gender_accuracy(members),
        }
    return groups


def write_outputs(out: Path, metrics: dict, records: list[dict], model_version: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if records:
        with open(out / "predictions.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
    from ml.report import write_report

    write_report(out, metrics, records, model_version)


def main(argv=None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from ml.inference import DEFAULT_WEIGHTS_DIR, FacePipeline

    rows = read_labels(args.labels, split=args.split)
    if args.limit:
        rows = rows[: args.limit]
    if not rows:
        raise SystemExit(f"no rows to evaluate in {args.labels}" + (f" for split {args.split!r}" if args.split else ""))
    pipeline = FacePipeline(args.weights or DEFAULT_WEIGHTS_DIR, batch_size=args.batch_size)
    pipeline.raw_outputs(np.zeros((1, pipeline.crop_size, pipeline.crop_size, 3), np.uint8))  # load before timing
    pipeline.find_faces([np.zeros((64, 64, 3), np.uint8)])
    started = time.perf_counter()
    outputs = run_pipeline(pipeline, rows, args.images, args.batch_size)
    seconds = time.perf_counter() - started
    metrics, records = compute_metrics(
        rows, outputs, pipeline.info.age_temperature, pipeline.info.interval_level, seconds
    )
    metrics["model_version"] = pipeline.model_version
    write_outputs(args.out, metrics, records, pipeline.model_version)
    log.info("%s", json.dumps({k: metrics[k] for k in ("n", "detection_misses", "age_mae", "gender_accuracy")}))
    return metrics


if __name__ == "__main__":
    main()
