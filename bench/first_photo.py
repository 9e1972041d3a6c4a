"""The first photo a fresh ml worker answers, against its tenth (issue 13: it took 17.8 s after ``make run``).

    python bench/first_photo.py [--photos 10] [--smoke] [--out DIR]

Starts the stack as production runs it, in a scratch folder (Redis, SecantusDB, SQLite, gunicorn
with two uvicorn workers, DEBUG off, a secret key of its own, the upload rate limits off), then
starts a Celery worker (queues celery and ml, one pool process) twice, fresh each time:

1. ready first: from the worker's start, polls ``/healthz`` until it counts an ml worker, then sends
   the 640 px one-face photo and ``--photos`` - 1 more, one at a time (POST to done, ``?wait=``). The
   first photo's latency against the tenth's, and the time from the worker's start to the first result.
2. sent at start, as a user who uploads right after ``make run``: the photo is queued, then the
   worker started; the time from its start to the result.

Each worker logs how long its pool process took to load and warm the models. Target: the first
photo within 2x of the tenth. Writes first_photo.json and .md into ``--out`` (bench/results).
``--smoke``: two photos, for CI (it proves the script still runs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # devtools/ is not installed: the repository's

from bench.pipeline_latency import photo_640, predict_once  # noqa: E402
from bench.stack import running_stack  # noqa: E402
from devtools.devstack import start_worker  # noqa: E402

RESULTS = Path(__file__).parent / "results"
TARGET_RATIO = 2.0
READY_TIMEOUT_SECONDS = 300
WARMED = re.compile(rb"models loaded and warmed in ([0-9.]+) s")


def wait_for_ml_worker(client: httpx.Client, started: float) -> tuple[float, int]:
    """Seconds from ``started`` until ``/healthz`` counts an ml worker, and how many probes that took."""
    probes = 0
    while True:
        probes += 1
        if (client.get("/healthz").json()["ml_workers"] or 0) >= 1:
            return time.perf_counter() - started, probes
        if time.perf_counter() - started > READY_TIMEOUT_SECONDS:
            raise RuntimeError(f"no ml worker ready after {READY_TIMEOUT_SECONDS} s")
        time.sleep(0.05)


def warm_up_seconds(log: Path) -> list[float]:
    """What each pool process of a worker logged its warm-up took."""
    return [float(seconds) for seconds in WARMED.findall(log.read_bytes())]


def photo_summary(run: dict) -> dict:
    """One photo's times: the POST (the web process alone) and what came after it (the queue, the worker,
    the answer), with the worker's own stages."""
    return {
        "total_ms": round(run["total_ms"], 1),
        "post_ms": round(run["post_ms"], 1),
        "after_post_ms": round(run["total_ms"] - run["post_ms"], 1),
        **{name: round(run["stages_ms"][name], 1) for name in ("queue_ms", "detection_ms", "estimation_ms")},
    }


def ready_first(env: dict, base_url: str, headers: dict, photo: bytes, count: int, log: Path) -> dict:
    """Scenario 1: the first photo sent once ``/healthz`` counts the fresh worker, then ``count`` - 1 more."""
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as client:
        started = time.perf_counter()
        worker = start_worker(env, "celery,ml", 1, log)
        try:
            logged_ready = time.perf_counter() - started
            ready, probes = wait_for_ml_worker(client, started)
            runs = [predict_once(client, photo) for _ in range(count)]
            first_result = ready + runs[0]["total_ms"] / 1000
        finally:
            worker.stop()
    latencies = [run["total_ms"] for run in runs]
    return {
        "worker_logged_ready_s": round(logged_ready, 2),
        "healthz_ml_ready_s": round(ready, 2),
        "healthz_probes": probes,
        "first_result_from_worker_start_s": round(first_result, 2),
        "warm_up_s": warm_up_seconds(log),
        "statuses": sorted({run["status"] for run in runs}),
        "faces_found": sorted({run["faces"] for run in runs}),
        "latency_ms": [round(value, 1) for value in latencies],
        "first": photo_summary(runs[0]),
        "last": photo_summary(runs[-1]),
        "rest_p50_ms": round(float(np.median(latencies[1:])), 1),
        "first_to_last": round(latencies[0] / latencies[-1], 2),
    }


