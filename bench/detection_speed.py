"""Face detection + alignment speed, and the recall that speed must not cost.

Times ``ml.preprocessing.detect_and_extract(detector, [photo], size)`` (detection and
alignment, as serving runs them) on a 640 x 640 photo (skimage's astronaut), a 640 x 427
and a 1280 x 720 group photo made from UTKFace chips, and a 200 x 200 chip alone and in
a batch of 32. Then checks recall: the share of 500 UTKFace chips with a face, the
astronaut's single face, and the faces found in the group photo.

Detectors: ``new`` is ``FaceDetector()`` as serving runs it (TFLite with XNNPACK on a CPU),
``keras`` the same pipeline on TensorFlow's graphs (``runtime="keras"``); the faces of the
two are compared box by box (they must agree within a pixel). With ``--baseline`` the same
runs also use plain ``mtcnn.MTCNN`` (the detector before the speed-up) and the landmarks of
new and baseline are compared.

Run from the repository root, niced when the machine is shared::

    nice -n 5 .venv/bin/python bench/detection_speed.py --baseline

Writes detection_speed.json and .md into ``--out`` (bench/results). ``--smoke``: one repeat on 8
chips, for CI (it proves the script still runs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ml.alignment import LANDMARK_NAMES  # noqa: E402
from ml.detection import MAX_SHORT_SIDE, Detection, FaceDetector  # noqa: E402
from ml.inference import DEFAULT_WEIGHTS_DIR, ModelInfo  # noqa: E402
from ml.preprocessing import detect_and_extract  # noqa: E402

UTKFACE = Path(os.environ.get("MAIRROR_UTKFACE", REPO.parent / "shared" / "data" / "utkface")) / "images"
RESULTS = REPO / "bench" / "results"
CROP_SIZE = ModelInfo.load(DEFAULT_WEIGHTS_DIR).image_size  # the shipped model's crop, as serving makes it
# The astronaut's face in skimage's 512 x 512 original, scaled to the 640 x 640 photo.
ASTRONAUT_BOX = tuple(v * 640 / 512 for v in (182, 64, 83, 107))


class BaselineDetector:
    """The detector before the speed-up: plain mtcnn 1.0.0, one pass per image size."""

    def __init__(self, min_confidence: float = 0.9):
        from mtcnn import MTCNN

        self._mtcnn = MTCNN(device="CPU:0")
        self.min_confidence = min_confidence

    def detect(self, image_rgb):
        return self.detect_batch([image_rgb])[0]

    def detect_batch(self, images_rgb):
        by_shape: dict[tuple, list[int]] = {}
        for index, image in enumerate(images_rgb):
            by_shape.setdefault(image.shape, []).append(index)
        results = [[] for _ in images_rgb]
        for indices in by_shape.values():
            batch = [images_rgb[i] for i in indices]
            raw = self._mtcnn.detect_faces(batch, min_face_size=20)
            if len(batch) > 1 and not any(raw):  # mtcnn fails whole batches; retry one by one
                raw = [self._mtcnn.detect_faces([image], min_face_size=20)[0] for image in batch]
            for i, faces in zip(indices, raw, strict=True):
                results[i] = sorted(
                    (
                        Detection(
                            box=tuple(float(v) for v in face["box"]),
                            confidence=float(face["confidence"]),
                            landmarks=np.array([face["keypoints"][n] for n in LANDMARK_NAMES], dtype=np.float64),
                        )
                        for face in faces
                        if face["confidence"] >= self.min_confidence
                    ),
                    key=lambda d: d.confidence,
                    reverse=True,
                )
        return results


def load() -> str:
    """The 1, 5 and 15 minute load averages: timings on a shared machine mean little without them."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def chip_files(count: int) -> list[Path]:
    """Every 40th UTKFace chip by name: spread over ages, genders and ethnicities."""
    return sorted(UTKFACE.iterdir())[::40][:count]


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def astronaut() -> np.ndarray:
    from skimage import data

    return cv2.resize(data.astronaut(), (640, 640), interpolation=cv2.INTER_AREA)


