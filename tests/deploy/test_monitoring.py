"""The monitoring that docker-compose.yml starts with ``--profile monitoring``: Prometheus scrapes what the
app serves, and the Grafana dashboard asks only for series the app exports (a renamed series would
otherwise leave an empty panel, which nothing else would notice)."""

import json
import re

import pytest
import yaml
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from mairror.settings import BASE_DIR

DEPLOY = BASE_DIR / "deploy"
TOKEN = "deploy-test-token"
# The suffixes Prometheus's text format adds to a family's name.
SUFFIXES = re.compile(r"_(bucket|count|sum|total)$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def prometheus() -> dict:
    return yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())


def test_prometheus_and_grafana_are_optional_services(compose):
    for name in ("prometheus", "grafana"):
        assert compose["services"][name]["profiles"] == ["monitoring"]
    assert all(
        "profiles" not in service
        for name, service in compose["services"].items()
        if name not in ("prometheus", "grafana")
    )
    mounted = compose["services"]["prometheus"]["volumes"] + compose["services"]["grafana"]["volumes"]
    for path in ("prometheus/prometheus.yml", "grafana/provisioning", "grafana/dashboards"):
        assert any(volume.startswith(f"./deploy/{path}:") for volume in mounted), path


def test_prometheus_scrapes_the_web_and_each_worker_with_the_token(compose, prometheus):
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    app = compose["x-app"]["environment"]
    token_file = "/prometheus/metrics-token"

    assert jobs["mairror-web"]["static_configs"] == [{"targets": ["web:8000"]}]
    assert app["ALLOWED_HOSTS"].endswith(",web")  # the Host header of those scrapes
    [workers] = jobs["mairror-worker"]["dns_sd_configs"]
    assert (workers["names"], workers["port"]) == (["worker"], int(app["WORKER_METRICS_ADDRESS"].rsplit(":", 1)[1]))
    for job in jobs.values():
        assert job["authorization"] == {"credentials_file": token_file}
    assert token_file in compose["services"]["prometheus"]["command"][0]
    # Every process of a container writes its metrics to one folder, empty at each start.
    assert compose["x-app"]["tmpfs"] == [app["PROMETHEUS_MULTIPROC_DIR"]]


@pytest.mark.django_db
def test_the_dashboard_asks_only_for_series_the_app_exports(stores, settings):
    settings.METRICS_TOKEN = TOKEN
    scraped = Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    exported = {family.name for family in text_string_to_metric_families(scraped.content.decode())}
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "mairror.json").read_text())
    datasource = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())

    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    asked = {SUFFIXES.sub("", name) for expr in expressions for name in re.findall(r"\bmairror_[a-z_]+", expr)}

    assert asked and asked <= exported, asked - exported
    assert {"mairror_queue_depth", "mairror_photo_duration_seconds", "mairror_photos"} <= asked
    [source] = datasource["datasources"]
    assert all(panel["datasource"]["uid"] == source["uid"] for panel in dashboard["panels"])
