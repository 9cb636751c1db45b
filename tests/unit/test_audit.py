"""The dependency audit's own logic: lock and ignore files, and how findings are sorted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.audit import Report, _record, canonical, read_ignores, read_lock

pytestmark = pytest.mark.unit


def test_lock_names_are_canonical(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("# header\nPyYAML==6.0.2\ntyping_extensions==4.16.0\nzope.interface==7.1  # note\n")
    assert read_lock(lock) == {"pyyaml": "6.0.2", "typing-extensions": "4.16.0", "zope-interface": "7.1"}
    assert canonical("Foo__Bar.baz") == "foo-bar-baz"


def test_every_ignored_id_needs_a_reason(tmp_path: Path) -> None:
    ignores = tmp_path / "audit-ignore.txt"
    ignores.write_text("# accepted\nPYSEC-2024-1  # torch is pinned by the platform\n")
    assert read_ignores(ignores) == {"PYSEC-2024-1": "torch is pinned by the platform"}
    ignores.write_text("GHSA-xxxx-yyyy\n")
    with pytest.raises(SystemExit, match="needs a reason"):
        read_ignores(ignores)


def test_findings_are_ignored_by_id_or_alias() -> None:
    report = Report()
    ignores = {"CVE-2025-1": "accepted"}
    _record(report, ignores, "torch", "2.13.0", "PYSEC-1", ["CVE-2025-1"], ["2.14.0"])
    _record(report, ignores, "jinja2", "3.1.0", "GHSA-2", [], [])
    assert report.ignored == [("torch", "2.13.0", "PYSEC-1", "2.14.0")]
    assert report.vulnerable == [("jinja2", "3.1.0", "GHSA-2", "no fix")]


def test_the_repository_files_parse() -> None:
    root = Path(__file__).resolve().parents[2]
    assert read_lock(root / "requirements.lock")["fastapi"]
    read_ignores(root / "audit-ignore.txt")
