"""End-to-end latency and throughput of the whole app on this machine.

    python bench/pipeline_latency.py [--photos 20] [--clients 20] [--per-client 2] [--worker-processes 1 2]
                                     [--smoke] [--out DIR]

Starts the real stack in a scratch folder (Redis, SecantusDB, SQLite, a Celery worker, gunicorn
with uvicorn workers) as production runs it (DEBUG off, a secret key of its own; the per-client upload rate
limits off, since the benchmark is one client sending on purpose), creates an API key, then, for
each count of worker processes (Celery's ``--concurrency``), measures
- latency: one client, a 640 px one-face photo at a time, POST to done (``?wait=``), and where
  its time goes: the stages the worker records on the upload, and what the client saw around them,
- throughput: ``--clients`` concurrent clients each sending ``--per-client`` photos.
Writes pipeline_latency.json and .md into ``--out`` (bench/results). Targets (issue 11): p50 <= 200 ms
with one worker process, time outside detection and the model <= 10% of it, two processes >= 1.6x
the throughput of one. ``--smoke``: one photo, two clients of one photo each, one process, for CI
(it proves the script still runs).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # devtools/ is not installed: the repository's

from bench.stack import running_stack  # noqa: E402
from devtools.devstack import start_worker  # noqa: E402

RESULTS = Path(__file__).parent / "results"
STAGES = ("queue_ms", "decode_ms", "detection_ms", "estimation_ms")  # recorded by the worker on the upload


def photo_640() -> bytes:
    """The astronaut photo (one face) at 640 x 640, as a camera JPEG."""
    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).resize((640, 640)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def predict_once(client: httpx.Client, photo: bytes) -> dict:
    """Send one photo and wait for its result; the client's times (ms) beside the upload's own stages."""
    started = time.perf_counter()
    created = client.post("/api/v1/predictions", files={"image": ("photo.jpg", photo, "image/jpeg")})
    created.raise_for_status()
    posted = time.perf_counter()
    prediction_id = created.json()["id"]
    while True:
        result = client.get(f"/api/v1/predictions/{prediction_id}", params={"wait": 30}).json()
        if result["status"] in ("done", "failed"):
            break
    finished = time.perf_counter()
    return {
        "status": result["status"],
        "faces": len(result["faces"]),
        "total_ms": (finished - started) * 1000,
        "post_ms": (posted - started) * 1000,
        "stages_ms": result["timings"],
    }


def breakdown(runs: list[dict]) -> dict:
    """Medians of where an upload's time went; ``outside_models_ms`` is all but detection and the model."""
    models = [r["stages_ms"]["detection_ms"] + r["stages_ms"]["estimation_ms"] for r in runs]
    parts = {
        "client_total_ms": [r["total_ms"] for r in runs],
        "post_ms": [r["post_ms"] for r in runs],
        **{name: [r["stages_ms"][name] for r in runs] for name in STAGES},
        # Inside the worker but not a recorded stage: SQL and MongoDB writes, the hop between the two tasks.
        "worker_other_ms": [r["stages_ms"]["total_ms"] - sum(r["stages_ms"][n] for n in STAGES) for r in runs],
        "outside_models_ms": [r["total_ms"] - m for r, m in zip(runs, models, strict=True)],
    }
    medians = {name: round(float(np.median(values)), 1) for name, values in parts.items()}
    shares = [(r["total_ms"] - m) / r["total_ms"] for r, m in zip(runs, models, strict=True)]
    return {**medians, "outside_models_share": round(float(np.median(shares)), 3)}


