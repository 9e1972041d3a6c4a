"""Model time per face on this machine: the age/gender network at batch 32, with flip averaging.

    python bench/model_speed.py [--weights ml/weights] [--repeats 30]

Writes bench/results/model_speed.json. The issue's target: <= 5 ms a face on the 2-core CPU.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS_DIR)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

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
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "model_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
