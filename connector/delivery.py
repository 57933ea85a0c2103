"""Delivering outbox messages: claim, send through the transport within the mailbox limits,
retry transient failures with tenacity (honouring Retry-After, bounded in time), mark the result.

Outcomes of one delivery run of a message:

* ``sent``: the transport accepted it;
* ``failed``: transient errors outlasted this run's retry budget; the message becomes due again
  after a backoff (``delivery.backoff_*``), until ``delivery.max_attempts`` runs, then parked;
* ``parked``: a permanent error, or the attempt budget is spent; ``connector retry`` re-queues.

While a run waits between two tries of a message, its claim is extended past the wait, so that
no other worker (nor the other thread of this process) takes the message over and sends it
meanwhile. A ``Retry-After`` holds back the whole sender mailbox (the limiter keeps it): the
next message of that mailbox waits too instead of being refused again at once. :meth:`stop_on`
lets the service's stop event cut a wait short: the message then ends the run as ``failed``
without another try.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_before_delay,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from connector.config import DeliveryConfig
from connector.crashpoints import crash_point
from connector.limits import MailboxLimiter
from connector.ports import Envelope, Transport
from connector.state.store import StateStore, StoredMessage
from mapping.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError

log = logging.getLogger("connector.delivery")


@dataclass(frozen=True)
class DeliveryResult:
    message: int
    method: str
    sequence: int
    recipients: tuple[str, ...]
    status: str  # sent | failed | parked | lost (the claim was taken over meanwhile)
    error: DeliveryError | None = None


class _Wait:
    """Retry-After when the server gave one, else exponential backoff with jitter."""

    def __init__(self) -> None:
        self.backoff = wait_exponential_jitter(initial=1, max=30)

    def __call__(self, state: RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and outcome.failed:
            error = outcome.exception()
            if isinstance(error, TransientDeliveryError) and error.retry_after is not None:
                return max(0.0, float(error.retry_after))
        return float(self.backoff(state))


class _Stopped(Exception):
    """The service is stopping: no further try of this message in this run."""


class _ClaimLost(Exception):
    """The claim expired while this worker waited and another one took the message over:
    sending now would make a second copy, so this worker lets it go."""


class _StopWhen(stop_base):
    """Stop retrying when the run's time budget is spent or the service is stopping."""

    def __init__(self, budget: stop_base, stopping: Callable[[], bool]) -> None:
        self.budget = budget
        self.stopping = stopping

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.stopping() or bool(self.budget(retry_state))


