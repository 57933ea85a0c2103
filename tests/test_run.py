"""``connector run`` / ``sync`` / ``retry`` as real processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from connector.crm.sample import CrmWriter, manual_example
from tests.support.checkers import parse_eml
from tests.support.cli import ROOT, cli_env, run_cli, write_config


@pytest.fixture
def deployment(tmp_path: Path) -> tuple[Path, CrmWriter, object]:
    """A real-time CRM (the service uses the wall clock), a config and the first invitation."""
    writer = CrmWriter(create_engine(f"sqlite:///{tmp_path / 'crm.db'}"))
    ex = manual_example(writer, start=datetime.now(UTC) + timedelta(days=2))
    cfg = write_config(
        tmp_path / "config.yaml",
        {
            "crm": {"url": f"sqlite:///{tmp_path / 'crm.db'}"},
            "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
            "directory": {"path": str(tmp_path / "outbox")},
            "sync": {"interval_seconds": 0.5, "overlap_seconds": 5},
            "delivery": {"poll_seconds": 0.5},
            "api": {"enabled": False},
            "logging": {"format": "json", "level": "INFO"},
        },
    )
    done = run_cli("--config", str(cfg), "invite", str(ex.meeting), "--as", "Supervisor")
    assert done.returncode == 0, done.stderr
    return cfg, writer, ex


def wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def start_service(cfg: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "connector", "--config", str(cfg), "run"],
        cwd=ROOT,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_service_sends_the_update_and_stops_gracefully_on_sigterm(deployment, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg, writer, ex = deployment
    service = start_service(cfg)
    try:
        writer.update_activity(ex.meeting, location="Кабинет 505")
        wait_for(lambda: len(list((tmp_path / "outbox").glob("*.eml"))) == 2)
        update = max((tmp_path / "outbox").glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
        parsed = parse_eml(update)
        assert (parsed.sequence, parsed.vevent.location.value) == (1, "Кабинет 505")
    finally:
        service.send_signal(signal.SIGTERM)
        _out, err = service.communicate(timeout=30)
    assert service.returncode == 0, err
    events = [json.loads(line).get("event") for line in err.splitlines() if line.startswith("{")]
    assert "service_started" in events and "sync_update" in events
    assert events[-1] == "service_stopped"


def test_second_instance_on_sqlite_refuses_to_start(deployment) -> None:  # type: ignore[no-untyped-def]
    cfg, _, _ = deployment
    first = start_service(cfg)
    try:
        time.sleep(1.0)
        second = run_cli("--config", str(cfg), "--lang", "en", "run", timeout=30)
        assert second.returncode == 2
        assert "Another connector instance already runs on this SQLite store" in second.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=30)
    assert first.returncode == 0


def test_sync_runs_one_cycle(deployment, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg, writer, ex = deployment
    writer.update_activity(ex.meeting, Title="Встреча с клиентом (перенос)")
    done = run_cli("--config", str(cfg), "sync")
    assert done.returncode == 0, done.stderr
    assert "updated=1 messages=1 sent=1" in done.stdout
    assert "updated=0 messages=0" in run_cli("--config", str(cfg), "sync").stdout
    # the next run (cron, a minute later) leads again: it sees the next edit at once
    writer.update_activity(ex.meeting, location="Кабинет 606")
    assert "updated=1 messages=1 sent=1" in run_cli("--config", str(cfg), "sync").stdout


def test_retry_requeues_parked_messages(deployment, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg, writer, ex = deployment
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the outbox folder should be")
    import yaml

    data = yaml.safe_load(cfg.read_text())
    data["directory"]["path"] = str(blocked / "outbox")
    data["delivery"].update({"max_attempts": 1, "retry_max_seconds": 0})
    cfg.write_text(yaml.safe_dump(data))
    writer.update_activity(ex.meeting, location="Кабинет 505")
    assert run_cli("--config", str(cfg), "sync").returncode == 4
    status = json.loads(run_cli("--config", str(cfg), "status", "--json").stdout)
    assert status["meetings"][0]["messages"]["parked"] == 1
    data["directory"]["path"] = str(tmp_path / "outbox")
    cfg.write_text(yaml.safe_dump(data))
    done = run_cli("--config", str(cfg), "retry", str(ex.meeting))
    assert done.returncode == 0 and "requeued=1 sent=1" in done.stdout


def test_discard_gives_up_a_parked_message_and_lets_the_meeting_move_on(
    deployment, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    cfg, writer, ex = deployment
    import yaml

    data = yaml.safe_load(cfg.read_text())
    outbox = data["directory"]["path"]
    data["directory"]["path"] = str(tmp_path / "not-a-folder" / "outbox")
    (tmp_path / "not-a-folder").write_text("a file where a folder should be")
    data["delivery"].update({"max_attempts": 1, "retry_max_seconds": 0})
    cfg.write_text(yaml.safe_dump(data))
    writer.update_activity(ex.meeting, location="Кабинет 505")
    assert run_cli("--config", str(cfg), "sync").returncode == 4  # the update is parked
    data["directory"]["path"] = outbox
    cfg.write_text(yaml.safe_dump(data))
    writer.remove_participant(ex.meeting, ex.dasha)
    assert run_cli("--config", str(cfg), "sync", "--full").returncode == 0
    log = json.loads(run_cli("--config", str(cfg), "status", str(ex.meeting), "--json").stdout)
    states = {m["method"]: (m["id"], m["status"]) for m in log["messages"][1:]}
    (parked, _), (held, waiting) = states["REQUEST"], states["CANCEL"]
    assert states["REQUEST"][1] == "parked" and waiting == "pending"  # held behind it
    done = run_cli("--config", str(cfg), "discard", str(parked), "999999")
    assert done.returncode == 2, done.stderr
    assert f"discarded={parked} not_parked_or_failed=999999" in done.stdout
    log = json.loads(run_cli("--config", str(cfg), "status", str(ex.meeting), "--json").stdout)
    assert {m["id"]: m["status"] for m in log["messages"]}[held] == "sent"
    methods = sorted(parse_eml(p).method for p in Path(outbox).glob("*.eml"))
    assert methods == ["CANCEL", "REQUEST"]  # the first invitation and the CANCEL, no update
