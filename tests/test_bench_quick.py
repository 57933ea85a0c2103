"""The benchmarks must keep running: their cheapest form, as a smoke test (a few seconds).

Numbers are not checked (benchmarks report, they do not fail); shapes and sanity are. The full
quick mode is ``python3 -m bench --quick``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.common import postgres_version
from tests.support.deps import missing


def _result(out: Path, name: str) -> dict:  # type: ignore[type-arg]
    data = json.loads((out / f"{name}.json").read_text())
    assert data["benchmark"] == name and data["mode"] == "smoke"
    assert data["error"] is None, data.get("extra", {}).get("traceback")
    assert data["machine"]["cpu"] and data["machine"]["python"]
    return data


def test_build_cost_smoke(tmp_path: Path) -> None:
    assert main(["--smoke", "--only", "build_cost", "--out", str(tmp_path), "--no-plots"]) == 0
    data = _result(tmp_path, "build_cost")
    rows = {r["attendees"]: r for r in data["results"]}
    assert set(rows) == {1, 10}
    for size, row in rows.items():
        assert row["batched"]["messages"] == 1
        assert row["naive"]["messages"] == size
        assert row["batched"]["builds_per_second"] > 0
        assert row["batched"]["peak_bytes"] > 0
    assert data["headline"]["builds_per_s_10"] > 0


@pytest.mark.postgres
def test_sync_cost_smoke(tmp_path: Path) -> None:
    if postgres_version() is None:
        missing("PostgreSQL at 127.0.0.1:5432", "no connection")
    assert main(["--smoke", "--only", "sync_cost", "--out", str(tmp_path)]) == 0
    data = _result(tmp_path, "sync_cost")
    check = data["extra"]["seed_check"]
    # the seeded UID map is what the real planner would have recorded
    assert check["full_reconcile_updated"] == 0
    assert check["no_change"] == check["sampled"]
    scenarios = data["results"][0]["scenarios"]
    ten = next(s for s in scenarios if s["changed"] == 10 and s["indexes"])
    assert ten["median_run"]["updated"] == 10 and ten["median_run"]["delivered"] == 10
    plans = data["extra"]["plans"]["2000"]["with_indexes"]
    assert not plans["changed_activities"]["summary"]["seq_scan"]
    assert not plans["changed_participants"]["summary"]["seq_scan"]
    assert (tmp_path / "sync_plans.txt").exists()
    assert (tmp_path / "sync_cycle.png").stat().st_size > 0


def test_failing_benchmark_fails_the_command(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import bench.build_cost

    def boom(mode: str, out: Path) -> None:
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(bench.build_cost, "run", boom)
    assert main(["--smoke", "--only", "build_cost", "--out", str(tmp_path), "--no-plots"]) == 1
    data = json.loads((tmp_path / "build_cost.json").read_text())
    assert "broken on purpose" in data["error"]
