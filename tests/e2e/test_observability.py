"""Metrics of a real server after real traffic, and a real Prometheus scraping it."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.common import free_port
from tests.e2e.conftest import Server
from tests.redis_server import require_binary

pytestmark = pytest.mark.e2e

EMBED = "all-MiniLM-L6-v2"
CLASSIFY = "minilm-sentiment"


def scrape(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_move_with_traffic(server: Server) -> None:
    before = scrape(server)
    stamp = str(time.time_ns())
    for i in range(4):
        assert (
            httpx.post(f"{server.url}/embed", json={"inputs": f"metrics probe {stamp} {i}"}).status_code
            == 200
        )
    assert (
        httpx.post(
            f"{server.url}/embed", json={"inputs": [f"batch {stamp} a", f"batch {stamp} b"]}
        ).status_code
        == 200
    )
    assert (
        httpx.post(f"{server.url}/embed", json={"inputs": f"metrics probe {stamp} 0"}).status_code == 200
    )  # a hit
    assert httpx.post(f"{server.url}/classify", json={"inputs": f"great film {stamp}"}).status_code == 200
    assert httpx.post(f"{server.url}/embed", json={"inputs": []}).status_code == 400
    long_text = " ".join(["word"] * 400) + f" {stamp}"  # over the model's 256-token limit
    assert httpx.post(f"{server.url}/embed", json={"inputs": long_text}).status_code == 200
    after = scrape(server)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("bertserve_requests_total", route="/embed", model=EMBED, status="200") == 7
    assert delta("bertserve_requests_total", route="/classify", model=CLASSIFY, status="200") == 1
    assert delta("bertserve_requests_total", route="/embed", model="", status="400") == 1
    assert delta("bertserve_request_duration_seconds_count", route="/embed") == 8
    assert delta("bertserve_input_tokens_count", model=EMBED) == 7  # 4 + 2 + 1 computed; the hit costs none
    assert delta("bertserve_truncated_inputs_total", model=EMBED) == 1
    assert delta("bertserve_cache_hits_total", tier="memory") == 1
    assert delta("bertserve_cache_misses_total", tier="memory") == 8
    assert delta("bertserve_batch_size_count", model=EMBED) >= 6
    assert delta("bertserve_batch_size_sum", model=EMBED) == 7
    assert delta("bertserve_batch_tokens_count", model=EMBED) >= 6
    assert delta("bertserve_batch_padding_ratio_count", model=EMBED) >= 6
    for name in ("tokenization", "queue", "inference"):
        assert delta(f"bertserve_{name}_duration_seconds_count", model=EMBED) == 6
    assert value(after, "bertserve_model_load_seconds", model=EMBED) > 0
    assert value(after, "bertserve_ready") == 1
    assert value(after, "bertserve_queue_items", model=EMBED) == 0
    assert value(after, "bertserve_requests_in_flight", model=EMBED) == 0
    assert value(after, "bertserve_cache_entries") > 0
    assert value(after, "bertserve_cache_bytes") > 0
    info = [labels for (name, labels) in after if name == "bertserve_model_info"]
    assert {dict(labels)["model"] for labels in info} == {EMBED, CLASSIFY, "minilm-reranker"}
    assert all(dict(labels)["runtime"] in ("onnx", "torch") for labels in info)


def test_request_ids_and_json_access_lines(server: Server) -> None:
    secret = f"private text {time.time_ns()}"
    given = httpx.post(f"{server.url}/embed", json={"inputs": secret}, headers={"X-Request-ID": "e2e-id.1"})
    assert given.headers["x-request-id"] == "e2e-id.1"
    made = httpx.post(f"{server.url}/classify", json={"inputs": "fine"}).headers["x-request-id"]
    assert len(made) == 32
    deadline = time.monotonic() + 10
    lines: list[dict[str, object]] = []
    while time.monotonic() < deadline and not any(line.get("request_id") == made for line in lines):
        time.sleep(0.2)
        text = server.log.read_text(encoding="utf-8")
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert secret not in server.log.read_text(encoding="utf-8")
    (embed,) = [line for line in lines if line.get("request_id") == "e2e-id.1"]
    assert embed["route"] == "/embed"
    assert embed["model"] == EMBED
    assert embed["status"] == 200
    for field in ("items", "tokens", "duration_ms", "ts", "level"):
        assert field in embed, field
    (classify,) = [line for line in lines if line.get("request_id") == made]
    assert classify["route"] == "/classify"


def test_prometheus_scrapes_bertserve(server: Server, tmp_path: Path) -> None:
    binary = require_binary("prometheus")
    target = server.url.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: bertserve\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        httpx.post(f"{server.url}/embed", json={"inputs": "seen by prometheus"})
        query = f"http://127.0.0.1:{port}/api/v1/query"
        deadline = time.monotonic() + 60
        result: list[dict[str, object]] = []
        while time.monotonic() < deadline and not result:
            time.sleep(1)
            try:
                body = httpx.get(query, params={"query": 'bertserve_requests_total{route="/embed"}'}).json()
            except httpx.TransportError:
                continue
            result = body.get("data", {}).get("result", [])
        assert result, "prometheus never returned a bertserve series"
        labels = result[0]["metric"]
        assert isinstance(labels, dict)
        assert labels["job"] == "bertserve"
        assert labels["instance"] == target
    finally:
        process.terminate()
        process.wait(timeout=30)
