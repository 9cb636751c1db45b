"""Deployment files agree with the service: the Grafana dashboard queries only metrics bertserve
exports, compose wires the Redis cache and Prometheus, and the README's settings table is current."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.core import Metric

from service.metrics import Metrics
from service.settings import Settings
from service.settings_doc import settings_table

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "bertserve.json"

#: PromQL functions, aggregations and keywords the dashboard may use.
PROMQL_WORDS = frozenset(
    [
        "sum",
        "avg",
        "min",
        "max",
        "count",
        "rate",
        "irate",
        "increase",
        "histogram_quantile",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "bool",
        "clamp_min",
        "clamp_max",
        "abs",
        "topk",
        "bottomk",
        "label_replace",
    ]
)
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "info": ("_info",)}


def exported_names() -> set[str]:
    """Every series name the service's registry can expose."""
    names: set[str] = set()
    family: Metric
    for family in Metrics().registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


def referenced_names(expr: str) -> set[str]:
    """Identifiers of a PromQL expression that are neither functions, keywords nor label names."""
    stripped = re.sub(r'"[^"]*"', "", expr)  # strings
    stripped = re.sub(r"\{[^}]*\}", "", stripped)  # label matchers
    stripped = re.sub(r"\[[^\]]*\]", "", stripped)  # ranges
    stripped = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", stripped)  # grouping labels
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", stripped))
    return {word for word in words if word not in PROMQL_WORDS}


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_dashboard_queries_only_exported_metrics() -> None:
    exported = exported_names()
    assert "bertserve_requests_total" in exported
    assert "bertserve_request_duration_seconds_bucket" in exported
    exprs = dashboard_exprs()
    assert exprs
    for expr in exprs:
        names = referenced_names(expr)
        assert names, expr
        assert names <= exported, (expr, names - exported)


def test_a_wrong_metric_name_is_caught() -> None:
    names = referenced_names('sum by (route) (rate(bertserve_request_total{route="/embed"}[1m]))')
    assert names == {"bertserve_request_total"}
    assert not names <= exported_names()


def test_dashboard_has_the_required_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for needed in ("throughput", "latency percentiles", "batch size", "queue depth", "cache hit ratio"):
        assert needed in titles, needed
    exprs = " ".join(dashboard_exprs())
    assert "histogram_quantile(0.99" in exprs


def test_compose_wires_redis_and_prometheus() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"bertserve", "bertserve-2", "haproxy", "redis", "prometheus", "grafana"}
    for replica in ("bertserve", "bertserve-2"):
        env = services[replica]["environment"]
        assert env["BERTSERVE_CACHE"] == "memory+redis"
        assert env["BERTSERVE_REDIS_URL"].startswith("redis://redis:6379")
        assert services[replica]["image"] == services["bertserve"]["image"]
    config = yaml.safe_load((ROOT / "docker" / "prometheus.yml").read_text(encoding="utf-8"))
    (job,) = config["scrape_configs"]
    assert job["dns_sd_configs"][0]["names"] == ["bertserve", "bertserve-2"]
    host_config = yaml.safe_load((ROOT / "docker" / "prometheus.host.yml").read_text(encoding="utf-8"))
    (job,) = host_config["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8080", "127.0.0.1:8081"]
    host = (ROOT / "docker-compose.host.yml").read_text(encoding="utf-8")
    override = yaml.load(host, Loader=_ComposeLoader)
    assert all(service["network_mode"] == "host" for service in override["services"].values())
    assert set(override["services"]) == set(services)


def test_compose_scaled_profile_puts_two_replicas_behind_haproxy() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    scaled = {name for name, service in services.items() if "scaled" in service.get("profiles", [])}
    assert scaled == {"bertserve-2", "haproxy"}
    balancer = services["haproxy"]
    assert "./deploy/haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in balancer["volumes"]
    assert balancer["environment"] == {"BERTSERVE_1": "bertserve:8080", "BERTSERVE_2": "bertserve-2:8080"}
    # The stop timeout covers the drain delay and the grace period.
    fields = Settings.model_fields
    needed = fields["shutdown_delay_s"].default + fields["shutdown_grace_s"].default
    for replica in ("bertserve", "bertserve-2"):
        assert int(services[replica]["stop_grace_period"].rstrip("s")) > needed


class _ComposeLoader(yaml.SafeLoader):
    """Reads compose's ``!reset`` and ``!override`` merge tags as plain values."""


_ComposeLoader.add_constructor("!reset", lambda loader, node: None)
_ComposeLoader.add_constructor(
    "!override",
    lambda loader, node: loader.construct_sequence(node),  # type: ignore[arg-type]
)


def test_readme_settings_table_is_current() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert settings_table() in readme, "regenerate it: python -m service.settings_doc"
