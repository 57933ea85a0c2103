"""``connector run`` as a real process through Graph faults: it keeps running while Graph, the
network path or the identity platform misbehave, retries within its bounds, parks what cannot
go out with the error, and catches up when the fault is over. The fake Graph runs as its own
process behind two TCP proxies (Graph, identity platform) that the test breaks and mends; the
recipients' calendars and the fake's message counts say what arrived."""

from __future__ import annotations

import itertools
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from connector.state.store import Attempt, StateStore, StoredMessage
from tests.support.deployment import FAKE_SETUP, Deployment, make_deployment, wait_for
from tests.support.fake_graph import start_process
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow

PEOPLE = ("denis@ivanov.by", "dasha@ivanov.by", "liza@ivanov.by")
TIMEOUT = 1.0  # graph.timeout_seconds
BUDGET = 2.0  # delivery.retry_max_seconds
#: requests one outbox run may make: the first, then one per wait of at least 1 s (the backoff
#: starts at 1 s, the Retry-After here is 1 s) that still fits the budget
TRIES_PER_RUN = 1 + int(BUDGET / 1.0)


@dataclass
class Site:
    d: Deployment
    graph: TcpProxy
    login: TcpProxy
    store: StateStore
    services: list[Any] = field(default_factory=list)
    rooms: int = 500

    @property
    def fake(self) -> Any:
        return self.d.fake.client

    def start(self, name: str = "run") -> Any:
        service = self.d.start(name)
        self.services.append(service)
        return service

    def messages(self) -> list[StoredMessage]:
        return self.store.messages(activity_id=self.d.ex.meeting)

    def attempts(self) -> list[Attempt]:
        return self.store.attempts([m.id for m in self.messages()])

    def move(self) -> str:
        """Move the meeting to another room: one REQUEST, SEQUENCE + 1, to everyone."""
        self.rooms += 1
        room = f"Кабинет {self.rooms}"
        self.d.writer.update_activity(self.d.ex.meeting, location=room)
        return room

    def arrived(self, room: str) -> bool:
        calendars = self.d.calendars()
        return all(
            [e["location"] for e in calendars.get(who, {}).values()] == [room] for who in PEOPLE
        )

    def done(self, room: str) -> bool:
        """The room arrived in every calendar and the service recorded the send."""
        return self.arrived(room) and self.messages()[-1].status == "sent"

    def copies(self) -> Counter[str]:
        return Counter(m["message_id"] for m in self.d.messages())


@contextmanager
def site(folder: Path, **delivery: float) -> Iterator[Site]:
    """The fake Graph (a process) behind two proxies, the CRM with the first invitation sent,
    and a config with short timeouts and budgets."""
    with start_process(folder / "fake", FAKE_SETUP) as fake:
        port = int(urlsplit(fake.origin).port or 0)
        with (
            TcpProxy(port, folder / "graph-proxy") as graph,
            TcpProxy(port, folder / "login-proxy") as login,
        ):
            policy = {
                "retry_max_seconds": BUDGET,
                "backoff_initial_seconds": 0.5,
                "backoff_max_seconds": 1,
                "max_attempts": 50,
                **delivery,
            }
            d = make_deployment(
                folder / "site",
                fake,
                graph={
                    "authority_host": login.origin,
                    "base_url": f"{graph.origin}/v1.0",
                    "timeout_seconds": TIMEOUT,
                },
                delivery=policy,
            )
            first = d.cli("invite", str(d.ex.meeting), "--as", "Supervisor")
            assert first.returncode == 0, first.stderr
            store = StateStore.from_url(f"sqlite:///{d.folder / 'state.db'}")
            s = Site(d, graph, login, store)
            try:
                yield s
            finally:
                for service in s.services:
                    if service.poll() is None:
                        service.kill()
                        service.wait(timeout=30)
                store.close()


def stop(service: Any) -> tuple[int, float]:
    """SIGTERM; the exit code and how long the graceful stop took."""
    started = time.monotonic()
    code = Deployment.stop(service, signal.SIGTERM)
    return code, time.monotonic() - started


