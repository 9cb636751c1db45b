"""Audit the locked dependencies (requirements.lock) for known vulnerabilities: ``make audit``.

1. ``pip-audit -r requirements.lock --no-deps --disable-pip`` against PyPI's vulnerability feed (the
   per-release JSON API), retried with back-off on network errors; still failing after the retries, the
   audit fails: a red CI says "no audit happened", it never passes silently.
2. A package that feed does not know (some PyPI mirrors serve only the per-project JSON, not the
   per-release one) is looked up in the per-project JSON, whose ``vulnerabilities`` are those of the
   latest release: exact when the pin is the latest release, else the package is reported as unaudited.
3. Findings listed in ``audit-ignore.txt`` (``ID  # reason``, one per line) are reported but do not
   fail. Any other finding fails. So does an audit that covered less than half the packages.

Exit status: 0 clean (or only ignored findings), 1 vulnerable, 2 the audit could not be done.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ATTEMPTS = 3
BACKOFF_S = (10, 30)
PYPI_PROJECT = "https://pypi.org/pypi/{name}/json"


@dataclass
class Report:
    """What the audit found: vulnerabilities (package, version, id, fixed in), ignored ones, gaps."""

    audited: int = 0
    vulnerable: list[tuple[str, str, str, str]] = field(default_factory=list)
    ignored: list[tuple[str, str, str, str]] = field(default_factory=list)
    unaudited: list[tuple[str, str]] = field(default_factory=list)


def read_ignores(path: Path) -> dict[str, str]:
    """Vulnerability id -> reason, from the ignore file (every id must have a reason)."""
    ignores: dict[str, str] = {}
    if not path.is_file():
        return ignores
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        vuln_id, _, reason = line.partition("#")
        if not reason.strip():
            raise SystemExit(f"{path}:{number}: {vuln_id.strip()} needs a reason after '#'")
        ignores[vuln_id.strip()] = reason.strip()
    return ignores


def canonical(name: str) -> str:
    """PEP 503 name: lower case, runs of - _ . as one -."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """Canonical package name -> pinned version."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, _, version = line.partition("==")
            pins[canonical(name.strip())] = version.strip()
    return pins


def run_pip_audit(lock: Path) -> dict[str, Any]:
    """pip-audit's JSON report; retried on network errors, SystemExit(2) after the last attempt."""
    command = [
        *[sys.executable, "-m", "pip_audit", "-r", str(lock), "--no-deps", "--disable-pip"],
        *["--vulnerability-service", "pypi", "--format", "json", "--progress-spinner", "off"],
    ]
    for attempt in range(ATTEMPTS):
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        try:
            report: dict[str, Any] = json.loads(result.stdout)
            return report
        except ValueError:
            tail = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
            print(f"audit: pip-audit attempt {attempt + 1}/{ATTEMPTS} failed: {tail}", file=sys.stderr)
        if attempt + 1 < ATTEMPTS:
            time.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
    raise SystemExit("audit: NOT DONE: the vulnerability feed could not be reached (see above)")


def project_vulnerabilities(name: str) -> tuple[str, list[dict[str, Any]]]:
    """Latest release and its vulnerabilities, from PyPI's per-project JSON (retried once)."""
    for attempt in range(2):
        try:
            with urllib.request.urlopen(PYPI_PROJECT.format(name=name), timeout=60) as response:
                data = json.load(response)
            return str(data["info"]["version"]), list(data.get("vulnerabilities") or [])
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return "", []
            error: Exception = exc
        except (OSError, ValueError, KeyError) as exc:
            error = exc
        if attempt == 0:
            time.sleep(BACKOFF_S[0])
    raise SystemExit(f"audit: NOT DONE: PyPI project data for {name} unavailable ({error})")


def audit(lock: Path, ignores: dict[str, str]) -> Report:
    """Run both steps and collect the findings."""
    pins = read_lock(lock)
    report = Report()
    for dependency in run_pip_audit(lock)["dependencies"]:
        name = canonical(dependency["name"])
        if "skip_reason" not in dependency:
            report.audited += 1
            for vuln in dependency.get("vulns", []):
                _record(
                    report,
                    ignores,
                    name,
                    dependency["version"],
                    vuln["id"],
                    vuln.get("aliases", []),
                    vuln.get("fix_versions", []),
                )
            continue
        latest, vulns = project_vulnerabilities(name)
        if latest != pins.get(name):
            reason = "not on PyPI" if not latest else f"pinned {pins.get(name)}, latest {latest}"
            report.unaudited.append((name, reason))
            continue
        report.audited += 1
        for vuln in vulns:
            if not vuln.get("withdrawn"):
                _record(
                    report,
                    ignores,
                    name,
                    latest,
                    vuln["id"],
                    vuln.get("aliases", []),
                    vuln.get("fixed_in", []),
                )
    return report


def _record(
    report: Report,
    ignores: dict[str, str],
    name: str,
    version: str,
    vuln_id: str,
    aliases: list[str],
    fixed: list[str],
) -> None:
    finding = (name, version, vuln_id, ", ".join(fixed) or "no fix")
    ignored = any(alias in ignores for alias in [vuln_id, *aliases])
    (report.ignored if ignored else report.vulnerable).append(finding)


def main(argv: list[str] | None = None) -> int:
    """Print the findings; exit 0, 1 (vulnerable) or 2 (audit not done)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements.lock")
    parser.add_argument("--ignore-file", type=Path, default=ROOT / "audit-ignore.txt")
    args = parser.parse_args(argv)
    ignores = read_ignores(args.ignore_file)
    try:
        report = audit(args.lock, ignores)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    total = report.audited + len(report.unaudited)
    print(f"audit: {report.audited} of {total} locked packages audited")
    for name, version, vuln_id, fixed in report.vulnerable:
        print(f"VULNERABLE  {name} {version}: {vuln_id} (fixed in {fixed})")
    for name, version, vuln_id, fixed in report.ignored:
        print(f"ignored     {name} {version}: {vuln_id} (fixed in {fixed}): {ignores.get(vuln_id, 'alias')}")
    for name, reason in report.unaudited:
        print(f"UNAUDITED   {name}: {reason} (the feed reachable from here has no data for the pin)")
    if report.vulnerable:
        return 1
    if report.audited * 2 < total:
        print("audit: NOT DONE: fewer than half of the packages could be audited", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
