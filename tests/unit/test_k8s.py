"""deploy/k8s: every manifest valid against the Kubernetes OpenAPI schemas (vendored by the PyPI package
kubernetes-validate, no network), and consistent with the service (probes, ports, settings)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service.settings import Settings

pytestmark = pytest.mark.unit

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
VERSION = "1.37.0"


def documents() -> list[dict[str, Any]]:
    """Every YAML document under deploy/k8s."""
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc)
    return docs


def find(kind: str, name: str) -> dict[str, Any]:
    """The one manifest of ``kind`` named ``name``."""
    matches = [d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, (kind, name)
    return matches[0]


def validate(doc: dict[str, Any]) -> None:
    """Strict schema validation (unknown fields are errors)."""
    kubernetes_validate.validate(doc, VERSION, strict=True)


def test_every_manifest_is_valid() -> None:
    docs = documents()
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert kinds == [
        ("ConfigMap", "bertserve"),
        ("Deployment", "bertserve"),
        ("Deployment", "bertserve-redis"),
        ("HorizontalPodAutoscaler", "bertserve"),
        ("Service", "bertserve"),
        ("Service", "bertserve-redis"),
    ]
    for doc in docs:
        validate(doc)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "replicas"), "two"),  # wrong type
        (("spec", "template", "spec", "containers", 0, "ports", 0, "containerPort"), "http"),
        (("spec", "template", "spec", "containers", 0, "livenessProbe", "httpGet", "pathh"), "/x"),
    ],
)
def test_a_broken_manifest_fails(path: tuple[str | int, ...], value: object) -> None:
    broken = copy.deepcopy(find("Deployment", "bertserve"))
    target: Any = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)


def test_deployment_probes_ports_and_scraping() -> None:
    deployment = find("Deployment", "bertserve")
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["startupProbe"]["httpGet"]["path"] == "/ready"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["resources"]["requests"]["cpu"]
    assert container["ports"][0]["containerPort"] == 8080
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    config = find("ConfigMap", "bertserve")["data"]
    stopping = float(config["BERTSERVE_SHUTDOWN_DELAY_S"]) + float(config["BERTSERVE_SHUTDOWN_GRACE_S"])
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pause + stopping < pod["spec"]["terminationGracePeriodSeconds"]
    labels = pod["metadata"]["labels"]
    assert find("Service", "bertserve")["spec"]["selector"].items() <= labels.items()
    assert find("HorizontalPodAutoscaler", "bertserve")["spec"]["scaleTargetRef"]["name"] == "bertserve"


def test_configmap_keys_are_settings() -> None:
    config = find("ConfigMap", "bertserve")["data"]
    known = {f"BERTSERVE_{name.upper()}" for name in Settings.model_fields}
    assert set(config) <= known, set(config) - known
    assert config["BERTSERVE_CACHE"] in ("redis", "memory+redis")
    redis_host = config["BERTSERVE_REDIS_URL"].split("//")[1].split(":")[0]
    assert find("Service", redis_host)["spec"]["ports"][0]["port"] == 6379
    # Every value is a valid setting.
    Settings(**{key.removeprefix("BERTSERVE_").lower(): value for key, value in config.items()})
