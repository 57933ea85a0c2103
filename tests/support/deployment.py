"""A deployment for process-level tests: a BPMSoft-shaped CRM on the wall clock, a config file
sending through a fake Graph running as its own process, and helpers to run and kill real
``connector`` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from connector.crm.sample import CrmWriter, ManualExample, manual_example
from tests.support.cli import ROOT, cli_env, run_cli, write_config
from tests.support.fake_graph import FakeGraphProcess
from tests.support.graph_env import CLIENT_ID, CLIENT_SECRET, FALLBACK, PERSONAL, STAS

FAKE_SETUP: dict[str, Any] = {
    "apps": [{"client_id": CLIENT_ID, "secret": CLIENT_SECRET}],
    "mailboxes": [
        {"address": PERSONAL, "display_name": "Супервизоров Иван"},
        {"address": FALLBACK, "display_name": "Приглашения"},
        {"address": STAS, "display_name": "Стасов Станислав"},
    ],
}


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


@dataclass
class Deployment:
    folder: Path
    config: Path
    writer: CrmWriter
    ex: ManualExample
    fake: FakeGraphProcess

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return run_cli("--config", str(self.config), *args, env=cli_env(**env))

    def start(self, name: str = "run", **env: str) -> subprocess.Popen[str]:
        log = open(self.folder / f"{name}.log", "a", encoding="utf-8")  # noqa: SIM115
        return subprocess.Popen(
            [sys.executable, "-m", "connector", "--config", str(self.config), "run"],
            cwd=ROOT,
            env=cli_env(**env),
            stdout=log,
            stderr=log,
            text=True,
        )

    @staticmethod
    def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
        if process.poll() is None:
            os.kill(process.pid, sig)
        return process.wait(timeout=60)

    def messages(self) -> list[dict[str, Any]]:
        return self.fake.client.messages()

    def calendars(self) -> dict[str, Any]:
        return self.fake.client.calendars()


def make_deployment(
    folder: Path, fake: FakeGraphProcess, state_url: str | None = None, **sections: Any
) -> Deployment:
    folder.mkdir(parents=True, exist_ok=True)
    writer = CrmWriter(create_engine(f"sqlite:///{folder / 'crm.db'}"))
    ex = manual_example(writer, start=datetime.now(UTC) + timedelta(days=2))
    data: dict[str, Any] = {
        "crm": {"url": f"sqlite:///{folder / 'crm.db'}"},
        "state": {"url": state_url or f"sqlite:///{folder / 'state.db'}"},
        "transport": "graph",
        "graph": fake.graph_section(client_id=CLIENT_ID, client_secret=CLIENT_SECRET),
        "sync": {"interval_seconds": 0.3, "overlap_seconds": 5, "reconcile_minutes": 0.02},
        "delivery": {"poll_seconds": 0.2, "claim_seconds": 5, "retry_max_seconds": 5},
        "api": {"enabled": False},
        "logging": {"format": "kv", "level": "INFO"},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    config = write_config(folder / "config.yaml", data)
    return Deployment(folder, config, writer, ex, fake)
