"""``connector run``: the sync service under APScheduler, with a graceful stop.

Jobs, each at most one run at a time with missed runs coalesced: the sync cycle every
``sync.interval_seconds`` (change detection only on the instance holding the poller lease), and
``delivery.workers`` outbox drains every ``delivery.poll_seconds``, each with its own worker
name for its claims (every instance drains, so several instances share the delivery work, and
retries go out on time). SIGINT/SIGTERM set a stop flag: the request in flight is finished
(or, if the process is killed, its claim expires and it is sent again with the same bytes), a
message waiting to be tried again stops waiting and is left ``failed`` for later, no new
message is started, and the scheduler shuts down."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from connector.app import App
from connector.sync import POLLER_LEASE, SyncService

log = logging.getLogger("connector.runner")


class Runner:
    def __init__(self, app: App) -> None:
        self.app = app
        self.stopping = threading.Event()
        # a stop cuts retry waits short (a Retry-After can be minutes): the message in its
        # wait ends the run as failed and is tried again after a restart
        app.deliverer.stop_on(self.stopping)
        self.sync = SyncService(app, stop=self.stopping.is_set)
        workers = app.config.delivery.workers
        self.drainers = [app.deliverer.with_worker(f"{app.worker}#{i}") for i in range(workers)]
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(workers + 1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self.cycles = 0
        self.failures = 0

    def _cycle(self) -> None:
        if self.stopping.is_set():
            return
        try:
            self.sync.cycle()
            self.cycles += 1
        except Exception:
            self.failures += 1
            log.exception("event=sync_cycle_failed")

    def _drain(self, index: int) -> None:
        if self.stopping.is_set():
            return
        try:
            self.drainers[index].drain(stop=self.stopping.is_set)
        except Exception:
            log.exception("event=drain_failed worker=%d", index)

    def start(self) -> None:
        config = self.app.config
        now = datetime.now(UTC)
        self.scheduler.add_job(
            self._cycle,
            "interval",
            seconds=config.sync.interval_seconds,
            id="sync",
            next_run_time=now,
        )
        for index in range(len(self.drainers)):
            self.scheduler.add_job(
                self._drain,
                "interval",
                args=[index],
                seconds=config.delivery.poll_seconds,
                id=f"drain-{index}",
                next_run_time=now,
            )
        self.scheduler.start()
        log.info(
            "event=service_started worker=%s interval=%s transport=%s",
            self.app.worker,
            config.sync.interval_seconds,
            config.transport,
        )

    def stop(self) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        log.info("event=service_stopping")
        self.scheduler.shutdown(wait=True)
        self.app.store.release_lease(POLLER_LEASE, self.app.worker)
        log.info("event=service_stopped cycles=%d failures=%d", self.cycles, self.failures)


def wait_for_signal(stop: Callable[[], None], extra: threading.Event | None = None) -> None:
    """Block the main thread until SIGINT or SIGTERM, then call ``stop``."""
    done = extra or threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        log.info("event=signal signal=%s", signal.Signals(signum).name)
        done.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not done.wait(1.0):
            pass
    finally:
        stop()
        for s, h in previous.items():
            signal.signal(s, h)
