"""How many clients can wait on ``?wait=`` while ``/healthz`` still answers at once (loopback only).

    python bench/wait_capacity.py [--waits 1000] [--probes 50] [--wait-seconds 30] [--smoke] [--out DIR]

Starts the stack as production runs it, in a scratch folder (Redis, SQLite, gunicorn with two
uvicorn workers; DEBUG off, a secret key of its own, the upload rate limits off), but no Celery
worker: the uploads it creates stay pending, so every wait lasts its full ``--wait-seconds``. Then
1. ``/healthz`` latency with nothing open (the baseline),
2. ``--waits`` concurrent ``GET /api/v1/predictions/<id>?wait=N`` (httpx's async client, one
   pending upload each), counted as open once each has its Redis subscription (PUBSUB NUMSUB),
3. once the web workers have gone idle (at most ``--settle`` seconds: a request subscribes just
   before its one read of the upload, which the server may still be catching up with),
   ``--probes`` ``/healthz`` requests one after the other while they are all open (p50/p95/max),
   and a few result-page loads; the web workers' thread and file counts meanwhile,
4. every wait's answer (200, still pending, after about N seconds: bounded, as promised).
Target (issue 11): 1,000 open waits leave ``/healthz`` under 100 ms. Writes wait_capacity.json and
.md into ``--out`` (bench/results). ``--smoke``: 20 waits of 5 s and 5 probes, for CI.

Needs open files: each wait is a socket here and one in a web worker (a worker's waits share one
Redis connection), so this process and its children need ``--waits`` + a few hundred descriptors each. It raises
its soft limit (``ulimit -n``) up to the hard one, which its children inherit, and stops with a
message if the hard limit is too low (``ulimit -Hn``; raise it as root, or in limits.conf).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import redis
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # devtools/ is not installed: the repository's

from bench.stack import manage, migrate, production_env  # noqa: E402
from devtools.devstack import free_port, start_redis, start_web  # noqa: E402

RESULTS = Path(__file__).parent / "results"
TARGET_MS = 100.0
FDS_PER_WAIT = 2  # with room to spare: this process and a web worker each hold one socket per wait
FDS_SPARE = 512

# Run by manage.py shell in the app's environment: an API key and pending uploads, never queued.
SETUP = """
import json, os
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework_api_key.models import APIKey
from apps.uploads.models import Upload
from apps.uploads.services import upload_create
photo = open(os.environ["WAIT_CAPACITY_PHOTO"], "rb").read()
api_key, key = APIKey.objects.create_key(name="wait-capacity")
ids = [
    str(upload_create(image=SimpleUploadedFile("p.png", photo), channel=Upload.Channel.API, owner=api_key).pk)
    for _ in range({count})
]
print(json.dumps({{"key": key, "ids": ids}}))
"""


def small_photo(path: Path) -> Path:
    """A 64 x 64 PNG: the uploads only need to exist, nothing analyses them."""
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    return path


def raise_open_files_limit(needed: int) -> dict:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        sys.exit(f"wait_capacity: needs {needed} open files per process, the hard limit is {hard} (ulimit -Hn)")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return {"soft_before": soft, "soft": resource.getrlimit(resource.RLIMIT_NOFILE)[0], "hard": hard}


def stats(values_ms: list[float]) -> dict:
    return {
        "n": len(values_ms),
        "p50": round(float(np.percentile(values_ms, 50)), 1),
        "p95": round(float(np.percentile(values_ms, 95)), 1),
        "max": round(max(values_ms), 1),
    }


def probe(url: str, count: int, pause: float = 0.05) -> list[float]:
    """``count`` GETs one after the other on one keep-alive connection, in ms each."""
    latencies = []
    with httpx.Client(timeout=30) as client:
        for _ in range(count):
            started = time.perf_counter()
            client.get(url).raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(pause)
    return latencies


def web_workers(web_pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{web_pid}/task").iterdir():
        children += [int(pid) for pid in (task / "children").read_text().split()]
    return children


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the web workers have used so far."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_until_idle(pids: list[int], most: float, interval: float = 0.5, busy_share: float = 0.2) -> float:
    """Seconds until the web workers together use under ``busy_share`` of a core over ``interval``."""
    started = time.monotonic()
    before = cpu_seconds(pids)
    while time.monotonic() - started < most:
        time.sleep(interval)
        now = cpu_seconds(pids)
        if now - before < busy_share * interval:
            break
        before = now
    return time.monotonic() - started


def process_counts(pids: list[int]) -> dict:
    """Threads and open files of each web worker."""
    counts = []
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        threads = int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))
        counts.append({"threads": threads, "open_files": len(os.listdir(f"/proc/{pid}/fd"))})
    return {"per_worker": counts}


async def open_waits(
    base_url: str,
    key: str,
    ids: list[str],
    wait_seconds: float,
    redis_url: str,
    probes: int,
    workers: list[int],
    settle: float,
):
    """Open one wait per id, measure while they are all open, then collect their answers."""
    headers = {"Authorization": f"Api-Key {key}"}
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    timeout = httpx.Timeout(wait_seconds + 60, connect=60)
    channels = [f"mairror:upload:{upload_id}" for upload_id in ids]
    broker = redis.Redis.from_url(redis_url)

    def subscribed() -> int:
        total = 0
        for start in range(0, len(channels), 500):
            total += sum(count > 0 for _, count in broker.pubsub_numsub(*channels[start : start + 500]))
        return total

    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=timeout) as client:

        async def wait(upload_id: str):
            started = time.perf_counter()
            try:
                response = await client.get(f"/api/v1/predictions/{upload_id}", params={"wait": wait_seconds})
                status = response.json().get("status") if response.status_code == 200 else None
                return response.status_code, status, time.perf_counter() - started
            except httpx.HTTPError as error:
                return type(error).__name__, None, time.perf_counter() - started

        ramp_started = time.perf_counter()
        tasks = [asyncio.create_task(wait(upload_id)) for upload_id in ids]
        deadline = time.monotonic() + wait_seconds
        while (open_now := await asyncio.to_thread(subscribed)) < len(ids) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        ramp_seconds = time.perf_counter() - ramp_started
        # Subscribed comes before each request's one read of its upload: let the server finish those.
        settled = await asyncio.to_thread(wait_until_idle, workers, settle)
        answered_before_probes = sum(task.done() for task in tasks)

        measured = {}

        def measure():
            measured["healthz"] = probe(f"{base_url}/healthz", probes)
            measured["page"] = probe(f"{base_url}/", max(3, probes // 10))
            measured["workers"] = process_counts(workers)["per_worker"]

        started = time.monotonic()
        await asyncio.to_thread(measure)
        measured["probe_seconds"] = time.monotonic() - started
        measured["open_after_probes"] = await asyncio.to_thread(subscribed)
        measured["answered_during_probes"] = sum(task.done() for task in tasks) - answered_before_probes
        answers = await asyncio.gather(*tasks)
    broker.close()
    return {
        "subscribed": open_now,
        "ramp_seconds": round(ramp_seconds, 2),
        "settle_seconds": round(settled, 2),
        "answered_before_probes": answered_before_probes,
        **measured,
        "answers": answers,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waits", type=int, default=1000, help="concurrent ?wait= requests")
    parser.add_argument("--probes", type=int, default=50, help="/healthz requests while they are open")
    parser.add_argument("--wait-seconds", type=float, default=30)
    parser.add_argument("--settle", type=float, default=20, help="at most this long for the server to go idle")
    parser.add_argument("--smoke", action="store_true", help="tiny counts: does the benchmark still run?")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.waits, args.probes, args.wait_seconds, args.settle = 20, 5, 5, 0.5
    limits = raise_open_files_limit(args.waits * FDS_PER_WAIT + FDS_SPARE)

    with tempfile.TemporaryDirectory(prefix="mairror-bench-") as scratch:
        var = Path(scratch)
        services = [start_redis(var / "redis")]
        # No Celery worker and nothing reads faces: MONGO_URL only has to be well formed.
        env = production_env(var, redis_url=services[0].url, mongo_url=f"mongodb://127.0.0.1:{free_port()}")
        try:
            migrate(env)
            photo = small_photo(var / "photo.png")
            created = manage(
                {**env, "WAIT_CAPACITY_PHOTO": str(photo)},
                "shell",
                "-c",
                SETUP.format(count=args.waits),
                capture_output=True,
                text=True,
            )
            setup = json.loads(created.stdout.strip().splitlines()[-1])
            port = free_port()
            services.append(start_web(env, port, var / "web.log"))
            base_url = f"http://127.0.0.1:{port}"
            probe(f"{base_url}/healthz", 5)  # warm-up: both workers imported everything
            baseline = probe(f"{base_url}/healthz", args.probes)
            workers = web_workers(services[-1].process.pid)
            idle_counts = process_counts(workers)
            run = asyncio.run(
                open_waits(
                    base_url,
                    setup["key"],
                    setup["ids"],
                    args.wait_seconds,
                    env["REDIS_URL"],
                    args.probes,
                    workers,
                    args.settle,
                )
            )
            load_after = [round(x, 2) for x in os.getloadavg()]
        finally:
            for service in reversed(services):
                service.stop()
        web_log = (var / "web.log").read_text(errors="replace").splitlines() if (var / "web.log").exists() else []
        # The web log has no level names: these are the events module's warnings, and errors.
        signs = ("no change events", "lost the change events", "Traceback", "Error", "ERROR")
        problems = [line for line in web_log if "[INFO]" not in line and any(sign in line for sign in signs)]

    answers = run.pop("answers")
    statuses = [f"{code} {status}" if status else str(code) for code, status, _ in answers]
    healthz = stats(run.pop("healthz"))
    report = {
        "waits": args.waits,
        "wait_seconds": args.wait_seconds,
        "open_when_measured": run["subscribed"],
        "ramp_seconds": run["ramp_seconds"],
        "settle_seconds": run["settle_seconds"],
        "healthz_ms_idle": stats(baseline),
        "healthz_ms_with_waits_open": healthz,
        "page_ms_with_waits_open": stats(run.pop("page")),
        "target_ms": TARGET_MS,
        "target_met": healthz["p95"] < TARGET_MS and run["subscribed"] == args.waits,
        "waits_still_open_after_probes": run["open_after_probes"],
        "answered_while_probing": run["answered_during_probes"],
        "answers": {status: statuses.count(status) for status in sorted(set(statuses))},
        "wait_duration_s": {
            "min": round(min(seconds for *_, seconds in answers), 2),
            "max": round(max(seconds for *_, seconds in answers), 2),
        },
        "server_log_problems": {"count": len(problems), "first": problems[:5]},
        "web_workers_idle": idle_counts["per_worker"],
        "web_workers_with_waits_open": run.pop("workers"),
        "server": "gunicorn, 2 uvicorn workers (mairror.asgi), SQLite, Redis; no Celery worker",
        "open_files_limit": limits,
        "machine": {"cpus": os.cpu_count(), "load_average_after": load_after},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "wait_capacity.json").write_text(json.dumps(report, indent=2) + "\n")
    idle, busy, page = report["healthz_ms_idle"], healthz, report["page_ms_with_waits_open"]
    threads = [worker["threads"] for worker in report["web_workers_with_waits_open"]]
    (args.out / "wait_capacity.md").write_text(
        f"# {args.waits} open `?wait={args.wait_seconds:g}` requests\n\n"
        "| measure | value |\n| --- | --- |\n"
        f"| waits open (Redis subscriptions) when measured | {report['open_when_measured']} of {args.waits} |\n"
        f"| time to open them all, then for the web workers to go idle (s) "
        f"| {report['ramp_seconds']}, {report['settle_seconds']} |\n"
        f"| `/healthz` idle, p50 / p95 / max (ms) | {idle['p50']} / {idle['p95']} / {idle['max']} |\n"
        f"| `/healthz` with the waits open, p50 / p95 / max (ms, {busy['n']} probes) "
        f"| {busy['p50']} / {busy['p95']} / {busy['max']} |\n"
        f"| result page `/` with the waits open, p50 / max (ms) | {page['p50']} / {page['max']} |\n"
        f"| target: `/healthz` p95 under {TARGET_MS:g} ms | {'met' if report['target_met'] else 'NOT met'} |\n"
        f"| answers | {report['answers']} |\n"
        f"| wait durations (s) | {report['wait_duration_s']['min']} - {report['wait_duration_s']['max']} |\n"
        f"| web worker threads with the waits open | {threads} |\n"
        f"| machine | {report['machine']['cpus']} CPUs, load average after {load_after} |\n"
    )
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