# -- the service through a series of faults ---------------------------------------------------
@dataclass
class Phase:
    name: str
    start: Callable[[Site], None]
    end: Callable[[Site], None]
    codes: set[str]  # error codes its failed attempts are recorded with
    taken_anyway: bool = False  # Graph takes the requests the connector gave up on


def _fail(*faults: dict[str, Any]) -> Callable[[Site], None]:
    return lambda s: s.fake.fail(*faults)


def _nothing(s: Site) -> None:
    return None


def _graph(mode: str) -> Callable[[Site], None]:
    return lambda s: s.graph.set_mode(mode)


def _login_down(s: Site) -> None:
    s.fake.expire_tokens()  # Graph answers 401 to the token the service holds
    s.login.set_mode("refuse")


def _expired_and_token_faults(*faults: dict[str, Any]) -> Callable[[Site], None]:
    def start(s: Site) -> None:
        s.fake.expire_tokens()
        s.fake.fail(*({"target": "token", **f} for f in faults))

    return start


PHASES = [
    Phase(
        "429 storm",
        _fail({"status": 429, "retry_after": 1, "code": "ApplicationThrottled", "repeat": 5}),
        _nothing,
        {"ApplicationThrottled"},
    ),
    Phase(
        "500, 503, 504",
        _fail({"status": 500}, {"status": 503}, {"status": 504}),
        _nothing,
        {"InternalServerError", "ServiceUnavailable", "GatewayTimeout"},
    ),
    Phase("Graph unreachable", _graph("refuse"), _graph("forward"), {"connection"}),
    Phase("untrusted certificate", _graph("untrusted"), _graph("forward"), {"tls"}),
    Phase("no answer at all", _graph("blackhole"), _graph("forward"), {"timeout"}),
    Phase(
        "answers slower than the timeout",
        lambda s: s.fake.configure(latency=TIMEOUT + 0.5),
        lambda s: s.fake.configure(latency=0),
        {"timeout"},
        taken_anyway=True,
    ),
    Phase(
        "token expired, identity platform down",
        _login_down,
        lambda s: s.login.set_mode("forward"),
        {"connection"},
    ),
    Phase(
        "token expired, token endpoint 503 then a gateway page",
        _expired_and_token_faults(
            {"status": 503, "retry_after": 1},
            {"status": 429, "retry_after": 1, "body": "<html>429 Too Many Requests</html>"},
        ),
        _nothing,
        {"MsalServiceError", "invalid_response"},
    ),
]


def test_the_service_rides_out_graph_faults_and_catches_up(tmp_path: Path) -> None:
    with site(tmp_path) as s:
        service = s.start()
        room = s.move()
        wait_for(lambda: s.done(room), 60)
        slow_message = ""
        for phase in PHASES:
            before = len(s.attempts())
            phase.start(s)
            room = s.move()

            def failed_in_phase(count: int, phase: Phase = phase, before: int = before) -> bool:
                return sum(a.error_code in phase.codes for a in s.attempts()[before:]) >= count

            # the fault is hit, and hit again (the service retries; it does not give up)
            wait_for(lambda: failed_in_phase(2), 60, 0.2)
            assert service.poll() is None, phase.name
            assert phase.taken_anyway or not s.arrived(room), phase.name
            phase.end(s)
            wait_for(lambda room=room: s.done(room), 60, 0.2)
            assert service.poll() is None, phase.name
            message = s.messages()[-1]
            assert message.status == "sent"
            tries = [a for a in s.attempts()[before:] if a.outcome != "sent"]
            assert {a.error_code for a in tries} <= phase.codes, (phase.name, tries)
            assert len(tries) + 1 <= message.attempts * TRIES_PER_RUN, phase.name
            if phase.taken_anyway:
                slow_message = message.message_id
        # every Retry-After was honoured: no request sooner than 1 s after a 429
        requests = s.fake.requests("sendMail")
        gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(requests) if a["status"] == 429]
        assert len(gaps) == 5 and min(gaps) >= 1.0 - 0.01, gaps
        code, seconds = stop(service)
        assert code == 0 and seconds < 15
        assert {m.status for m in s.messages()} == {"sent"}
        # one copy of every message, except the one whose requests timed out after Graph took
        # them (the documented duplicate: the same bytes again, same Message-ID)
        copies = s.copies()
        assert len(copies) == len(PHASES) + 2  # the invitation, the first move, the phases
        assert {mid for mid, n in copies.items() if n > 1} <= {slow_message}


