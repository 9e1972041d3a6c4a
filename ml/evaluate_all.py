"""The model on every data set's test split, in one table.

    python -m ml.evaluate_all                      # the three shared sets, split test
    python -m ml.evaluate_all --weights var/runs/mix-r1/export --out var/eval/mix-r1

For each set (default: ``../shared/data/{utkface,korean_family_age,scut_fbp5500}``) the full
serving pipeline runs as in :mod:`ml.evaluate`, whose report goes to ``OUT/<set>-<split>/``;
then ``OUT/summary.md`` and ``OUT/summary.json`` hold one row per set, with the model version.
A model is only as good as its worst set, so the table has no average.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from ml.dataset import read_labels
from ml.evaluate import compute_metrics, run_pipeline, write_outputs

log = logging.getLogger("ml.evaluate_all")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SETS = ("utkface", "korean_family_age", "scut_fbp5500")
DEFAULT_DATA = REPO.parent / "shared" / "data"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ml.evaluate_all", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, action="append", help="a set's folder (labels.csv, images/); repeatable")
    parser.add_argument("--split", default="test")
    parser.add_argument("--weights", type=Path, help="weights folder (default: the bundled ml/weights)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "evaluation")
    parser.add_argument("--limit", type=int, default=0, help="only N rows per set, spread over the split (smoke runs)")
    parser.add_argument("--batch-size", type=int, default=32)
    return parser.parse_args(argv)


def spread(rows: list, limit: int) -> list:
    """``limit`` rows taken evenly over ``rows`` (label files are sorted, so the first N would not do)."""
    if not limit or limit >= len(rows):
        return list(rows)
    return [rows[int(i * len(rows) / limit)] for i in range(limit)]


def summary_row(name: str, metrics: dict) -> dict:
    by_gender = metrics.get("by_gender", {})
    return {
        "set": name,
        "images": metrics["n"],
        "detection_misses": metrics["detection_misses"],
        "age_mae": metrics["age_mae"],
        "mae_0_12": metrics["mae_by_band"]["0-12"],
        "age_in_range": metrics["age_in_range"],
        "age_range_distance": metrics["age_range_distance"],
        "age_bound_inside": metrics["age_bound_inside"],
        "gender_accuracy": metrics["gender_accuracy"],
        "gender_accuracy_male": by_gender.get("male", {}).get("gender_accuracy"),
        "gender_accuracy_female": by_gender.get("female", {}).get("gender_accuracy"),
        "interval_coverage": metrics["interval_coverage"],
        "interval_mean_width": metrics["interval_mean_width"],
    }


COLUMNS = (
    ("set", "set", None),
    ("images", "images", None),
    ("detection_misses", "no face found", None),
    ("age_mae", "age MAE", "years"),
    ("mae_0_12", "MAE 0-12", "years"),
    ("age_in_range", "inside age group", "%"),
    ("age_range_distance", "distance to group", "years"),
    ("age_bound_inside", "inside stated bound", "%"),
    ("gender_accuracy", "gender", "%"),
    ("gender_accuracy_male", "gender (men)", "%"),
    ("gender_accuracy_female", "gender (women)", "%"),
    ("interval_coverage", "80% interval coverage", "%"),
    ("interval_mean_width", "interval width", "years"),
)


def markdown_table(rows: list[dict]) -> str:
    def cell(value, unit):
        if value is None:
            return "-"
        if unit == "%":
            return f"{value:.1%}"
        return f"{value:.2f}" if unit else str(value)

    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(row[key], unit) for key, _, unit in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from ml.inference import DEFAULT_WEIGHTS_DIR, FacePipeline

    folders = args.data or [DEFAULT_DATA / name for name in DEFAULT_SETS]
    pipeline = FacePipeline(args.weights or DEFAULT_WEIGHTS_DIR, batch_size=args.batch_size)
    pipeline.raw_outputs(np.zeros((1, pipeline.crop_size, pipeline.crop_size, 3), np.uint8))  # load before timing
    pipeline.find_faces([np.zeros((64, 64, 3), np.uint8)])
    rows_out = []
    for folder in folders:
        rows = spread(read_labels(folder / "labels.csv", split=args.split), args.limit)
        if not rows:
            raise SystemExit(f"{folder}: no rows in split {args.split!r}")
        started = time.perf_counter()
        outputs = run_pipeline(pipeline, rows, folder / "images", args.batch_size)
        metrics, records = compute_metrics(
            rows, outputs, pipeline.info.age_temperature, pipeline.info.interval_level, time.perf_counter() - started
        )
        metrics["model_version"] = pipeline.model_version
        write_outputs(args.out / f"{folder.name}-{args.split}", metrics, records, pipeline.model_version)
        rows_out.append(summary_row(folder.name, metrics))
        log.info("%s: %s", folder.name, json.dumps(rows_out[-1]))
    summary = {"model_version": pipeline.model_version, "split": args.split, "limit": args.limit, "sets": rows_out}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    title = f"# {pipeline.model_version} on the {args.split} splits"
    title += f" ({args.limit} rows each)" if args.limit else ""
    note = (
        "Full serving pipeline (decode, MTCNN, alignment, model with flip averaging), largest face per photo. "
        "Age MAE for exact ages; inside / distance for age groups; the stated bound is a weak range "
        "(SCUT's 15-60). Per-set reports: `<set>-<split>/report.md`. Made by `python -m ml.evaluate_all`."
    )
    (args.out / "summary.md").write_text(f"{title}\n\n{markdown_table(rows_out)}\n\n{note}\n")
    print(markdown_table(rows_out))
    return summary


if __name__ == "__main__":
    main()
