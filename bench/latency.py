"""Benchmark 4: from a CRM edit to the update leaving the connector, in ``connector run`` mode.

A real ``connector run`` process (APScheduler, the configured ``sync.interval_seconds``) works
on a small BPMSoft-shaped PostgreSQL database and writes with the directory transport. Before
it starts, one meeting per planned edit is invited through the real "Send invitation" path.
Then, at moments drawn uniformly at random over the measurement window, the bench changes the
place of one of those meetings (one committed UPDATE, like a user saving the activity) and
notes the time right after the commit. The update has left the connector when its ``.eml``
file (UID hash, SEQUENCE 1, REQUEST) is written: its modification time is the send time.

Expectation for a poller with interval T that runs a cycle of c seconds: edits land at a
uniformly random point between two cycles, so the mean latency is about T/2 + c and the
maximum at most T + c. The cycle times come from the service's own ``sync_cycle`` log events.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml
from sqlalchemy import create_engine

from bench.common import ROOT, Run, log, summary, temporary_database
from connector.app import build_app
from connector.config import parse_config
from connector.crm.sample import CrmWriter, manual_example
from mapping.identity import meeting_uid

DOMAIN = "ivanov.ru"


@dataclass(frozen=True)
class Settings:
    interval: float | None  # None: the default of the config (60 s)
    window: float  # seconds over which the edits are spread
    edits: int


SETTINGS = {
    "smoke": Settings(1.0, 4.0, 3),
    "quick": Settings(2.0, 10.0, 8),
    "full": Settings(None, 600.0, 40),
}


class OutboxWatcher:
    """Notes when each expected file appears (by its modification time)."""

    def __init__(self, folder: Path, prefixes: dict[str, int]) -> None:
        self.folder = folder
        self.prefixes = prefixes
        self.written: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.scan()
            self._stop.wait(0.02)

    def scan(self) -> None:
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return
        for name in names:
            key = self.prefixes.get(name[:22])
            if key is not None and key not in self.written:
                try:
                    self.written[key] = (self.folder / name).stat().st_mtime_ns / 1e9
                except FileNotFoundError:
                    continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.scan()


def _file_prefix(uid: str, sequence: int) -> str:
    """The start of the directory transport's file name for (UID, SEQUENCE, REQUEST)."""
    return f"{hashlib.sha256(uid.encode()).hexdigest()[:8]}-{sequence:04d}-request-"


def _cycle_events(log_text: str) -> list[dict[str, Any]]:
    events = []
    for line in log_text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if item.get("event") == "sync_cycle":
            events.append(item)
    return events


