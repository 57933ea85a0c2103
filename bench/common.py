"""Shared pieces of the benchmarks: machine description, result files, PostgreSQL databases,
statement counting and small statistics."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
#: quick and smoke runs write here (ignored by git) unless --out says otherwise
SCRATCH = RESULTS / "tmp"

PG_SERVER = os.environ.get("BENCH_PG_SERVER", "postgresql+psycopg://postgres@127.0.0.1:5432")
PG_ADMIN_DB = os.environ.get("BENCH_PG_DB", "test")

#: smoke: seconds, for the pytest smoke test; quick: CI, under two minutes; full: the real run
MODES = ("smoke", "quick", "full")


def log(message: str) -> None:
    """Progress on stderr (the benchmarks' output is the JSON files)."""
    stamp = datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", flush=True)


# -- the machine -------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def postgres_version() -> str | None:
    try:
        engine = create_engine(f"{PG_SERVER}/{PG_ADMIN_DB}")
        with engine.connect() as conn:
            value = conn.execute(text("SHOW server_version")).scalar()
        engine.dispose()
        return str(value)
    except Exception:
        return None


def machine_info() -> dict[str, Any]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": affinity,
        "ram_gib": _ram_gib(),
        "python": platform.python_version(),
        "postgresql": postgres_version(),
        "os": platform.platform(),
        "packages": {
            name: _version(name)
            for name in ("SQLAlchemy", "psycopg", "icalendar", "Jinja2", "APScheduler")
        },
    }


def git_info() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=30
        )
        return done.stdout.strip()

    # changes to tracked code only: result files and the generated README table do not count
    status = (
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ".",
        ":(exclude)bench/results",
        ":(exclude)bench/README.md",
    )
    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git(*status))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


# -- result files ------------------------------------------------------------------------
@dataclass
class Run:
    """One benchmark run: what it measured, written as ``<out>/<name>.json``."""

    name: str
    mode: str
    parameters: dict[str, Any] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)
    #: flat name -> number, the figures ``compare`` and the README table use
    headline: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    started: float = field(default_factory=time.time)
    #: the machine is shared: the load average when the run started tells how busy it was
    load_at_start: tuple[float, float, float] = field(default_factory=os.getloadavg)
    #: the code that ran: taken when the run starts
    git: dict[str, Any] = field(default_factory=lambda: git_info())

    def payload(self) -> dict[str, Any]:
        return {
            "benchmark": self.name,
            "mode": self.mode,
            "started_at": datetime.fromtimestamp(self.started, UTC).isoformat(timespec="seconds"),
            "seconds": round(time.time() - self.started, 1),
            "machine": machine_info(),
            "load_average": {"start": list(self.load_at_start), "end": list(os.getloadavg())},
            "git": self.git,
            "parameters": self.parameters,
            "results": self.results,
            "headline": self.headline,
            "notes": self.notes,
            "extra": self.extra,
            "error": self.error,
        }

    def write(self, out: Path) -> Path:
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{self.name}.json"
        path.write_text(json.dumps(self.payload(), indent=2, ensure_ascii=False) + "\n")
        return path


def load_results(directory: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "benchmark" in data:
            found[str(data["benchmark"])] = data
    return found


# -- PostgreSQL --------------------------------------------------------------------------
@contextmanager
def temporary_database(prefix: str) -> Iterator[str]:
    """A database of our own, ``bench_<prefix>_<pid>_<random>``; dropped afterwards."""
    name = f"bench_{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(f"{PG_SERVER}/{PG_ADMIN_DB}", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class StatementCounter:
    """Counts the SQL statements an engine sends and the time they take as the client sees it
    (from sending to the result being ready); optionally keeps them with their parameters."""

    def __init__(self, engine: Engine, *, keep: bool = False) -> None:
        self.engine = engine
        self.keep = keep
        self.count = 0
        self.seconds = 0.0
        self.statements: list[tuple[str, Any]] = []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        self.count += 1
        conn.info.setdefault("bench_started", []).append(time.perf_counter())
        if self.keep:
            self.statements.append((statement, params))

    def _after(self, conn: Any, *_: Any) -> None:
        started = conn.info.get("bench_started")
        if started:
            self.seconds += time.perf_counter() - started.pop()

    def reset(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.statements = []

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)


# -- statistics --------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "mean": sum(values) / len(values),
        "min": min(values),
        "p50": percentile(values, 0.5),
        "p95": percentile(values, 0.95),
        "max": max(values),
    }


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value
