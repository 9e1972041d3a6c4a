"""Detection recall: the photos of each labelled set in which the serving detector finds no face.

A photo without a face is a user told "no face found", so this counts them per set and split,
per age band (the Korean family set's groups: UTKFace's exact ages fall into the same bands; a
set labelled with ranges is counted by its own ranges) and per gender, and lists the missed
files. Detection is the serving path itself: ``FacePipeline.find_faces`` (what the workers
call), with the bundled weights' settings. Since the detector retries a photo only when its
first pass finds nothing (``ml.detection``), one run gives both figures: ``before`` counts the
photos the first pass missed, ``after`` those still without a face after the retry, and
``recovered`` names the retry variant that found each face.

Run from the repository root (niced when the machine is shared)::

    nice -n 10 .venv/bin/python bench/detection_recall.py            # val and test of the three shared sets
    .venv/bin/python bench/detection_recall.py --set mine=DIR --split test --limit 50

``--set NAME=DIR`` reads ``DIR/labels.csv`` and ``DIR/images`` (repeatable; default the three
sets in ``../shared/data``). ``--limit N`` keeps N photos per set and split, spread over the
file (a smoke run). Writes ``recall.json``, ``recall.md`` and ``missed.csv`` to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from ml.dataset import LabelledImage, read_labels  # noqa: E402
from ml.images import UnreadableImageError, load_rgb  # noqa: E402

log = logging.getLogger("detection_recall")

DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_SETS = ("utkface", "korean_family_age", "scut_fbp5500")
DEFAULT_OUT = REPO / "bench" / "results" / "detection_recall"
SPLITS = ("val", "test")
# The Korean family set's age groups; exact ages (UTKFace) are counted in the same bands.
AGE_BANDS = ((0, 6), (7, 12), (13, 19), (20, 30), (31, 45), (46, 55), (56, 66), (67, 80), (81, 200))
GENDERS = {0: "male", 1: "female", None: "unknown"}


@dataclass(frozen=True)
class DataSet:
    name: str
    labels: Path
    images: Path


@dataclass(frozen=True)
class Outcome:
    """What the detector made of one photo."""

    row: LabelledImage
    readable: bool
    faces: int  # faces found (after the retry)
    retry: str | None  # the retry variant that found them, None if the first pass did (or nothing did)
    confidence: float | None  # the best face's

    @property
    def found(self) -> bool:
        return self.faces > 0

    @property
    def found_first_pass(self) -> bool:
        return self.found and self.retry is None


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        type=parse_set,
        metavar="NAME=DIR",
        help="a set: DIR/labels.csv and DIR/images (repeatable; default the three shared sets)",
    )
    parser.add_argument(
        "--split", dest="splits", action="append", choices=SPLITS, help="val and/or test (repeatable; default both)"
    )
    parser.add_argument("--limit", type=int, default=0, help="N photos per set and split, spread over it (smoke)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--weights", type=Path, help="weights folder (default: the bundled ml/weights)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    args.sets = args.sets or [parse_set(f"{name}={DEFAULT_DATA / name}") for name in DEFAULT_SETS]
    args.splits = list(dict.fromkeys(args.splits or SPLITS))
    return args


def parse_set(value: str) -> DataSet:
    name, sep, folder = value.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"expected NAME=DIR, got {value!r}")
    return DataSet(name, Path(folder) / "labels.csv", Path(folder) / "images")


def band_of(row: LabelledImage) -> str:
    """The age band of an exact age, or the range label itself (``"46-55"``)."""
    if row.age is None:
        return f"{row.age_min}-{row.age_max}"
    lo, hi = next((lo, hi) for lo, hi in AGE_BANDS if lo <= row.age <= hi)
    return f"{lo}+" if hi == 200 else f"{lo}-{hi}"


def spread(rows: list, limit: int) -> list:
    """``limit`` rows spread evenly over ``rows`` (all of them when limit is 0)."""
    if not limit or limit >= len(rows):
        return rows
    step = len(rows) / limit
    return [rows[int(i * step)] for i in range(limit)]


def detect(pipeline, rows: list[LabelledImage], images_dir: Path, batch_size: int) -> list[Outcome]:
    outcomes = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        images, readable = [], []
        for row in batch:
            try:
                images.append(load_rgb(images_dir / row.filename))
                readable.append(row)
            except (UnreadableImageError, FileNotFoundError) as error:
                log.warning("%s: %s", row.filename, error)
                outcomes.append(Outcome(row, False, 0, None, None))
        for row, faces in zip(readable, pipeline.find_faces(images), strict=True):
            best = max((face.detection for face in faces), key=lambda d: d.confidence, default=None)
            retry = getattr(best, "retry", None) if best is not None else None
            outcomes.append(Outcome(row, True, len(faces), retry, best.confidence if best else None))
        if (start // batch_size) % 20 == 0:
            log.info("  %d/%d photos", min(start + batch_size, len(rows)), len(rows))
    order = {row.filename: i for i, row in enumerate(rows)}
    return sorted(outcomes, key=lambda o: order[o.row.filename])


def summarize(outcomes: list[Outcome], seconds: float) -> dict:
    """Counts for one set and split: photos, misses before and after the retry, by band and gender."""
    readable = [o for o in outcomes if o.readable]

    def counts(group: list[Outcome]) -> dict:
        return {
            "photos": len(group),
            "misses_before": sum(not o.found_first_pass for o in group),
            "misses_after": sum(not o.found for o in group),
        }

    bands = sorted({band_of(o.row) for o in readable}, key=lambda b: int(b.split("-")[0].rstrip("+")))
    recovered: dict[str, int] = {}
    for o in readable:
        if o.found and o.retry is not None:
            recovered[o.retry] = recovered.get(o.retry, 0) + 1
    return {
        **counts(readable),
        "unreadable": len(outcomes) - len(readable),
        "by_band": {band: counts([o for o in readable if band_of(o.row) == band]) for band in bands},
        "by_gender": {
            GENDERS[g]: counts([o for o in readable if o.row.gender == g])
            for g in (0, 1, None)
            if any(o.row.gender == g for o in readable)
        },
        "recovered_by": dict(sorted(recovered.items())),
        "missed_before": [o.row.filename for o in readable if not o.found_first_pass],
        "missed_after": [o.row.filename for o in readable if not o.found],
        "seconds": round(seconds, 1),
        "ms_per_photo": round(1000 * seconds / max(1, len(outcomes)), 1),
    }


def markdown(report: dict) -> str:
    lines = [
        "# Detection recall",
        "",
        f"`{report['command']}` on {report['machine']}, {report['date']}. Detector: {report['detector']}.",
        "A miss is a photo in which `FacePipeline.find_faces` finds no face. *before*: the first pass",
        "(the detector as it was); *after*: with the retry that runs only on photos the first pass misses.",
        "",
        "| set | split | photos | misses before | misses after | ms/photo |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key, result in report["results"].items():
        name, split = key.rsplit("/", 1)
        lines.append(
            f"| {name} | {split} | {result['photos']} | {_rate(result['misses_before'], result['photos'])} "
            f"| {_rate(result['misses_after'], result['photos'])} | {result['ms_per_photo']} |"
        )
    for key, result in report["results"].items():
        lines += ["", f"## {key}", "", "| band / gender | photos | misses before | misses after |"]
        lines.append("| --- | --- | --- | --- |")
        for label, group in [*result["by_band"].items(), *result["by_gender"].items()]:
            lines.append(
                f"| {label} | {group['photos']} | {_rate(group['misses_before'], group['photos'])} "
                f"| {_rate(group['misses_after'], group['photos'])} |"
            )
        if result["recovered_by"]:
            lines += ["", "Recovered by: " + ", ".join(f"{k} {v}" for k, v in result["recovered_by"].items()) + "."]
        if result["missed_after"]:
            lines += ["", "Still missed: " + ", ".join(f"`{name}`" for name in result["missed_after"])]
    return "\n".join(lines) + "\n"


def _rate(misses: int, photos: int) -> str:
    return f"{misses} ({100 * misses / photos:.1f}%)" if photos else "0"


def write_outputs(out: Path, report: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "recall.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "recall.md").write_text(markdown(report))
    with open(out / "missed.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["set", "split", "filename", "missed_before", "missed_after"])
        for key, result in report["results"].items():
            name, split = key.rsplit("/", 1)
            after = set(result["missed_after"])
            for filename in result["missed_before"]:
                writer.writerow([name, split, filename, 1, int(filename in after)])
            for filename in result["missed_after"]:  # missed only after: cannot happen, but never hide one
                if filename not in result["missed_before"]:
                    writer.writerow([name, split, filename, 0, 1])


def main(argv=None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    from ml.inference import DEFAULT_WEIGHTS_DIR, FacePipeline

    pipeline = FacePipeline(args.weights or DEFAULT_WEIGHTS_DIR)
    detector = pipeline._load_detector()
    pipeline.find_faces([np.zeros((64, 64, 3), np.uint8)])  # warm-up: graphs traced once
    report = {
        "command": "bench/detection_recall.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "detector": getattr(detector, "describe", lambda: type(detector).__name__)(),
        "limit": args.limit,
        "load_before": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "results": {},
    }
    for data in args.sets:
        for split in args.splits:
            rows = spread(read_labels(data.labels, split), args.limit)
            log.info("%s/%s: %d photos", data.name, split, len(rows))
            started = time.perf_counter()
            outcomes = detect(pipeline, rows, data.images, args.batch_size)
            result = summarize(outcomes, time.perf_counter() - started)
            report["results"][f"{data.name}/{split}"] = result
            log.info(
                "%s/%s: misses before %d, after %d of %d",
                data.name,
                split,
                result["misses_before"],
                result["misses_after"],
                result["photos"],
            )
    report["load_after"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    write_outputs(args.out, report)
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
