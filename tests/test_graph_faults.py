"""Graph faults, one delivery run at a time: storms of 429 and 5xx, slow answers, faults below
HTTP (refused, reset, silent, TLS), the identity platform failing, and an expired token while
it is down. Every request goes over real HTTPS to the fake Graph (a server thread), through TCP
proxies that break the network path on demand, with the real msal and requests.

Asserted for each: how many requests one run makes and how long it takes (the bounds of
``delivery.retry_max_seconds`` and ``graph.timeout_seconds``), what is recorded (outcome, error
code and text), that the message gets through once the fault is over, and how many copies the
fake accepted (one, except when a request timed out after Graph had taken it: then the copies are
byte-identical, same Message-ID)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.delivery import DeliveryResult
from connector.state.store import Attempt, StoredMessage
from tests.support.fake_graph import FakeGraph
from tests.support.graph_env import graph_sections
from tests.support.tcp_proxy import TcpProxy
from tests.support.world import CrmDb, World, make_world

TIMEOUT = 1.0  # graph.timeout_seconds
BUDGET = 2.0  # delivery.retry_max_seconds: the time one run may spend retrying
#: the longest a run may take: the budget, plus one last try started just before it ends (a
#: try is at most a token request and a sendMail, each up to the timeout), plus scheduling slack
RUN_LIMIT = BUDGET + 2 * TIMEOUT + 1.0


@dataclass
class Net:
    fake: FakeGraph
    graph: TcpProxy  # in front of Graph (base_url)
    login: TcpProxy  # in front of the identity platform (authority_host)
    w: World

    def message(self) -> StoredMessage:
        (message,) = self.w.app.store.messages(activity_id=self.w.ex.meeting)
        return message

    def attempts(self) -> list[Attempt]:
        return self.w.app.store.attempts([m.id for m in self.w.app.store.messages()])

    def send_requests(self) -> list[dict[str, Any]]:
        return self.fake.requests("sendMail")

    def first_run(self) -> tuple[DeliveryResult, float]:
        """Press the button: record the invitation and deliver it (one run)."""
        started = time.monotonic()
        (result,) = self.w.invite().deliveries
        return result, time.monotonic() - started

    def next_run(self) -> tuple[DeliveryResult, float]:
        """The next run of the message, once its backoff is over."""
        self.w.clock.advance(minutes=10)
        started = time.monotonic()
        (result,) = self.w.app.deliverer.drain()
        return result, time.monotonic() - started


@pytest.fixture
def net(sqlite_crm: CrmDb, tmp_path: Path, fake_graph: FakeGraph) -> Iterator[Net]:
    with (
        TcpProxy(fake_graph.port, tmp_path / "graph-proxy") as graph,
        TcpProxy(fake_graph.port, tmp_path / "login-proxy") as login,
    ):
        sections = graph_sections(
            fake_graph,
            retry_max_seconds=BUDGET,
            authority_host=login.origin,
            base_url=f"{graph.origin}/v1.0",
            timeout_seconds=TIMEOUT,
        )
        sections["delivery"].update(
            max_attempts=3, backoff_initial_seconds=1, backoff_max_seconds=2
        )
        w = make_world(sqlite_crm, tmp_path, **sections)
        try:
            yield Net(fake_graph, graph, login, w)
        finally:
            w.close()


def copies(fake: FakeGraph) -> Counter[str]:
    """Accepted messages by Message-ID."""
    return Counter(str(m.message["Message-ID"]) for m in fake.messages())


def gaps_after_429(requests: list[dict[str, Any]]) -> list[float]:
    """Seconds between each 429 answer and the next request's answer."""
    times = [r["t"] for r in requests]
    return [times[i + 1] - times[i] for i, r in enumerate(requests[:-1]) if r["status"] == 429]


