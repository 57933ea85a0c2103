"""Per-mailbox limits (issue 3, item 6): at most N concurrent requests and M per window per
sender mailbox, waits logged, nothing dropped. Windows are scaled down to fractions of a
second; the Graph-level versions of these tests measure the same at the fake Graph."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial

import pytest

from connector.limits import MailboxLimiter
from tests.support.fake_graph import FakeGraph
from tests.support.graph_env import PERSONAL
from tests.support.world import World


def test_a_request_over_the_rate_waits_until_the_oldest_leaves_the_window() -> None:
    limiter = MailboxLimiter(3, 4, window_seconds=0.4)
    ended = []
    for _ in range(3):
        with limiter.slot("ivanov@ivanov.ru"):
            pass
        ended.append(time.monotonic())
    with limiter.slot("ivanov@ivanov.ru"):
        started = time.monotonic()
    assert started - ended[0] >= 0.4 - 0.01
    assert limiter.waits == 1


def test_requests_in_flight_already_count_against_the_rate() -> None:
    limiter = MailboxLimiter(2, 4, window_seconds=0.3)
    release = threading.Event()
    inside = threading.Barrier(3)
    body_ended: list[float] = []

    def hold() -> None:
        with limiter.slot("ivanov@ivanov.ru"):
            inside.wait(timeout=5)
            release.wait(timeout=5)
            body_ended.append(time.monotonic())

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for t in holders:
        t.start()
    inside.wait(timeout=5)
    assert limiter.in_window("ivanov@ivanov.ru") == 2  # nothing ended yet, both count
    threading.Timer(0.2, release.set).start()
    with limiter.slot("ivanov@ivanov.ru"):
        third_started = time.monotonic()
    for t in holders:
        t.join(timeout=5)
    # the two were charged when they ended; the third waits for the first to leave the window
    assert third_started >= min(body_ended) + 0.3 - 0.01
    assert limiter.waits == 1


def test_concurrency_never_exceeds_the_maximum_per_mailbox() -> None:
    limiter = MailboxLimiter(1000, 2, window_seconds=60)
    now = {"in": 0, "max": 0}
    lock = threading.Lock()

    def send() -> None:
        with limiter.slot("Ivanov@Ivanov.ru"):
            with lock:
                now["in"] += 1
                now["max"] = max(now["max"], now["in"])
            time.sleep(0.05)
            with lock:
                now["in"] -= 1

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert now["max"] == 2
    assert limiter.in_window("ivanov@ivanov.ru") == 8  # every request charged, none dropped


def test_mailboxes_are_limited_separately_and_case_insensitively() -> None:
    limiter = MailboxLimiter(1, 4, window_seconds=0.3)
    with limiter.slot("Ivanov@ivanov.ru"):
        pass
    before = time.monotonic()
    with limiter.slot("invitations@ivanov.ru"):  # another mailbox: no wait
        pass
    assert time.monotonic() - before < 0.1
    with limiter.slot("ivanov@IVANOV.ru"):  # the same mailbox: waits for the window
        pass
    assert time.monotonic() - before >= 0.25
    assert limiter.waits == 1


def test_waits_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    limiter = MailboxLimiter(1, 4, window_seconds=0.1)
    with caplog.at_level(logging.INFO, logger="connector.limits"):
        for _ in range(2):
            with limiter.slot("ivanov@ivanov.ru"):
                pass
    lines = [r.getMessage() for r in caplog.records]
    assert any("event=limit_wait mailbox=ivanov@ivanov.ru reason=rate" in line for line in lines)
    assert any(line.startswith("event=limit_waited mailbox=ivanov@ivanov.ru") for line in lines)


def test_manual_sends_and_the_sync_share_one_limit_per_mailbox(
    graph_world: World, fake_graph: FakeGraph
) -> None:
    """The button (several users at once) and the sync service's updates go through the same
    limiter of the process: the fake never sees more than 4 requests for the mailbox."""
    w = graph_world
    start = w.ex_start()
    tracked = []
    for i in range(4):
        activity = w.writer.activity(
            f"Планёрка {i}",
            start + timedelta(days=1, hours=i),
            start + timedelta(days=1, hours=i, minutes=30),
            location="Кабинет 404",
            owner_contact_id=w.ex.supervisor_contact,
            participants=[w.ex.supervisor_contact, w.ex.dasha],
        )
        assert w.invite(activity=activity).delivered
        tracked.append(activity)
    w.clock.advance(minutes=5)
    for activity in tracked:  # moved rooms: the sync sends updates
        w.writer.update_activity(activity, location="Кабинет 505")
    fresh = [
        w.writer.activity(
            f"Встреча {i}",
            start + timedelta(hours=i),
            start + timedelta(hours=i, minutes=30),
            location="Кабинет 404",
            owner_contact_id=w.ex.supervisor_contact,
            participants=[w.ex.supervisor_contact, w.ex.liza],
        )
        for i in range(8)
    ]
    fake_graph.configure(latency=0.5, limits={"concurrency": 4, "per_window": 1000})
    failures: list[BaseException] = []

    def run(action: Callable[[], object]) -> None:
        try:
            action()
        except BaseException as error:  # reported below
            failures.append(error)

    actions: list[Callable[[], object]] = [partial(w.invite, activity=a) for a in fresh]
    actions.append(w.sync)
    threads = [threading.Thread(target=run, args=(action,)) for action in actions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    stats = fake_graph.stats()
    assert failures == []
    assert stats["counters"]["accepted"] == 4 + 4 + 8, stats
    assert stats["max_in_flight"][PERSONAL] == 4, stats
    assert stats["counters"].get("throttled", 0) == 0, stats