def run(mode: str, out: Path) -> Run:
    settings = SETTINGS[mode]
    result = Run("latency", mode)
    interval = settings.interval
    result.parameters = {
        "interval_seconds": interval if interval is not None else "default (60)",
        "window_seconds": settings.window,
        "edits": settings.edits,
        "transport": "directory",
        "crm": "postgresql",
        "state": "sqlite",
    }
    rng = random.Random(6)
    with temporary_database("latency") as url, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        engine = create_engine(url)
        writer = CrmWriter(engine)
        start = datetime.now(UTC) + timedelta(days=2)
        ex = manual_example(writer, start=start)
        meetings: list[UUID] = []
        for k in range(settings.edits):
            meetings.append(
                writer.activity(
                    f"Встреча {k}",
                    start + timedelta(hours=k),
                    start + timedelta(hours=k, minutes=30),
                    location="Кабинет 404",
                    owner_contact_id=ex.supervisor_contact,
                    participants=[ex.supervisor_contact, ex.denis, ex.dasha, ex.liza],
                )
            )
        sync: dict[str, Any] = {}
        if interval is not None:
            sync["interval_seconds"] = interval
        config_data: dict[str, Any] = {
            "crm": {"url": url},
            "state": {"url": f"sqlite:///{tmp / 'state.db'}"},
            "transport": "directory",
            "directory": {"path": str(tmp / "outbox")},
            "invitations": {"uid_domain": DOMAIN},
            "api": {"enabled": False},
            "logging": {"format": "json", "level": "INFO"},
        }
        if sync:
            config_data["sync"] = sync
        app = build_app(parse_config(config_data))
        try:
            for aid in meetings:  # the first send, through the real path
                sent = app.service.invite(aid, "Supervisor")
                assert sent.delivered, sent
        finally:
            app.close()
        config_path = tmp / "config.yaml"
        config_path.write_text(yaml.safe_dump(config_data, allow_unicode=True))
        prefixes = {_file_prefix(meeting_uid(aid, DOMAIN), 1): k for k, aid in enumerate(meetings)}
        watcher = OutboxWatcher(tmp / "outbox", prefixes)
        watcher.start()
        stderr_path = tmp / "service.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        log(f"latency: starting connector run (interval {interval or 'default'})")
        with stderr_path.open("w") as stderr:
            service = subprocess.Popen(
                [sys.executable, "-m", "connector", "--config", str(config_path), "run"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
            edits: dict[int, float] = {}
            try:
                _wait_for_first_cycle(stderr_path, service, timeout=60)
                began = time.time()
                moments = sorted(rng.uniform(0, settings.window) for _ in meetings)
                log(f"latency: {len(meetings)} edits over {settings.window:.0f} s")
                for k, (aid, moment) in enumerate(zip(meetings, moments, strict=True)):
                    delay = began + moment - time.time()
                    if delay > 0:
                        time.sleep(delay)
                    writer.update_activity(aid, location=f"Переговорная {k}")
                    edits[k] = time.time()
                effective = interval if interval is not None else 60.0
                deadline = time.time() + 2 * effective + 30
                while len(watcher.written) < len(edits) and time.time() < deadline:
                    time.sleep(0.05)
            finally:
                service.send_signal(signal.SIGTERM)
                try:
                    service.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    service.kill()
                    service.wait()
                watcher.stop()
                engine.dispose()
        cycles = _cycle_events(stderr_path.read_text())
    effective = interval if interval is not None else 60.0
    latencies = [watcher.written[k] - edits[k] for k in sorted(edits) if k in watcher.written]
    cycle_seconds = [float(e.get("seconds", 0.0)) for e in cycles]
    stats = summary(latencies)
    cycle_stats = summary(cycle_seconds)
    result.results.append(
        {
            "interval_seconds": effective,
            "edits": len(edits),
            "updates_seen": len(latencies),
            "latency_seconds": stats,
            "latencies": latencies,
            "cycles": len(cycles),
            "cycle_seconds": cycle_stats,
            "expected": {
                "mean_seconds": effective / 2 + cycle_stats.get("mean", 0.0),
                "max_seconds": effective + cycle_stats.get("max", 0.0),
            },
            "service_exit_code": service.returncode,
        }
    )
    if len(latencies) < len(edits):
        result.error = f"only {len(latencies)} of {len(edits)} updates left the connector"
    if latencies:
        result.headline.update(
            {
                "interval_s": effective,
                "mean_s": round(stats["mean"], 2),
                "p50_s": round(stats["p50"], 2),
                "p95_s": round(stats["p95"], 2),
                "max_s": round(stats["max"], 2),
                "expected_mean_s": round(effective / 2 + cycle_stats.get("mean", 0.0), 2),
                "expected_max_s": round(effective + cycle_stats.get("max", 0.0), 2),
            }
        )
        log(
            f"latency: mean {stats['mean']:.2f} s, p50 {stats['p50']:.2f}, "
            f"p95 {stats['p95']:.2f}, max {stats['max']:.2f} (interval {effective:.0f} s, "
            f"cycles {len(cycles)}, cycle mean {cycle_stats.get('mean', 0) * 1000:.0f} ms)"
        )
    return result


def _wait_for_first_cycle(log_path: Path, service: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if service.poll() is not None:
            raise RuntimeError(f"connector run exited early: {log_path.read_text()[-2000:]}")
        if _cycle_events(log_path.read_text()):
            return
        time.sleep(0.1)
    raise RuntimeError("connector run did not complete its first cycle")