def test_permanent_errors_park_with_their_text_and_the_service_keeps_running(
    tmp_path: Path,
) -> None:
    with site(tmp_path, max_attempts=2, retry_max_seconds=1) as s:
        service = s.start()
        # the identity platform refuses the app (e.g. the client secret expired): parked at once
        s.fake.expire_tokens()
        s.fake.fail({"target": "token", "status": 401, "code": "invalid_client"})
        room = s.move()
        wait_for(lambda: s.messages()[-1].status == "parked", 60, 0.2)
        parked = s.messages()[-1]
        assert parked.attempts == 1 and parked.error_code == "invalid_client"
        assert parked.last_error is not None and "AADSTS" in parked.last_error
        status = s.d.cli("status", str(s.d.ex.meeting))
        assert "parked=1" in status.stdout and "invalid_client" in status.stdout
        assert service.poll() is None
        retried = s.d.cli("retry", str(s.d.ex.meeting))  # after the fix, while the service runs
        assert retried.returncode == 0, retried.stdout + retried.stderr
        wait_for(lambda: s.done(room), 60, 0.2)

        # a storm that outlasts max_attempts runs: parked with the last error
        s.fake.fail({"status": 503, "repeat": 1000})
        room = s.move()
        wait_for(lambda: s.messages()[-1].status == "parked", 60, 0.2)
        parked = s.messages()[-1]
        assert (parked.attempts, parked.error_code) == (2, "ServiceUnavailable")
        assert parked.last_error is not None and "HTTP 503" in parked.last_error
        assert service.poll() is None
        s.fake.clear_faults()
        retried = s.d.cli("retry")
        assert retried.returncode == 0, retried.stdout + retried.stderr
        wait_for(lambda: s.done(room), 60, 0.2)
        code, _ = stop(service)
        assert code == 0
        assert set(s.copies().values()) == {1}


# -- long Retry-After waits -------------------------------------------------------------------
def test_a_retry_after_longer_than_the_claim_does_not_send_twice(tmp_path: Path) -> None:
    # the claim (5 s) would expire during the 7 s wait: the service's other thread (the sync
    # cycle drains the outbox too) must not take the message over and send it meanwhile
    with site(tmp_path, retry_max_seconds=20, claim_seconds=5) as s:
        service = s.start()
        s.fake.fail({"status": 429, "retry_after": 7, "code": "ApplicationThrottled"})
        room = s.move()
        wait_for(lambda: s.done(room), 60, 0.2)
        time.sleep(1.0)
        code, _ = stop(service)
        assert code == 0
        assert set(s.copies().values()) == {1}, s.copies()
        assert [r["status"] for r in s.fake.requests("sendMail")] == [202, 429, 202]


def test_a_stop_during_a_long_retry_after_wait_is_prompt(tmp_path: Path) -> None:
    with site(tmp_path, retry_max_seconds=120) as s:
        service = s.start()
        s.fake.fail({"status": 429, "retry_after": 60, "code": "ApplicationThrottled"})
        s.move()
        wait_for(lambda: any(a.status_code == 429 for a in s.attempts()), 60, 0.1)
        time.sleep(0.5)  # the service now waits for the Retry-After
        code, seconds = stop(service)
        assert code == 0 and seconds < 10, seconds
        message = s.messages()[-1]
        # left for later, not 'sending', and not before the server's Retry-After
        assert (message.status, message.error_code) == ("failed", "ApplicationThrottled")
        assert (message.next_attempt_at - message.created_at).total_seconds() >= 59
