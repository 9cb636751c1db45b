"""The load balancer configurations in deploy/ are valid for the real haproxy and nginx, route by /ready
(haproxy), and retry only requests that never reached a replica."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from service.settings import Settings
from tests.redis_server import require_binary

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
HAPROXY = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
NGINX = ROOT / "deploy" / "nginx" / "nginx.conf"


def haproxy_check(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``haproxy -c -f config``: parses the file and resolves every address, starts nothing."""
    command = [require_binary("haproxy"), "-c", "-f", str(config)]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, env=env, check=False)


def nginx_check(config: Path, prefix: Path) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on ``config`` with its runtime files under ``prefix``."""
    command = [require_binary("nginx"), "-t", "-c", str(config), "-p", str(prefix), "-e", "stderr"]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def directives(config: Path, name: str) -> list[str]:
    """The arguments of every line of ``config`` that starts with ``name`` (comments dropped)."""
    lines = (line.split("#", 1)[0].strip() for line in config.read_text(encoding="utf-8").splitlines())
    return [line[len(name) :].strip() for line in lines if re.match(rf"{re.escape(name)}(\s|$)", line)]


def timeout_seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m)?", value.strip(" ;")).groups()  # type: ignore[union-attr]
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[unit]


def test_haproxy_config_is_valid_with_defaults_and_with_addresses_set(tmp_path: Path) -> None:
    assert haproxy_check(HAPROXY).returncode == 0
    env = {"BERTSERVE_1": "127.0.0.1:9001", "BERTSERVE_2": "127.0.0.1:9002", "HAPROXY_RETRIES": "0"}
    checked = haproxy_check(HAPROXY, env)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_haproxy_check_rejects_a_broken_config(tmp_path: Path) -> None:
    broken = tmp_path / "haproxy.cfg"
    broken.write_text(
        HAPROXY.read_text(encoding="utf-8").replace("retry-on conn-failure", "retry-on 5xx-ish")
    )
    assert haproxy_check(broken).returncode != 0


def test_haproxy_routes_by_ready_and_retries_only_undelivered_requests() -> None:
    assert directives(HAPROXY, "http-check send") == ["meth GET uri /ready"]
    assert directives(HAPROXY, "http-check expect") == ["status 200"]
    (retry_on,) = directives(HAPROXY, "retry-on")
    assert set(retry_on.split()) <= {"conn-failure", "empty-response"}, "never retry a status a replica sent"
    assert not directives(HAPROXY, "observe"), "5xx answers (429, 504) must not mark a replica down"
    # A replica leaves the rotation (fall x inter) well within the default drain delay.
    (server_defaults,) = directives(HAPROXY, "default-server")
    inter = timeout_seconds(re.search(r"\binter (\S+)", server_defaults).group(1))  # type: ignore[union-attr]
    fall = int(re.search(r"\bfall (\d+)", server_defaults).group(1))  # type: ignore[union-attr]
    assert inter * fall < Settings.model_fields["shutdown_delay_s"].default
    (server_timeout,) = directives(HAPROXY, "timeout server")
    assert timeout_seconds(server_timeout) > Settings.model_fields["request_timeout_s"].default


def test_nginx_config_is_valid_and_retries_only_undelivered_requests(tmp_path: Path) -> None:
    checked = nginx_check(NGINX, tmp_path)
    assert checked.returncode == 0, checked.stderr
    (next_upstream,) = directives(NGINX, "proxy_next_upstream")
    assert set(next_upstream.rstrip(";").split()) <= {"error", "timeout"}
    (read_timeout,) = directives(NGINX, "proxy_read_timeout")
    assert timeout_seconds(read_timeout) > Settings.model_fields["request_timeout_s"].default
    broken = tmp_path / "nginx.conf"
    broken.write_text(NGINX.read_text(encoding="utf-8").replace("least_conn;", "least_conn"))
    assert nginx_check(broken, tmp_path).returncode != 0