class Deliverer:
    def __init__(
        self,
        store: StateStore,
        transport: Transport,
        limiter: MailboxLimiter,
        policy: DeliveryConfig,
        *,
        worker: str,
        clock: Callable[[], datetime],
        sleep: Callable[[float], object] = time.sleep,
        stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self.transport = transport
        self.limiter = limiter
        self.policy = policy
        self.worker = worker
        self.clock = clock
        self.sleep = sleep
        self.stop = stop
        self.stats: dict[str, int] = {"sent": 0, "failed": 0, "parked": 0, "retries": 0}
        self._stats_lock = threading.Lock()

    def with_worker(self, worker: str) -> Deliverer:
        """Another worker on the same store, transport, limiter and counters (one per drain
        thread: each holds its own claims)."""
        clone = copy.copy(self)
        clone.worker = worker
        return clone

    def _count(self, key: str) -> None:
        with self._stats_lock:
            self.stats[key] += 1

    def stop_on(self, event: threading.Event) -> None:
        """Let ``event`` (the service's stop) end retry waits early and further tries."""
        self.stop = event.is_set
        self.sleep = event.wait

    # -- running the queue ----------------------------------------------------------------
    def deliver_activity(self, activity_id: UUID) -> list[DeliveryResult]:
        """Deliver every due message of one activity, in order (the manual path)."""
        results: list[DeliveryResult] = []
        while True:
            claimed = self.store.claim(
                self.worker, self.clock(), self.policy.claim_seconds, activity_id=activity_id
            )
            if not claimed:
                return results
            result = self.deliver(claimed[0])
            results.append(result)
            if result.status != "sent":
                return results

    def drain(
        self, limit: int = 1000, stop: Callable[[], bool] = lambda: False
    ) -> list[DeliveryResult]:
        """Deliver due messages of any activity until none is due, ``limit`` or ``stop()``."""
        results: list[DeliveryResult] = []
        while len(results) < limit and not stop():
            claimed = self.store.claim(self.worker, self.clock(), self.policy.claim_seconds)
            if not claimed:
                break
            results.append(self.deliver(claimed[0]))
        return results

    # -- one message ----------------------------------------------------------------------
    def deliver(self, message: StoredMessage) -> DeliveryResult:
        """Send one claimed message and record the outcome."""
        envelope = Envelope(
            sender=message.sender,
            sender_login=message.sender_login,
            recipients=message.recipients,
            mime=message.mime,
            message_id=message.message_id,
            uid=message.uid,
            sequence=message.sequence,
            method=message.method,
        )
        failures: list[TransientDeliveryError] = []

        def remember(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            if isinstance(error, TransientDeliveryError):
                failures.append(error)

        def wait(seconds: float) -> None:
            # the claim must outlast the wait, or the message could be claimed and sent by
            # another worker while this run is about to send it again
            self._renew(message, seconds)
            self._sleep(seconds)
            if self.stop():
                raise _Stopped

        retrying = Retrying(
            retry=retry_if_exception_type(TransientDeliveryError),
            wait=_Wait(),
            stop=_StopWhen(stop_before_delay(self.policy.retry_max_seconds), self.stop),
            before_sleep=remember,
            sleep=wait,
            reraise=True,
        )
        tried: list[bool] = []  # whether this run reached the transport at all
        try:
            receipt = retrying(self._attempt, message, envelope, tried)
        except _ClaimLost:
            log.warning("event=claim_lost message=%s worker=%s", message.id, self.worker)
            return DeliveryResult(
                message.id, message.method, message.sequence, message.recipients, "lost"
            )
        except _Stopped:
            log.info("event=retry_stopped message=%s reason=service_stopping", message.id)
            return self._failed(message, failures[-1], tried=bool(tried))
        except TransientDeliveryError as error:
            return self._failed(message, error, tried=bool(tried))
        except PermanentDeliveryError as error:
            return self._park(message, error)
        except DeliveryError as error:  # neither kind: treat as transient
            return self._failed(message, error)
        now = self.clock()
        kept = self.store.finish(message.id, self.worker, status="sent", now=now)
        self._count("sent")
        log.info(
            "event=message_sent message=%s method=%s sequence=%s recipients=%d sender=%s "
            "receipt=%s",
            message.id,
            message.method,
            message.sequence,
            len(message.recipients),
            message.sender,
            receipt,
        )
        return DeliveryResult(
            message.id,
            message.method,
            message.sequence,
            message.recipients,
            "sent" if kept else "lost",
        )

    def _renew(self, message: StoredMessage, wait_seconds: float = 0.0) -> None:
        """Keep this worker's claim on ``message`` alive (past a wait of ``wait_seconds``);
        give the message up if the claim is lost."""
        until = self.clock() + timedelta(seconds=wait_seconds + self.policy.claim_seconds)
        if not self.store.extend_claim(message.id, self.worker, until):
            raise _ClaimLost

    def _sleep(self, seconds: float) -> None:
        self._count("retries")
        log.info("event=retry_wait seconds=%.2f", seconds)
        self.sleep(seconds)

    def _attempt(self, message: StoredMessage, envelope: Envelope, tried: list[bool]) -> str:
        # the claim is fresh here (just taken, or renewed past the retry wait); it is renewed
        # again right before the send
        started = self.clock()
        held = self.limiter.held_for(envelope.sender)
        if held > 0:  # a Retry-After of this mailbox is still running: nothing is sent
            raise TransientDeliveryError(
                remote_code="retry_after",
                retry_after=held,
                detail=f"{envelope.sender}: waiting for the server's Retry-After ({held:.1f} s)",
            )
        crash_point("before_send")
        try:
            # the wait for a slot can outlast the claim (a full rate window is 60 s): the claim
            # is renewed while waiting, and checked once more before the send
            with self.limiter.slot(
                envelope.sender,
                heartbeat=lambda: self._renew(message),
                heartbeat_seconds=max(self.policy.claim_seconds / 3, 1.0),
            ):
                self._renew(message)
                tried.append(True)
                receipt = self.transport.send(envelope)
            crash_point("after_send")
        except DeliveryError as error:
            outcome = "transient" if isinstance(error, TransientDeliveryError) else "permanent"
            if isinstance(error, TransientDeliveryError) and error.retry_after is not None:
                self.limiter.hold(envelope.sender, error.retry_after)
            self.store.add_attempt(
                message.id,
                self.worker,
                started_at=started,
                finished_at=self.clock(),
                outcome=outcome,
                status_code=error.status,
                error_code=error.remote_code or error.code,
                detail=error.detail,
            )
            log.warning(
                "event=attempt_failed message=%s outcome=%s status=%s code=%s",
                message.id,
                outcome,
                error.status,
                error.remote_code or error.code,
            )
            raise
        except _ClaimLost:
            raise
        except Exception as error:
            self.store.add_attempt(
                message.id,
                self.worker,
                started_at=started,
                finished_at=self.clock(),
                outcome="transient",
                error_code="unexpected",
                detail=type(error).__name__,
            )
            log.exception("event=attempt_crashed message=%s", message.id)
            raise TransientDeliveryError(detail=f"unexpected {type(error).__name__}") from error
        self.store.add_attempt(
            message.id,
            self.worker,
            started_at=started,
            finished_at=self.clock(),
            outcome="sent",
            detail=receipt[:200],
        )
        return receipt

    def _failed(
        self, message: StoredMessage, error: DeliveryError, *, tried: bool = True
    ) -> DeliveryResult:
        """Back to the queue for later; parked once the attempts are used up. A run that never
        reached the transport (the mailbox was held by a server's Retry-After all along) does
        not use up an attempt: a long 429 storm must not park a message nobody tried."""
        if tried and message.attempts >= self.policy.max_attempts:
            return self._park(message, error)
        now = self.clock()
        delay = min(
            self.policy.backoff_initial_seconds * (2 ** max(message.attempts - 1, 0)),
            self.policy.backoff_max_seconds,
        )
        if error.retry_after is not None:  # the server said when: never come back sooner
            delay = max(delay, float(error.retry_after))
        kept = self.store.finish(
            message.id,
            self.worker,
            status="failed",
            now=now,
            error=error.detail or error.code,
            error_code=error.remote_code or error.code,
            next_attempt_at=now + timedelta(seconds=delay),
            refund_attempt=not tried,
        )
        self._count("failed")
        log.warning(
            "event=message_failed message=%s attempts=%d retry_in=%.0f code=%s",
            message.id,
            message.attempts,
            delay,
            error.remote_code or error.code,
        )
        return DeliveryResult(
            message.id,
            message.method,
            message.sequence,
            message.recipients,
            "failed" if kept else "lost",
            error,
        )

    def _park(self, message: StoredMessage, error: DeliveryError) -> DeliveryResult:
        kept = self.store.finish(
            message.id,
            self.worker,
            status="parked",
            now=self.clock(),
            error=error.detail or error.code,
            error_code=error.remote_code or error.code,
        )
        self._count("parked")
        log.error(
            "event=message_parked message=%s attempts=%d code=%s",
            message.id,
            message.attempts,
            error.remote_code or error.code,
        )
        return DeliveryResult(
            message.id,
            message.method,
            message.sequence,
            message.recipients,
            "parked" if kept else "lost",
            error,
        )
