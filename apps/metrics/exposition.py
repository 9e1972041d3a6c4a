"""What a scrape answers, on the web's ``/metrics`` and on a worker's own port.

Both want ``Authorization: Bearer <METRICS_TOKEN>``: 401 without it or with another token. With
METRICS_TOKEN empty there are no metrics (404): they say how busy the site is, which photos fail and
which model serves, nothing to publish by default, and no token means nothing could tell Prometheus
from anybody else.

With ``PROMETHEUS_MULTIPROC_DIR`` set (it must be, under gunicorn and Celery's prefork pool: each
process counts alone otherwise) a scrape adds up what every process that writes to that folder
recorded, the dead ones included, so counters do not fall back when a process is replaced; only the
gauges of dead processes are dropped first (``mark_process_dead``). Processes on one machine may share
a folder: the web's ``/metrics`` then also has the workers' series (``make run``). Workers elsewhere
serve their folder themselves (``WORKER_METRICS_ADDRESS``), one scrape target each.

The web's ``/metrics`` adds what is read at scrape time and belongs to no process: the depth of each
Celery queue (from the broker), the ml worker processes ready (their heartbeats), and whether the
broker answered at all; without an answer those series are left out, not zero.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.conf import settings
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from apps.faces.heartbeats import ml_workers_ready
from apps.predictions.selectors import BROKER_ERRORS, queue_depths

logger = logging.getLogger(__name__)

# The files of a process's live gauges: gauge_livemax_1234.db.
LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")
UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="metrics"', "Content-Type": "text/plain; charset=utf-8"}
BROKER_UP = ("mairror_broker_up", "Whether the broker (Redis) answered this scrape.")


@dataclass(frozen=True)
class Scrape:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def scrape(*, authorization: str | None, live: bool) -> Scrape:
    """The answer to a scrape with this Authorization header; ``live`` adds the broker's and heartbeats' series."""
    token = settings.METRICS_TOKEN
    if not token:
        return Scrape(404, b"Not found.\n")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        return Scrape(401, b"A metrics token is needed: Authorization: Bearer <METRICS_TOKEN>.\n", UNAUTHORIZED)
    collectors = [_recorded()]
    if live:
        collectors.append(LiveSeries())
    return Scrape(200, generate_latest(_Together(collectors)), {"Content-Type": CONTENT_TYPE_LATEST})


def _recorded():
    """What the processes recorded: the folder's, or this process's own without one (a single process)."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        return REGISTRY
    for name in os.listdir(path):
        match = LIVE_GAUGE_FILE.fullmatch(name)
        if match and not _alive(int(match[1])):
            mark_process_dead(int(match[1]), path)
    return MultiProcessCollector(None, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True


class _Together:
    """Several collectors as one, for ``generate_latest``."""

    def __init__(self, collectors):
        self.collectors = collectors

    def collect(self):
        for collector in self.collectors:
            yield from collector.collect()


class LiveSeries:
    """Read at each scrape of the web: queue depths, ml workers ready, broker up."""

    def collect(self):
        try:
            depths = queue_depths()
            ready = ml_workers_ready()
        except BROKER_ERRORS as error:
            logger.warning("metrics: the broker did not answer: %s", error)
            yield GaugeMetricFamily(*BROKER_UP, value=0)
            return
        yield GaugeMetricFamily(*BROKER_UP, value=1)
        queue_depth = GaugeMetricFamily(
            "mairror_queue_depth", "Messages waiting on each Celery queue (not those a worker holds).", labels=["queue"]
        )
        for queue, depth in depths.items():
            queue_depth.add_metric([queue], depth)
        yield queue_depth
        yield GaugeMetricFamily(
            "mairror_ml_workers_ready",
            "ml worker processes with their models warmed up and beating (apps.faces.heartbeats).",
            value=ready,
        )


def worker_metrics_start() -> ThreadingHTTPServer | None:
    """Serve this worker's metrics on WORKER_METRICS_ADDRESS (``host:port``) from a daemon thread; None
    when it is empty, or when there is no PROMETHEUS_MULTIPROC_DIR (the pool's processes would be missing)."""
    address = settings.WORKER_METRICS_ADDRESS
    if not address:
        return None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        logger.error("WORKER_METRICS_ADDRESS is set but PROMETHEUS_MULTIPROC_DIR is not: no worker metrics")
        return None
    host, _, port = address.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), _WorkerMetricsHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    logger.info("worker metrics on http://%s:%d/metrics", host, server.server_address[1])
    return server


class _WorkerMetricsHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.split("?", 1)[0] != "/metrics":
            answer = Scrape(404, b"Not found.\n")
        else:
            answer = scrape(authorization=self.headers.get("Authorization"), live=False)
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format, *args):
        """Quiet: a scrape every few seconds is not worth a log line."""