# -- throttling and server errors -------------------------------------------------------------
def test_429_storm_keeps_every_run_within_its_budget_then_parks_and_retry_delivers(
    net: Net,
) -> None:
    net.fake.fail({"status": 429, "retry_after": 1, "code": "ApplicationThrottled", "repeat": 100})
    runs = [net.first_run(), net.next_run(), net.next_run()]
    assert all(seconds < RUN_LIMIT for _, seconds in runs)
    requests = net.send_requests()
    # Retry-After 1 s and a 2 s budget: at most 1 + 2/1 requests a run, 3 runs (max_attempts)
    assert 3 <= len(requests) <= 9, len(requests)
    assert len(net.attempts()) == len(requests)
    assert {r["status"] for r in requests} == {429}
    assert min(gaps_after_429(requests)) >= 1.0 - 0.01  # never sooner than Retry-After
    assert [r.status for r, _ in runs] == ["failed", "failed", "parked"]
    message = net.message()
    assert (message.status, message.attempts, message.error_code) == (
        "parked",
        3,
        "ApplicationThrottled",
    )
    assert message.last_error is not None and "HTTP 429" in message.last_error
    assert not net.fake.messages()
    # the storm is over; "connector retry" re-queues the parked message
    net.fake.state.faults.clear()
    assert net.w.app.store.requeue(net.w.clock(), statuses=("parked",)) == 1
    time.sleep(1.0)  # the mailbox's last Retry-After
    assert [r.status for r in net.w.app.deliverer.drain()] == ["sent"]
    assert list(copies(net.fake).values()) == [1]


def test_500_503_504_are_retried_with_backoff_and_the_message_goes_through_once(
    net: Net,
) -> None:
    policy = {"max_attempts": 4, "backoff_initial_seconds": 1, "backoff_max_seconds": 2}
    net.w.reconfigure(delivery={"retry_max_seconds": BUDGET, **policy})
    net.fake.fail({"status": 500}, {"status": 503}, {"status": 504})
    runs = [net.first_run()]
    while runs[-1][0].status == "failed":
        runs.append(net.next_run())
    assert [r.status for r, _ in runs][-1] == "sent"
    assert all(seconds < RUN_LIMIT for _, seconds in runs)
    # backoff with jitter from 1 s (1-2 s, then 2-3 s): one or two tries fit a 2 s budget
    tries = [a.status_code for a in net.attempts()]
    assert tries == [500, 503, 504, None]
    assert 2 <= len(runs) <= 4
    assert list(copies(net.fake).values()) == [1]


def test_retry_after_holds_back_the_next_message_of_the_same_mailbox(net: Net) -> None:
    w = net.w
    start = w.ex_start() + timedelta(days=1)
    other = w.writer.activity(
        "Планёрка",
        start,
        start + timedelta(minutes=30),
        location="Кабинет 404",
        owner_contact_id=w.ex.supervisor_contact,
        participants=[w.ex.supervisor_contact, w.ex.denis],
    )
    net.fake.fail({"status": 429, "retry_after": 3, "code": "ApplicationThrottled"})
    (first,) = w.invite().deliveries  # 429, Retry-After 3 s: more than the run's budget
    assert first.status == "failed"
    (second,) = w.invite(activity=other).deliveries  # same sender mailbox, right after
    assert second.status == "failed"
    assert second.error is not None and second.error.remote_code == "retry_after"
    assert len(net.send_requests()) == 1  # the second one was not even tried
    time.sleep(3.0)
    w.clock.advance(minutes=10)
    assert sorted(r.status for r in w.app.deliverer.drain()) == ["sent", "sent"]
    requests = net.send_requests()
    assert [r["status"] for r in requests] == [429, 202, 202]
    assert requests[1]["t"] - requests[0]["t"] >= 3.0 - 0.01


# -- slow answers ---------------------------------------------------------------------------
def test_answers_slower_than_the_timeout_resend_the_same_bytes(net: Net) -> None:
    # Graph takes each request but answers after the client gave up: the result is unknown
    # to the connector, which sends the same message again (the documented duplicate)
    net.fake.configure(latency=TIMEOUT + 0.5)
    first, seconds = net.first_run()
    assert first.status == "failed" and seconds < RUN_LIMIT
    assert {a.error_code for a in net.attempts()} == {"timeout"}
    net.fake.configure(latency=0)
    second, _ = net.next_run()
    assert second.status == "sent"
    time.sleep(TIMEOUT)  # the fake finishes the requests the client gave up on
    accepted = net.fake.messages()
    tries = len(net.attempts())
    assert 2 <= len(accepted) <= tries
    assert len({m.raw for m in accepted}) == 1  # identical bytes: same Message-ID, UID, SEQUENCE
    (calendar,) = net.fake.calendars()["denis@ivanov.by"].values()
    assert calendar["sequence"] == 0


