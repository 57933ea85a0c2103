"""Per-mailbox sending limits shared by every path that sends in this process.

Exchange Online allows each mailbox 4 concurrent requests and 30 messages a minute. The limiter
makes callers wait for a slot (and logs the wait); it never drops a message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger("connector.limits")


class MailboxLimiter:
    def __init__(
        self,
        rate_per_minute: int = 30,
        max_concurrent: int = 4,
        *,
        window_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate_per_minute
        self.max_concurrent = max_concurrent
        self.window = window_seconds
        self.clock = clock
        self._lock = threading.Condition()
        self._in_flight: dict[str, int] = {}
        self._sent: dict[str, deque[float]] = {}
        self.waits = 0

    @contextmanager
    def slot(self, mailbox: str) -> Iterator[None]:
        """Hold one of the mailbox's concurrent slots and one unit of its per-minute rate."""
        key = mailbox.lower()
        started = self.clock()
        logged = False
        with self._lock:
            while True:
                sent = self._sent.setdefault(key, deque())
                now = self.clock()
                while sent and sent[0] <= now - self.window:
                    sent.popleft()
                busy = self._in_flight.get(key, 0) >= self.max_concurrent
                full = len(sent) >= self.rate
                if not busy and not full:
                    break
                if not logged:
                    self.waits += 1
                    log.info(
                        "event=limit_wait mailbox=%s reason=%s",
                        key,
                        "concurrency" if busy else "rate",
                    )
                    logged = True
                timeout = (sent[0] + self.window - now) if full and sent else None
                self._lock.wait(timeout=max(timeout, 0.001) if timeout is not None else 1.0)
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            sent.append(now)
        if logged:
            log.info("event=limit_waited mailbox=%s seconds=%.3f", key, self.clock() - started)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight[key] -= 1
                self._lock.notify_all()
