"""Per-mailbox sending limits shared by every path that sends in this process.

Exchange Online allows each mailbox 4 concurrent requests and 30 messages a minute. The limiter
makes callers wait for a slot (and logs the wait); it never drops a message.

The rate is counted the way the server sees it: a request is charged to the window when it
*ends* (the server accepted it at some moment before its answer arrived, never after), and a
request still in flight already counts against the rate. Charging at the start instead lets the
31st request leave a little before the server's minute is over, and the server answers 429.
Every request is charged, failed ones too: the server may have counted them.

A ``Retry-After`` from the server holds the whole mailbox back (:meth:`MailboxLimiter.hold`):
Exchange throttles per mailbox, and a request for another message of the same mailbox before
that moment would only be refused again and prolong the throttling. The deliverer asks
:meth:`MailboxLimiter.held_for` before each try and waits (within its retry budget) or puts the
message back.
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
        self._ended: dict[str, deque[float]] = {}
        self._held: dict[str, float] = {}
        self.waits = 0

    def _purge(self, key: str, now: float) -> deque[float]:
        ended = self._ended.setdefault(key, deque())
        while ended and ended[0] <= now - self.window:
            ended.popleft()
        return ended

    @contextmanager
    def slot(
        self,
        mailbox: str,
        *,
        heartbeat: Callable[[], None] | None = None,
        heartbeat_seconds: float = 60.0,
    ) -> Iterator[None]:
        """Hold one of the mailbox's concurrent slots and one unit of its per-window rate.

        While it waits, ``heartbeat`` is called every ``heartbeat_seconds`` (without the lock):
        the caller keeps what it holds alive (a message's claim), or raises to give up.
        """
        key = mailbox.lower()
        started = self.clock()
        beat = started
        logged = False
        with self._lock:
            while True:
                now = self.clock()
                ended = self._purge(key, now)
                in_flight = self._in_flight.get(key, 0)
                busy = in_flight >= self.max_concurrent
                full = len(ended) + in_flight >= self.rate
                if not busy and not full:
                    break
                if not logged:
                    self.waits += 1
                    log.info(
                        "event=limit_wait mailbox=%s reason=%s in_flight=%d in_window=%d",
                        key,
                        "concurrency" if busy else "rate",
                        in_flight,
                        len(ended),
                    )
                    logged = True
                # the oldest charge leaves the window then; a request ending notifies earlier
                timeout = ended[0] + self.window - now if full and ended else 1.0
                if heartbeat is not None:
                    timeout = min(timeout, beat + heartbeat_seconds - now)
                self._lock.wait(timeout=max(timeout, 0.001))
                if heartbeat is not None and self.clock() >= beat + heartbeat_seconds:
                    self._lock.release()
                    try:
                        heartbeat()
                    finally:
                        self._lock.acquire()
                    beat = self.clock()
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
        if logged:
            log.info("event=limit_waited mailbox=%s seconds=%.3f", key, self.clock() - started)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight[key] -= 1
                self._ended.setdefault(key, deque()).append(self.clock())
                self._lock.notify_all()

    def hold(self, mailbox: str, seconds: float) -> None:
        """The server asked (``Retry-After``) not to send from ``mailbox`` for ``seconds``."""
        key = mailbox.lower()
        with self._lock:
            until = self.clock() + max(0.0, seconds)
            if until > self._held.get(key, 0.0):
                self._held[key] = until

    def held_for(self, mailbox: str) -> float:
        """Seconds until ``mailbox`` may be sent from again after a Retry-After (0: now)."""
        key = mailbox.lower()
        with self._lock:
            until = self._held.get(key)
            if until is None:
                return 0.0
            left = until - self.clock()
            if left <= 0:
                del self._held[key]
                return 0.0
            return left

    def in_window(self, mailbox: str) -> int:
        """Requests charged to the mailbox's current window (ended or still in flight)."""
        key = mailbox.lower()
        with self._lock:
            return len(self._purge(key, self.clock())) + self._in_flight.get(key, 0)