# -- below HTTP -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "codes"),
    [
        ("refuse", {"connection": "connection failed"}),
        # a reset during the TLS handshake surfaces as a TLS error or a connection error,
        # depending on when the RST arrives: both are transient
        ("reset", {"connection": "connection failed", "tls": "TLS error"}),
        ("blackhole", {"timeout": "timed out"}),
        ("untrusted", {"tls": "CERTIFICATE_VERIFY_FAILED"}),
        ("not_tls", {"tls": "TLS error"}),
    ],
    ids=["refused", "reset", "silent", "untrusted-tls", "not-tls"],
)
def test_network_faults_are_transient_and_the_send_recovers(
    net: Net, mode: str, codes: dict[str, str]
) -> None:
    net.graph.set_mode(mode)
    first, seconds = net.first_run()
    assert first.status == "failed" and seconds < RUN_LIMIT
    assert first.error is not None and first.error.remote_code in codes
    assert codes[first.error.remote_code] in first.error.detail
    tries = net.attempts()
    assert 1 <= len(tries) <= 3 and {a.error_code for a in tries} <= set(codes)
    assert not net.send_requests()  # nothing reached Graph
    net.graph.set_mode("forward")
    second, _ = net.next_run()
    assert second.status == "sent"
    assert list(copies(net.fake).values()) == [1]


# -- the identity platform --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fault", "code", "detail"),
    [
        ({"status": 503, "retry_after": 1}, "MsalServiceError", "token: HTTP Error: 503"),
        (  # a gateway's HTML page instead of the platform's JSON
            {"status": 429, "retry_after": 1, "body": "<html><h1>429 Too Many</h1></html>"},
            "invalid_response",
            "token: the answer is not JSON",
        ),
        ("unreachable", "connection", "identity platform: connection failed"),
        ("untrusted", "tls", "CERTIFICATE_VERIFY_FAILED"),
    ],
    ids=["503", "html-429", "unreachable", "untrusted-tls"],
)
def test_identity_platform_faults_are_transient_and_the_send_recovers(
    net: Net, fault: dict[str, Any] | str, code: str, detail: str
) -> None:
    if fault == "unreachable":
        net.login.set_mode("refuse")
    elif fault == "untrusted":
        net.login.set_mode("untrusted")
    else:
        assert isinstance(fault, dict)
        net.fake.fail({"target": "token", "repeat": 10, **fault})
    first, seconds = net.first_run()
    assert first.status == "failed" and seconds < RUN_LIMIT
    assert first.error is not None and detail in first.error.detail
    assert net.message().error_code == code
    assert not net.send_requests()
    assert len(net.fake.requests("token")) <= 3  # msal also holds back after 429/5xx
    net.login.set_mode("forward")
    net.fake.state.faults.clear()
    time.sleep(1.0)  # msal's own Retry-After hold on the token endpoint
    second, _ = net.next_run()
    assert second.status == "sent"
    assert list(copies(net.fake).values()) == [1]


def test_expired_token_while_the_identity_platform_is_down(net: Net) -> None:
    w = net.w
    assert w.invite().delivered
    net.fake.state.expire_tokens()  # Graph now answers 401 to the token msal holds
    net.login.set_mode("refuse")
    w.clock.advance(hours=1)
    w.writer.update_activity(w.ex.meeting, location="Кабинет 505")
    started = time.monotonic()
    (update,) = w.invite().deliveries
    assert update.status == "failed" and time.monotonic() - started < RUN_LIMIT
    assert update.error is not None and update.error.remote_code == "connection"
    net.login.set_mode("forward")
    w.clock.advance(minutes=10)
    assert [r.status for r in w.app.deliverer.drain()] == ["sent"]
    assert [r["status"] for r in net.send_requests()] == [202, 401, 202]
    assert net.fake.stats()["counters"]["tokens_client_credentials"] == 2
    assert sorted(copies(net.fake).values()) == [1, 1]
    (calendar,) = net.fake.calendars()["denis@ivanov.by"].values()
    assert (calendar["sequence"], calendar["location"]) == (1, "Кабинет 505")


def test_openid_discovery_throttled_is_transient_and_the_send_recovers(net: Net) -> None:
    net.fake.fail({"status": 429, "retry_after": 1, "target": "discovery", "repeat": 3})
    result, _ = net.first_run()
    assert result.status == "failed"  # not parked: the next run tries again
    assert result.error is not None and result.error.remote_code == "discovery"
    # the third refusal falls in the next run; whether that run still has time to try again
    # depends on the retry jitter, so the run after it sends at the latest
    result, _ = net.next_run()
    if result.status == "failed":
        result, _ = net.next_run()
    assert result.status == "sent"
    assert [r["status"] for r in net.fake.requests("discovery")][-1] == 200
    assert len(net.send_requests()) == 1
