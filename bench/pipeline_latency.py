"""End-to-end latency and throughput of the whole app on this machine.

    python bench/pipeline_latency.py [--photos 20] [--clients 20] [--per-client 2] [--smoke] [--out DIR]

Starts the real stack in a scratch folder (Redis, SecantusDB, SQLite, one Celery worker,
gunicorn with uvicorn workers) as production runs it (DEBUG off, a secret key of its own; the per-client upload rate
limits off, since the benchmark is one client sending on purpose), creates an API key, then measures
- latency: one client, a 640 px one-face photo at a time, POST to done (``?wait=``),
- throughput: ``--clients`` concurrent clients each sending ``--per-client`` photos.
Writes pipeline_latency.json and .md into ``--out`` (bench/results). Target (issue 3): p50 <= 400 ms.
``--smoke``: one photo, two clients of one photo each, for CI (it proves the script still runs).
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

from bench.stack import manage, migrate, production_env  # noqa: E402
from devtools.devstack import free_port, start_mongo, start_redis, start_web, start_worker  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def photo_640() -> bytes:
    """The astronaut photo (one face) at 640 x 640, as a camera JPEG."""
    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).resize((640, 640)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def predict_once(client: httpx.Client, photo: bytes) -> tuple[float, dict]:
    started = time.perf_counter()
    created = client.post("/api/v1/predictions", files={"image": ("photo.jpg", photo, "image/jpeg")})
    created.raise_for_status()
    prediction_id = created.json()["id"]
    while True:
        result = client.get(f"/api/v1/predictions/{prediction_id}", params={"wait": 30}).json()
        if result["status"] in ("done", "failed"):
            return time.perf_counter() - started, result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=20, help="sequential photos for the latency figures")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--per-client", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="tiny counts: does the benchmark still run?")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.photos, args.clients, args.per_client = 1, 2, 1

    photo = photo_640()
    with tempfile.TemporaryDirectory(prefix="mairror-bench-") as scratch:
        var = Path(scratch)
        services = [start_redis(var / "redis"), start_mongo(var / "mongo")]
        env = production_env(var, redis_url=services[0].url, mongo_url=services[1].url)
        try:
            migrate(env)
            created = manage(env, "create_api_key", "bench", capture_output=True, text=True)
            key = created.stdout.strip().splitlines()[-1]
            port = free_port()
            services.append(start_worker(env, "celery,ml", 1, var / "worker.log"))
            services.append(start_web(env, port, var / "web.log"))
            headers = {"Authorization": f"Api-Key {key}"}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=120) as client:
                for _ in range(2):  # warm-up: the worker loads the models on its first task
                    predict_once(client, photo)
                latencies, faces = [], []
                for _ in range(args.photos):
                    seconds, result = predict_once(client, photo)
                    latencies.append(seconds * 1000)
                    faces.append(len(result["faces"]))

                def one_client(_):
                    with httpx.Client(base_url=client.base_url, headers=headers, timeout=300) as own:
                        return [predict_once(own, photo)[1]["status"] for _ in range(args.per_client)]

                started = time.perf_counter()
                with ThreadPoolExecutor(args.clients) as pool:
                    statuses = [s for batch in pool.map(one_client, range(args.clients)) for s in batch]
                elapsed = time.perf_counter() - started
                stage_ms = result["timings"]
        finally:
            for service in reversed(services):
                service.stop()

    report = {
        "photo": "640x640 JPEG, one face (skimage astronaut)",
        "latency_ms": {
            "n": len(latencies),
            "p50": round(float(np.percentile(latencies, 50)), 1),
            "p95": round(float(np.percentile(latencies, 95)), 1),
            "faces_found": sorted(set(faces)),
            "last_upload_stage_ms": {k: round(v, 1) for k, v in stage_ms.items()},
        },
        "throughput": {
            "clients": args.clients,
            "photos": len(statuses),
            "done": statuses.count("done"),
            "seconds": round(elapsed, 2),
            "photos_per_second": round(len(statuses) / elapsed, 2),
        },
        "machine": {"cpus": os.cpu_count(), "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "workers": "1 Celery worker (prefork, concurrency 1), gunicorn with 2 uvicorn workers (ASGI)",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pipeline_latency.json").write_text(json.dumps(report, indent=2) + "\n")
    lat, thr = report["latency_ms"], report["throughput"]
    (args.out / "pipeline_latency.md").write_text(
        "| measure | value |\n| --- | --- |\n"
        f"| latency p50, POST to done (ms) | {lat['p50']} |\n"
        f"| latency p95 (ms) | {lat['p95']} |\n"
        f"| throughput, {thr['clients']} clients (photos/s) | {thr['photos_per_second']} |\n"
        f"| stages of one upload (ms) | {lat['last_upload_stage_ms']} |\n"
    )
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
