"""Model time per face on this machine: the age/gender network with flip averaging, on TFLite and Keras.

    python bench/model_speed.py [--weights ml/weights] [--repeats 30]

Times ``FacePipeline.estimate`` at ``--batch-size`` faces (32) and for one face (a photo's usual
count), the two runtimes (``FacePipeline(runtime=...)``) taking turns so they share the load;
CPU is the process time (all threads). Writes model_speed.json into ``--out`` (bench/results);
its top-level ``ms_per_face_*`` are serving's default (TFLite on a CPU) at the batch size.
Target: <= 8 ms a face on the 2-core CPU. ``--smoke``: one timed batch, for CI (it proves the
script still runs).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from ml.inference import DEFAULT_WEIGHTS_DIR, FacePipeline

RESULTS = Path(__file__).parent / "results"
RUNTIMES = ("tflite", "keras")


def time_interleaved(pipelines: dict[str, FacePipeline], crops: np.ndarray, repeats: int) -> dict[str, dict]:
    """Median and p95 wall ms and median CPU ms per face of ``estimate(crops)``, the pipelines taking turns."""
    for _ in range(3):  # warm-up: model load, conversion or tracing, allocation
        for pipeline in pipelines.values():
            pipeline.estimate(crops)
    wall: dict[str, list[float]] = {name: [] for name in pipelines}
    cpu: dict[str, list[float]] = {name: [] for name in pipelines}
    for _ in range(repeats):
        for name, pipeline in pipelines.items():
            started_wall, started_cpu = time.perf_counter(), time.process_time()
            pipeline.estimate(crops)
            wall[name].append((time.perf_counter() - started_wall) * 1000 / len(crops))
            cpu[name].append((time.process_time() - started_cpu) * 1000 / len(crops))
    return {
        name: {
            "ms_per_face_median": round(float(np.median(wall[name])), 3),
            "ms_per_face_p95": round(float(np.percentile(wall[name], 95)), 3),
            "cpu_ms_per_face_median": round(float(np.median(cpu[name])), 3),
        }
        for name in pipelines
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS_DIR)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--smoke", action="store_true", help="tiny counts: does the benchmark still run?")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeats = 1

    load_before = os.getloadavg()
    pipelines = {name: FacePipeline(args.weights, batch_size=args.batch_size, runtime=name) for name in RUNTIMES}
    size = pipelines["tflite"].crop_size
    crops = np.random.default_rng(0).integers(0, 255, (args.batch_size, size, size, 3), dtype=np.uint8)
    batch = time_interleaved(pipelines, crops, args.repeats)
    one_face = time_interleaved(pipelines, crops[:1], args.repeats)
    result = {
        "model_version": pipelines["tflite"].model_version,
        "input_size": size,
        "batch_size": args.batch_size,
        "flip_averaging": True,
        **batch["tflite"],
        "runtimes": {name: {"batch": batch[name], "one_face": one_face[name]} for name in RUNTIMES},
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average": os.getloadavg(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "model_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
