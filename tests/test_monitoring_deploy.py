"""The monitoring deployment: compose's optional prometheus and grafana services, their config files, and a
Grafana dashboard whose every query names a metric the live service really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TenantCtx

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "memcubed.json"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_monitoring_services_sit_behind_a_profile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {name: s.get("profiles") for name, s in services.items()} == {
        "lb": None, "api": None, "worker": None, "postgres": None, "redis": None,
        "prometheus": ["monitoring"], "grafana": ["monitoring"]}
    for name in ("prometheus", "grafana"):
        assert services[name]["healthcheck"]["test"]
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"


def test_prometheus_scrapes_the_api_metrics(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    # Every replica, found through Docker's DNS, on the port each one exposes.
    assert (job["metrics_path"], job["dns_sd_configs"]) == ("/metrics", [{"names": ["api"], "type": "A", "port": 8080}])
    assert "8080" in [str(p) for p in compose["services"]["api"]["expose"]]


def test_dashboard_queries_name_only_exported_metrics(tenant: TenantCtx) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    datasource = yaml.safe_load(
        (ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uids = {panel["datasource"]["uid"] for panel in dashboard["panels"]}
    assert uids == {datasource["datasources"][0]["uid"]}
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"memcubed_[a-z_]+", target["expr"])}
    # A search and a request make every family appear (counters and histograms have no sample before).
    cube = tenant.http.post("/v1/cubes", json={"name": "dash"}).json()["id"]
    tenant.http.post("/v1/search", json={"query": "x", "cube_ids": [cube]})
    tenant.http.post("/v1/search", json={"query": "x", "cube_ids": [cube], "budget": "low"})
    families = list(text_string_to_metric_families(tenant.http.get("/metrics").text))
    exported = {f.name for f in families} | {sample.name for f in families for sample in f.samples}
    assert sorted(used - exported) == []
    assert len(used) == 15
