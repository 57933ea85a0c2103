#!/usr/bin/env python3
"""Audit the locked runtime dependencies (``requirements.lock``) for known vulnerabilities.

``python3 .ci/audit_deps.py``           audit the lock (CI runs this)
``python3 .ci/audit_deps.py --update``  re-resolve the project's runtime dependencies into the lock

The audit runs pip-audit first. On these build machines pip-audit's services are out of reach
(api.osv.dev does not resolve; the package index answers only its per-project JSON, not the
per-release one pip-audit asks for, so it reports every package as "not found"). In that case
the script falls back to what the index does serve: for each locked package it reads
``/pypi/<name>/json`` and checks the vulnerabilities the index lists against the locked version
(a vulnerability counts when a ``fixed_in`` release is newer than the locked one). Limit of the
fallback: the index lists vulnerabilities of the newest release only, so an advisory that was
fixed before the newest release is not seen; the script names every package whose lock is older
than the newest release, so the lock can be refreshed with ``--update``.

Exit codes: 0 nothing known, 1 a locked version is affected, 2 the audit could not run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
INDEX = "https://pypi.org/pypi/{name}/json"


def read_lock() -> list[tuple[str, str]]:
    pins = []
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins.append((name.strip(), version.strip()))
    return pins


def update_lock() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # noqa: S603
        report = Path(tmp) / "report.json"
        subprocess.run(  # noqa: S603 - our own venv's pip
            [
                str(venv / "bin" / "pip"),
                "install",
                "--quiet",
                "--dry-run",
                "--ignore-installed",
                "--report",
                str(report),
                str(ROOT),
            ],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        data = json.loads(report.read_text(encoding="utf-8"))
    pins = sorted(
        (item["metadata"]["name"], item["metadata"]["version"])
        for item in data["install"]
        if item["metadata"]["name"] != "bpmsoft-invite-connector"
    )
    lines = ["# Runtime dependencies of the connector, resolved by .ci/audit_deps.py --update."]
    lines += [f"{name}=={version}" for name, version in pins]
    LOCK.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"locked {len(pins)} packages in {LOCK.name}")
    return 0


def pip_audit() -> int | None:
    """pip-audit's verdict, or None when its services cannot be reached from here."""
    tool = shutil.which("pip-audit")
    if tool is None:
        return None
    done = subprocess.run(  # noqa: S603 - pip-audit found on PATH
        [
            tool,
            "-r",
            str(LOCK),
            "--no-deps",
            "--disable-pip",
            "--progress-spinner",
            "off",
            "-f",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        return None
    deps = result.get("dependencies", [])
    if not deps or all("skip_reason" in d for d in deps):
        return None
    affected = [d for d in deps if d.get("vulns")]
    for d in affected:
        for v in d["vulns"]:
            print(f"VULNERABLE {d['name']}=={d['version']}: {v['id']} fixed in {v['fix_versions']}")
    print(f"pip-audit: {len(deps)} packages audited, {len(affected)} affected")
    return 1 if affected else 0


def fallback() -> int:
    pins = read_lock()
    affected = 0
    stale = []
    for name, locked in pins:
        try:
            with urllib.request.urlopen(INDEX.format(name=name), timeout=60) as answer:  # noqa: S310
                data = json.load(answer)
        except OSError as exc:
            print(f"cannot reach the package index for {name}: {exc}")
            return 2
        newest = data["info"]["version"]
        if locked not in data.get("releases", {}):
            print(f"UNKNOWN {name}=={locked}: not a release on the index")
            return 2
        for vuln in data.get("vulnerabilities", []):
            fixes = []
            for fixed in vuln.get("fixed_in", []):
                try:
                    fixes.append(Version(fixed))
                except InvalidVersion:
                    continue
            if not fixes or any(Version(locked) < f for f in fixes):
                affected += 1
                fixed = vuln.get("fixed_in")
                print(f"VULNERABLE {name}=={locked}: {vuln.get('id')} fixed in {fixed}")
        if Version(locked) < Version(newest):
            stale.append(f"{name} {locked} < {newest}")
    print(f"index audit: {len(pins)} packages, {affected} affected")
    if stale:
        print("older than the newest release (advisories fixed before it are not visible here):")
        for line in stale:
            print(f"  {line}")
    return 1 if affected else 0


def main() -> int:
    if "--update" in sys.argv[1:]:
        return update_lock()
    verdict = pip_audit()
    if verdict is not None:
        return verdict
    print("pip-audit's vulnerability services are out of reach; using the index's own data")
    return fallback()


if __name__ == "__main__":
    raise SystemExit(main())