def group_photo(faces: int = 12, seed: int = 0) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """UTKFace chips of 80-120 px pasted in a 4 x 3 grid on a grey 1280 x 720 canvas.

    Returns the photo and each chip's (x, y, size).
    """
    rng = np.random.default_rng(seed)
    canvas = np.full((720, 1280, 3), 128, dtype=np.uint8)
    placed = []
    for k, path in enumerate(sorted(UTKFACE.iterdir())[7::1500][:faces]):
        size = int(rng.integers(80, 121))
        x = (k % 4) * 320 + int(rng.integers(0, 320 - size))
        y = (k // 4) * 240 + int(rng.integers(0, 240 - size))
        canvas[y : y + size, x : x + size] = cv2.resize(read_rgb(path), (size, size), interpolation=cv2.INTER_AREA)
        placed.append((x, y, size))
    return canvas, placed


def time_interleaved(calls: dict[str, callable], repeats: int, warmup: int = 2) -> dict[str, dict]:
    """Median and p95 wall and CPU ms of each call, the calls taking turns so they share the load."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            started_wall, started_cpu = time.perf_counter(), time.process_time()
            call()
            wall[name].append((time.perf_counter() - started_wall) * 1000)
            cpu[name].append((time.process_time() - started_cpu) * 1000)
    return {
        name: {
            "median_ms": round(statistics.median(wall[name]), 1),
            "p95_ms": round(float(np.percentile(wall[name], 95)), 1),
            "cpu_median_ms": round(statistics.median(cpu[name]), 1),
        }
        for name in calls
    }


def speed(detectors: dict, repeats: int, photos: dict[str, np.ndarray], chips: list[np.ndarray]) -> dict:
    """detect_and_extract timings per detector and case; a batch of 32 chips is reported per chip."""
    cases = {name: [photo] for name, photo in photos.items()} | {"chips_200_batch32_per_chip": chips[:32]}
    results: dict[str, dict] = {name: {} for name in detectors}
    for case, images in cases.items():
        per_image = len(images)
        calls = {name: partial(detect_and_extract, detector, images, CROP_SIZE) for name, detector in detectors.items()}
        timed = time_interleaved(calls, repeats if per_image == 1 else max(3, repeats // 3))
        for name, numbers in timed.items():
            results[name][case] = {key: round(value / per_image, 1) for key, value in numbers.items()}
        print(f"  {case}: {timed}", flush=True)
    return results


def detect_all(detector, images: list[np.ndarray], batch_size: int = 32) -> list[list[Detection]]:
    found = []
    for start in range(0, len(images), batch_size):
        found += detector.detect_batch(images[start : start + batch_size])
    return found


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


def group_recall(detections: list[Detection], placed) -> dict:
    """Chips with a detection centred on them, and detections on no chip."""
    centres = [(d.box[0] + d.box[2] / 2, d.box[1] + d.box[3] / 2) for d in detections]
    hit = [any(x <= cx < x + s and y <= cy < y + s for cx, cy in centres) for x, y, s in placed]
    stray = sum(not any(x <= cx < x + s and y <= cy < y + s for x, y, s in placed) for cx, cy in centres)
    return {"faces": len(placed), "found": int(sum(hit)), "detections": len(detections), "off_face": int(stray)}


def recall(detector, chip_images: list[np.ndarray], photos: dict[str, np.ndarray], placed) -> tuple[dict, dict]:
    on_chips = detect_all(detector, chip_images)
    on_astronaut = detector.detect(photos["photo_640x640"])
    on_group = detector.detect(photos["photo_1280x720"])
    summary = {
        "chips": len(chip_images),
        "chips_with_face": int(sum(bool(faces) for faces in on_chips)),
        "chip_detection_rate": round(sum(bool(faces) for faces in on_chips) / len(chip_images), 4),
        "astronaut_faces": len(on_astronaut),
        "astronaut_box": [round(v, 1) for v in on_astronaut[0].box] if on_astronaut else None,
        "astronaut_iou_with_expected": round(iou(on_astronaut[0].box, ASTRONAUT_BOX), 3) if on_astronaut else 0.0,
        "group_1280x720": group_recall(on_group, placed),
    }
    raw = {"chips": on_chips, "astronaut": on_astronaut, "group": on_group}
    return summary, raw


def landmark_agreement(new: list[list[Detection]], old: list[list[Detection]]) -> dict:
    """Mean pixel distance between the top faces' landmarks, where both found a face."""
    distances = [
        float(np.linalg.norm(a[0].landmarks - b[0].landmarks, axis=1).mean())
        for a, b in zip(new, old, strict=True)
        if a and b
    ]
    if not distances:
        return {"compared": 0}
    return {
        "compared": len(distances),
        "mean_px": round(float(np.mean(distances)), 2),
        "p95_px": round(float(np.percentile(distances, 95)), 2),
        "max_px": round(float(np.max(distances)), 2),
        "found_by_new_only": sum(bool(a) and not b for a, b in zip(new, old, strict=True)),
        "found_by_old_only": sum(bool(b) and not a for a, b in zip(new, old, strict=True)),
    }


def agreement(new: list[list[Detection]], old: list[list[Detection]]) -> dict:
    """Whether two detectors found the same faces: images whose face counts differ, and the largest
    difference in px of any box side or landmark coordinate (faces paired in confidence order)."""
    pairs = [(a, b) for faces_a, faces_b in zip(new, old, strict=True) for a, b in zip(faces_a, faces_b, strict=False)]
    return {
        "images": len(new),
        "faces": sum(len(faces) for faces in new),
        "images_with_other_counts": sum(len(a) != len(b) for a, b in zip(new, old, strict=True)),
        "max_box_px": max((float(np.abs(np.subtract(a.box, b.box)).max()) for a, b in pairs), default=0.0),
        "max_landmark_px": max((float(np.abs(a.landmarks - b.landmarks).max()) for a, b in pairs), default=0.0),
    }


def markdown(report: dict) -> str:
    detectors = [name for name in ("new", "keras", "baseline") if name in report["speed"]]
    lines = [
        "# Face detection + alignment speed",
        "",
        f"`{report['command']}` on {report['machine']}; load before: `{report['load_before']}`, "
        f"after: `{report['load_after']}`. Times are `detect_and_extract(detector, [photo], {CROP_SIZE})` "
        f"in ms over {report['repeats']} runs, the detectors taking turns (batch: per chip). CPU is the "
        "process time (all threads): on a shared machine it shows the work done where wall time shows the wait. "
        f"The new detector shrinks photos to a {report['new_detector_max_short_side']} px short side and runs "
        f"the networks on {report['new_detector_runtime']}; keras is the same detector on TensorFlow's graphs.",
        "",
        "| case | " + " | ".join(f"{d} median | {d} p95 | {d} CPU" for d in detectors) + " |",
        "|---|" + "---|---|---|" * len(detectors),
    ]
    for case in report["speed"]["new"]:
        cells = [" | ".join(str(value) for value in report["speed"][d][case].values()) for d in detectors]
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    lines += ["", "## Recall", "", "| check | " + " | ".join(detectors) + " |", "|---|" + "---|" * len(detectors)]
    rows = [
        (
            "UTKFace chips with a face",
            lambda r: f"{r['chips_with_face']}/{r['chips']} = {r['chip_detection_rate']:.1%}",
        ),
        ("astronaut faces", lambda r: r["astronaut_faces"]),
        ("astronaut box (x, y, w, h)", lambda r: r["astronaut_box"]),
        ("astronaut IoU with expected box", lambda r: r["astronaut_iou_with_expected"]),
        ("group 1280x720: chips found", lambda r: f"{r['group_1280x720']['found']}/{r['group_1280x720']['faces']}"),
        ("group 1280x720: detections off a chip", lambda r: r["group_1280x720"]["off_face"]),
    ]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(str(cell(report["recall"][d])) for d in detectors) + " |")
    lines += ["", "## New vs keras: the same faces? (max px over boxes and landmarks)", ""]
    for name, same in report["new_vs_keras"].items():
        lines.append(f"- {name}: `{json.dumps(same)}`")
    if "landmarks_new_vs_baseline" in report:
        lines += ["", "## Landmarks, new vs baseline (mean px distance over the 5 points)", ""]
        for name, agreement in report["landmarks_new_vs_baseline"].items():
            lines.append(f"- {name}: `{json.dumps(agreement)}`")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", action="store_true", help="also run plain mtcnn.MTCNN and compare")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--chips", type=int, default=500)
    parser.add_argument("--smoke", action="store_true", help="tiny counts: does the benchmark still run?")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeats, args.chips = 1, 8

    load_before = load()
    group, placed = group_photo()
    photos = {
        "photo_640x640": astronaut(),
        "photo_640x427": np.ascontiguousarray(group[146:573, 320:960]),
        "photo_1280x720": group,
    }
    chip_paths = chip_files(args.chips)
    chip_images = [read_rgb(path) for path in chip_paths]
    photos["chip_200_single"] = chip_images[0]

    detectors = {"new": FaceDetector(), "keras": FaceDetector(runtime="keras")}
    if args.baseline:
        detectors["baseline"] = BaselineDetector()
    report = {
        "command": "bench/detection_speed.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "repeats": args.repeats,
        "new_detector_max_short_side": MAX_SHORT_SIDE,
        "new_detector_runtime": detectors["new"].runtime,
        "recall": {},
    }
    print("speed (ms)", flush=True)
    report["speed"] = speed(detectors, args.repeats, photos, chip_images)
    raw = {}
    for name, detector in detectors.items():
        print(f"{name}: recall", flush=True)
        report["recall"][name], raw[name] = recall(detector, chip_images, photos, placed)
        print(f"  {json.dumps(report['recall'][name])}", flush=True)
    report["new_vs_keras"] = {
        "chips": agreement(raw["new"]["chips"], raw["keras"]["chips"]),
        "photos": agreement(
            [detectors["new"].detect(photo) for photo in photos.values()],
            [detectors["keras"].detect(photo) for photo in photos.values()],
        ),
    }
    print(json.dumps(report["new_vs_keras"]), flush=True)
    if args.baseline:
        report["landmarks_new_vs_baseline"] = {
            "chips": landmark_agreement(raw["new"]["chips"], raw["baseline"]["chips"]),
            "astronaut": landmark_agreement([raw["new"]["astronaut"]], [raw["baseline"]["astronaut"]]),
        }
        print(json.dumps(report["landmarks_new_vs_baseline"]), flush=True)
    report["load_before"] = load_before
    report["load_after"] = load()

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "detection_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "detection_speed.md").write_text(markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