def cpu_seconds(groups: dict[str, int]) -> dict[str, float]:
    """CPU time (user + system) used so far by each named process group (a service and its children),
    and by this process (the benchmark's clients), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = dict.fromkeys([*groups, "benchmark clients"], 0.0)
    names = {pgid: name for name, pgid in groups.items()}
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # not a process, or gone
        pgid, cpu = int(fields[2]), (int(fields[11]) + int(fields[12])) / ticks
        if pgid in names:
            used[names[pgid]] += cpu
        elif entry.name == str(os.getpid()):
            used["benchmark clients"] += cpu
    return used


def measure(base_url: str, headers: dict, photo: bytes, processes: int, args, groups: dict[str, int]) -> dict:
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as client:
        # Warm-up: each worker process loads the models on its first task.
        with ThreadPoolExecutor(2 * processes) as pool:
            list(pool.map(lambda _: predict_once(client, photo), range(2 * processes)))
        runs = [predict_once(client, photo) for _ in range(args.photos)]

        def one_client(_):
            with httpx.Client(base_url=base_url, headers=headers, timeout=300) as own:
                return [predict_once(own, photo)["status"] for _ in range(args.per_client)]

        cpu_before = cpu_seconds(groups)
        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            statuses = [s for batch in pool.map(one_client, range(args.clients)) for s in batch]
        elapsed = time.perf_counter() - started
        cpu_after = cpu_seconds(groups)
    latencies = [r["total_ms"] for r in runs]
    return {
        "worker_processes": processes,
        "latency_ms": {
            "n": len(runs),
            "p50": round(float(np.percentile(latencies, 50)), 1),
            "p95": round(float(np.percentile(latencies, 95)), 1),
            "faces_found": sorted({r["faces"] for r in runs}),
            "breakdown_p50": breakdown(runs),
        },
        "throughput": {
            "clients": args.clients,
            "photos": len(statuses),
            "done": statuses.count("done"),
            "seconds": round(elapsed, 2),
            "photos_per_second": round(len(statuses) / elapsed, 2),
            # Where the machine's cores went while the clients sent: CPU ms per photo, by process.
            "cpu_ms_per_photo": {
                name: round((cpu_after[name] - cpu_before[name]) * 1000 / len(statuses), 1) for name in cpu_after
            },
            "cores_busy": round(sum(cpu_after[n] - cpu_before[n] for n in cpu_after) / elapsed, 2),
        },
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=20, help="sequential photos for the latency figures")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--per-client", type=int, default=2)
    parser.add_argument("--worker-processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--smoke", action="store_true", help="tiny counts: does the benchmark still run?")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.photos, args.clients, args.per_client, args.worker_processes = 1, 2, 1, [1]

    photo = photo_640()
    runs = []
    with tempfile.TemporaryDirectory(prefix="mairror-bench-") as scratch, running_stack(Path(scratch)) as stack:
        for processes in args.worker_processes:
            worker = start_worker(stack.env, "celery,ml", processes, Path(scratch) / f"worker-{processes}.log")
            names = {"redis": "redis", "mongo": "mongo (SecantusDB)", "web": "web (gunicorn)"}
            groups = {names[key]: service.process.pid for key, service in stack.services.items()}
            groups["worker (Celery)"] = worker.process.pid
            try:
                runs.append(measure(stack.url, stack.headers, photo, processes, args, groups))
            finally:
                worker.stop()

    throughputs = {run["worker_processes"]: run["throughput"]["photos_per_second"] for run in runs}
    report = {
        "photo": "640x640 JPEG, one face (skimage astronaut)",
        "runs": runs,
        "throughput_ratio_2_to_1": round(throughputs[2] / throughputs[1], 2) if {1, 2} <= throughputs.keys() else None,
        "machine": {"cpus": os.cpu_count(), "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "web": "gunicorn with 2 uvicorn workers (ASGI), Celery prefork worker with --concurrency as given",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pipeline_latency.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "pipeline_latency.md").write_text(markdown(report))
    print(json.dumps(report, indent=2))
    return report


def markdown(report: dict) -> str:
    lines = ["| measure | " + " | ".join(f"{r['worker_processes']} worker process(es)" for r in report["runs"]) + " |"]
    lines.append("| --- |" + " --- |" * len(report["runs"]))

    def row(label, value):
        lines.append(f"| {label} | " + " | ".join(str(value(r)) for r in report["runs"]) + " |")

    row("latency p50, POST to done (ms)", lambda r: r["latency_ms"]["p50"])
    row("latency p95 (ms)", lambda r: r["latency_ms"]["p95"])
    for name in ("post_ms", *STAGES, "worker_other_ms", "outside_models_ms", "outside_models_share"):
        row(f"p50 {name}", lambda r, name=name: r["latency_ms"]["breakdown_p50"][name])
    row(
        f"throughput, {report['runs'][0]['throughput']['clients']} clients (photos/s)",
        lambda r: r["throughput"]["photos_per_second"],
    )
    row(f"cores busy while they sent (of {report['machine']['cpus']})", lambda r: r["throughput"]["cores_busy"])
    for name in report["runs"][0]["throughput"]["cpu_ms_per_photo"]:
        row(f"CPU ms per photo: {name}", lambda r, name=name: r["throughput"]["cpu_ms_per_photo"][name])
    lines.append(
        f"\nThroughput, 2 processes / 1: {report['throughput_ratio_2_to_1']}. Load average after: "
        f"{report['machine']['load_average_after']}.\n"
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
