"""Model time per face on this machine: the age/gender network at batch 32, with flip averaging.

    python bench/model_speed.py [--weights ml/weights] [--repeats 30]

Writes model_speed.json into ``--out`` (bench/results). Target: <= 8 ms a face on the 2-core CPU.
``--smoke``: one timed batch, for CI (it proves the script still runs).
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

    pipeline = FacePipeline(args.weights, batch_size=args.batch_size)
    size = pipeline.crop_size
    crops = np.random.default_rng(0).integers(0, 255, (args.batch_size, size, size, 3), dtype=np.uint8)
    for _ in range(3):  # warm-up: graph tracing and allocation
        pipeline.estimate(crops)
    seconds = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        pipeline.estimate(crops)
        seconds.append(time.perf_counter() - started)
    per_face_ms = np.array(seconds) * 1000 / args.batch_size
    result = {
        "model_version": pipeline.model_version,
        "input_size": size,
        "batch_size": args.batch_size,
        "flip_averaging": True,
        "ms_per_face_median": round(float(np.median(per_face_ms)), 3),
        "ms_per_face_p95": round(float(np.percentile(per_face_ms, 95)), 3),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "model_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
