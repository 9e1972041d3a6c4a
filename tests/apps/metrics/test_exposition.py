"""A worker's own metrics endpoint (WORKER_METRICS_ADDRESS), in this process: the same token as the web's,
only ``/metrics``, and only with a metrics folder (without one its pool's processes would be missing).
What it serves from a real worker is in tests/integration/test_metrics.py."""

import httpx
import pytest

from apps.metrics.exposition import worker_metrics_start
from devtools import devstack

TOKEN = "worker-metrics-token"


@pytest.fixture
def serve(settings, monkeypatch, tmp_path):
    """Start the endpoint on a free port; yields its URL, shuts it down after."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    settings.WORKER_METRICS_ADDRESS = f"127.0.0.1:{devstack.free_port()}"
    settings.METRICS_TOKEN = TOKEN
    servers = []

    def start() -> str:
        servers.append(worker_metrics_start())
        return f"http://{settings.WORKER_METRICS_ADDRESS}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_it_wants_the_token_and_answers_metrics_only(serve, settings):
    url = serve()

    assert httpx.get(f"{url}/metrics").status_code == 401
    assert httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    scraped = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert scraped.status_code == 200
    assert scraped.headers["Content-Type"].startswith("text/plain; version=")
    assert httpx.get(f"{url}/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404
    settings.METRICS_TOKEN = ""
    assert httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


def test_it_is_not_served_without_an_address_or_a_metrics_folder(settings, monkeypatch, caplog):
    settings.WORKER_METRICS_ADDRESS = ""
    assert worker_metrics_start() is None

    settings.WORKER_METRICS_ADDRESS = f"127.0.0.1:{devstack.free_port()}"
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert worker_metrics_start() is None
    assert "PROMETHEUS_MULTIPROC_DIR is not" in caplog.text