def sent_at_start(env: dict, base_url: str, headers: dict, photo: bytes, log: Path) -> dict:
    """Scenario 2: the photo is queued before the worker starts; seconds from its start to the result."""
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as client:
        created = client.post("/api/v1/predictions", files={"image": ("photo.jpg", photo, "image/jpeg")})
        created.raise_for_status()
        started = time.perf_counter()
        worker = start_worker(env, "celery,ml", 1, log)
        try:
            while True:
                result = client.get(f"/api/v1/predictions/{created.json()['id']}", params={"wait": 30}).json()
                if result["status"] in ("done", "failed"):
                    break
            finished = time.perf_counter() - started
        finally:
            worker.stop()
    return {
        "status": result["status"],
        "faces_found": len(result["faces"]),
        "result_from_worker_start_s": round(finished, 2),
        "warm_up_s": warm_up_seconds(log),
        "detection_ms": round(result["timings"]["detection_ms"], 1),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=10, help="photos sent one after the other to the fresh worker")
    parser.add_argument("--smoke", action="store_true", help="two photos: does the benchmark still run?")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.photos = 2

    photo = photo_640()
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="mairror-bench-") as scratch, running_stack(Path(scratch)) as stack:
        var = Path(scratch)
        first = ready_first(stack.env, stack.url, stack.headers, photo, args.photos, var / "worker-ready-first.log")
        at_start = sent_at_start(stack.env, stack.url, stack.headers, photo, var / "worker-sent-at-start.log")

    report = {
        "photo": "640x640 JPEG, one face (skimage astronaut)",
        "photos": args.photos,
        "ready_first": first,
        "sent_at_start": at_start,
        "target_first_within": TARGET_RATIO,
        "target_met": first["first_to_last"] <= TARGET_RATIO,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "stack": "gunicorn with 2 uvicorn workers (ASGI), each time a new Celery prefork worker (celery,ml; 1 process)",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "first_photo.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "first_photo.md").write_text(markdown(report))
    print(json.dumps(report, indent=2))
    return report


def markdown(report: dict) -> str:
    first, at_start = report["ready_first"], report["sent_at_start"]
    n = report["photos"]
    met = "met" if report["target_met"] else "NOT met"
    lines = [
        "# The first photo of a fresh ml worker",
        "",
        f"{report['photo']}; {report['stack']}. {report['machine']['cpus']} CPUs, load average "
        f"{report['machine']['load_average_before']} before, {report['machine']['load_average_after']} after.",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| worker start to its log's `ready.` | {first['worker_logged_ready_s']} s |",
        f"| worker start to `/healthz` counting an ml worker | {first['healthz_ml_ready_s']} s |",
        f"| the pool process's warm-up (its log) | {', '.join(f'{s} s' for s in first['warm_up_s'])} |",
        f"| photo 1, sent then: POST to done | {first['first']['total_ms']} ms "
        f"(detection {first['first']['detection_ms']} ms, the model {first['first']['estimation_ms']} ms) |",
        f"| photo {n}: POST to done | {first['last']['total_ms']} ms "
        f"(detection {first['last']['detection_ms']} ms, the model {first['last']['estimation_ms']} ms) |",
        f"| photos 2..{n}, p50 | {first['rest_p50_ms']} ms |",
        f"| photo 1 / photo {n} (target <= {report['target_first_within']:g}) | {first['first_to_last']} ({met}) |",
        f"| the POST alone (the web process), photo 1 / photo {n} | {first['first']['post_ms']} / "
        f"{first['last']['post_ms']} ms |",
        f"| after the POST (queue {first['first']['queue_ms']} / {first['last']['queue_ms']} ms, the worker, "
        f"the answer), photo 1 / photo {n} | {first['first']['after_post_ms']} / {first['last']['after_post_ms']} ms |",
        f"| worker start to photo 1's result | {first['first_result_from_worker_start_s']} s |",
        f"| photo queued before the worker starts: worker start to its result | "
        f"{at_start['result_from_worker_start_s']} s (detection {at_start['detection_ms']} ms) |",
        "",
        f"Every photo, POST to done (ms): {', '.join(str(x) for x in first['latency_ms'])}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
