"""Graceful stop on SIGINT and SIGTERM for the long-running commands (``serve``, ``run``)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

log = logging.getLogger("connector.lifecycle")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """Set ``stop`` when SIGINT or SIGTERM arrives (main thread only); restore the previous
    handlers on the way out. A second signal while stopping is logged and ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.info("event=signal_ignored signal=%s reason=already_stopping", name)
            return
        log.info("event=signal_received signal=%s", name)
        stop.set()

    previous: dict[signal.Signals, Any] = {}
    for sig in STOP_SIGNALS:
        previous[sig] = signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
