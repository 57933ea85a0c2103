"""Benchmark 3: delivery throughput against the fake Microsoft Graph with Exchange's limits.

The fake Graph (``tests/support/fake_graph.py``, HTTPS on 127.0.0.1, its own process so that
its CPU does not compete with the connector's interpreter) enforces the per-mailbox limits:
more than 4 requests in flight answer 429, more than 30 accepted messages per window answer 429
with Retry-After; every sendMail waits ``latency`` before it is answered. The connector side is
the real thing: the Graph transport (msal app-only token, requests), the shared
:class:`MailboxLimiter` and a :class:`Deliverer` draining a SQLite outbox.

Time is scaled by shortening the rate window on both sides (the limiter's ``window_seconds`` and
the fake's ``window_seconds``) by ``SCALE``: a mailbox may send 30 messages per 60/SCALE
seconds. Latencies are not scaled. So the test is harder than reality: the connector must push
SCALE times more messages per second per mailbox through the same code. The theoretical limit
of a run is ``min(4 / latency, 30 / window)`` per mailbox, summed over the mailboxes; the *ideal*
count of a run is what a perfect client could have had accepted in the same time (computed by
simulating the limits, which counts the initial burst of 30 correctly). The real-time
equivalent is ``min(achieved, real limit)`` with the real 60-second window: when the connector
pushes more than the real limit in the scaled test, the limiter is what holds it back in real
time; when it pushes less, its own speed is the cap whatever the window.

Delivery runs the way the service runs it, with a time cap (the ``stop`` callback the service
uses on SIGTERM): ``1 thread`` is one drain (``connector sync``, ``connector retry``), ``9
threads`` is ``connector run`` with the default ``delivery.workers`` (8 drain workers, plus the
sync cycle's own drain), ``pool`` is what it would take to reach the limits: 4 threads per
mailbox (at most 32) calling the same Deliverer's drain, and
``pool-pg`` the same with a PostgreSQL outbox (the store for several instances) instead of
SQLite.

Messages are written into the outbox directly (one distinct activity per message, so the
per-meeting ordering rule does not serialise them), with one real invitation per sender mailbox
reused as the bytes of all its messages.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
import tempfile
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, insert

from bench.common import Run, log

SCALE = 10.0
REAL_WINDOW = 60.0
CONCURRENCY = 4
PER_WINDOW = 30
DOMAIN = "bench.example"
CLIENT_ID = "6c1f0e52-bench-connector-app"
CLIENT_SECRET = "bench~client.secret-0123456789abcdef"  # the fake's registration


@dataclass(frozen=True)
class Settings:
    mailboxes: tuple[int, ...]
    latencies_ms: tuple[float, ...]
    threads: tuple[str, ...]
    seconds: float  # time cap of one run
    calibrate_seconds: float
    #: outbox backlogs at which one claim + finish is timed, and on which stores
    backlogs: tuple[int, ...] = ()
    backlog_stores: tuple[str, ...] = ("sqlite",)
    backlog_seconds: float = 1.0
    #: delivered messages already in the log, ahead of a backlog of 1,000 due (the log keeps
    #: every message, so a claim must not read it)
    histories: tuple[int, ...] = ()


SETTINGS = {
    "smoke": Settings((1, 2), (0.0,), ("9",), 1.0, 0.5),
    # quick: shorter than one window, so only the first burst of each mailbox is measured
    "quick": Settings(
        (1, 10, 100), (0.0, 50.0, 300.0), ("9",), 2.0, 1.0, (1_000, 10_000), histories=(10_000,)
    ),
    # full: just under two windows (two bursts and the wait between them)
    "full": Settings(
        (1, 10, 100),
        (0.0, 50.0, 300.0),
        ("1", "9", "pool", "pool-pg"),
        11.9,
        3.0,
        (1_000, 10_000, 50_000),
        ("sqlite", "postgresql"),
        3.0,
        (100_000,),
    ),
}


def thread_count(kind: str, mailboxes: int) -> int:
    """``1``, ``9``, or ``pool`` (``pool-pg``: the same on a PostgreSQL outbox)."""
    return min(CONCURRENCY * mailboxes, 32) if kind.startswith("pool") else int(kind)


def per_mailbox_limit(latency: float, window: float) -> float:
    """Messages per second one mailbox can sustain: min(concurrency/latency, rate limit)."""
    rate = PER_WINDOW / window
    return rate if latency <= 0 else min(CONCURRENCY / latency, rate)


def ideal_accepted(n: int, latency: float, window: float, until: float) -> int:
    """How many of ``n`` messages one mailbox can have accepted after ``until`` seconds: the
    earliest schedule allowed by 4 requests in flight and 30 accepted per sliding window
    (a request counts from its acceptance, ``latency`` after it starts)."""
    t = 0.0
    in_flight: list[float] = []
    accepted: deque[float] = deque()
    started = done = 0
    while True:
        progressed = True
        while progressed:  # everything that can happen at time t (all of it when latency is 0)
            progressed = False
            while in_flight and in_flight[0] <= t:
                accepted.append(heapq.heappop(in_flight))
                done += 1
                progressed = True
            while accepted and accepted[0] + window <= t:
                accepted.popleft()
            while (
                started < n
                and len(in_flight) < CONCURRENCY
                and len(accepted) + len(in_flight) < PER_WINDOW
            ):
                heapq.heappush(in_flight, t + latency)
                started += 1
                progressed = True
        upcoming = []
        if in_flight:
            upcoming.append(in_flight[0])
        if started < n and accepted:
            upcoming.append(accepted[0] + window)
        if not upcoming or min(upcoming) > until:
            return done
        t = min(upcoming)


# -- the fake and the connector ---------------------------------------------------------
def _fake_graph() -> Any:
    try:
        from tests.support import fake_graph
    except ImportError as exc:  # the fake lives in the test support package
        from bench.cli import Skipped

        raise Skipped(f"tests/support/fake_graph.py is not available ({exc})") from exc
    return fake_graph


def _mailboxes(count: int) -> list[str]:
    return [f"sender{i}@{DOMAIN}" for i in range(count)]


def _mime_for(sender: str) -> bytes:
    """One real invitation sent from ``sender`` (the fake checks From against the mailbox)."""
    from bench.build_cost import meeting_with, plan_first_send
    from mapping.compose import compose
    from mapping.model import Sender, SenderKind
    from mapping.planner import plan, snapshot_of

    meeting = meeting_with(3)
    base = plan_first_send(meeting)
    assert base.state is not None
    result = plan(
        activity_id=meeting.activity_id,
        uid=base.state.uid,
        snapshot=snapshot_of(meeting),
        previous=None,
        target=base.state.invited,
        sender=Sender(sender, "Отдел продаж", SenderKind.PERSONAL, "bench"),
        now=datetime(2030, 3, 4, 8, 0, tzinfo=UTC),
    )
    assert result.state is not None
    return compose(
        result.messages[0],
        state=result.state,
        zone=ZoneInfo("Europe/Moscow"),
        language="ru",
        dtstamp=datetime(2030, 3, 4, 8, 0, tzinfo=UTC),
        domain=DOMAIN,
    ).mime


def fill_outbox(
    store: Any, mimes: dict[str, bytes], per_mailbox: int, *, delivered: int = 0
) -> int:
    """Pending messages, round-robin over the mailboxes, each of its own activity, behind
    ``delivered`` messages already sent (lower ids, as in a log that has run for a while)."""
    from connector.state import tables as t

    now = datetime.now(UTC) - timedelta(seconds=1)
    history = [
        {
            "activity_id": str(uuid.uuid4()),
            "uid": f"sent.{i}@{DOMAIN}",
            "method": "REQUEST",
            "sequence": 0,
            "sender": f"sender0@{DOMAIN}",
            "sender_login": "bench",
            "recipients": '["participant.0@client0.ivanov.by"]',
            "message_id": f"<sent.{i}@{DOMAIN}>",
            "subject": "bench",
            "mime": next(iter(mimes.values())),
            "origin": "sync",
            "status": "sent",
            "attempts": 1,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
            "sent_at": now,
        }
        for i in range(delivered)
    ]
    rows = []
    for i in range(per_mailbox):
        for sender, mime in mimes.items():
            activity = str(uuid.uuid4())
            rows.append(
                {
                    "activity_id": activity,
                    "uid": f"{activity}@{DOMAIN}",
                    "method": "REQUEST",
                    "sequence": 0,
                    "sender": sender,
                    "sender_login": "bench",
                    "recipients": '["participant.0@client0.ivanov.by"]',
                    "message_id": f"<{activity}.{i}@{DOMAIN}>",
                    "subject": "bench",
                    "mime": mime,
                    "origin": "sync",
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    with store.engine.begin() as conn:
        conn.execute(delete(t.attempts))
        conn.execute(delete(t.messages))
        for i in range(0, len(history), 2000):
            conn.execute(insert(t.messages), history[i : i + 2000])
        for i in range(0, len(rows), 2000):
            conn.execute(insert(t.messages), rows[i : i + 2000])
    return len(rows)


class TimedTransport:
    """Notes when each message was accepted (the answer arrived), around the real transport."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.accepted: list[float] = []
        self._lock = threading.Lock()

    def send(self, envelope: Any) -> str:
        receipt = str(self.inner.send(envelope))
        with self._lock:
            self.accepted.append(time.monotonic())
        return receipt

    def close(self) -> None:
        return None  # the app closes the real transport


def deliver_for(app: Any, threads: int, window: float, seconds: float) -> dict[str, Any]:
    """Drain the outbox with ``threads`` threads on one Deliverer, stopping after ``seconds``
    (a message already claimed is finished, as on SIGTERM)."""
    from connector.delivery import Deliverer
    from connector.limits import MailboxLimiter

    limiter = MailboxLimiter(PER_WINDOW, CONCURRENCY, window_seconds=window)
    transport = TimedTransport(app.transport)
    deliverer = Deliverer(
        app.store,
        transport,
        limiter,
        app.config.delivery,
        worker=f"bench-{os.getpid()}",
        clock=lambda: datetime.now(UTC),
    )
    started = time.monotonic()
    deadline = started + seconds

    def stop() -> bool:
        return time.monotonic() >= deadline

    results: list[int] = []
    errors: list[str] = []

    def work() -> None:
        try:
            done = deliverer.drain(limit=1_000_000, stop=stop)
            results.append(sum(d.status == "sent" for d in done))
        except Exception as exc:  # reported with the run
            errors.append(f"{type(exc).__name__}: {exc}")

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return {
        "sent": sum(results),
        "in_time": sum(1 for t in transport.accepted if t <= deadline),
        "wall": time.monotonic() - started,
        "errors": errors,
        "limiter_waits": limiter.waits,
        "deliverer": dict(deliverer.stats),
    }


def claim_cost(url: str, backlog: int, seconds: float, history: int = 0) -> dict[str, Any]:
    """Seconds for one claim + finish of the outbox with ``backlog`` messages due behind
    ``history`` delivered ones."""
    from connector.state.store import StateStore

    store = StateStore.from_url(url)
    try:
        fill_outbox(store, {f"sender0@{DOMAIN}": b"x" * 6000}, backlog, delivered=history)
        if store.postgres:
            with store.engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE messages")
                conn.commit()
        done = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            now = datetime.now(UTC)
            claimed = store.claim("bench", now, 300)
            if not claimed:  # the whole backlog drained before the time was up
                break
            store.finish(claimed[0].id, "bench", status="sent", now=now)
            done += 1
        per = (time.perf_counter() - started) / done
    finally:
        store.close()
    return {
        "backlog": backlog,
        "history": history,
        "claimed": done,
        "seconds_per_message": per,
        "messages_per_second": 1 / per,
    }


def outbox_costs(settings: Settings, tmp: Path) -> list[dict[str, Any]]:
    from bench.common import temporary_database

    rows = []
    cases = [(b, 0) for b in settings.backlogs] + [(1_000, h) for h in settings.histories]
    for kind in settings.backlog_stores:
        for backlog, history in cases:
            if kind == "sqlite":
                path = tmp / f"claim-{backlog}-{history}.db"
                row = claim_cost(f"sqlite:///{path}", backlog, settings.backlog_seconds, history)
            else:
                with temporary_database("claim") as url:
                    row = claim_cost(url, backlog, settings.backlog_seconds, history)
            row["store"] = kind
            rows.append(row)
            log(
                f"throughput: outbox on {kind}, {backlog:,} due behind {history:,} sent: "
                f"{row['seconds_per_message'] * 1000:.1f} ms per claim + finish"
            )
    return rows


def calibrate(fake: Any, mime: bytes, sender: str, seconds: float) -> float:
    """The harness's own ceiling: 4 plain clients (one kept-alive HTTPS connection each)
    posting to the fake with no limits and no latency, in messages per second."""
    import base64

    import requests

    token_url = f"{fake.origin}/{fake.tenant}/oauth2/v2.0/token"
    session = requests.Session()
    session.trust_env = False
    session.verify = str(fake.ca_bundle)
    token = session.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scope": "https://graph.microsoft.com/.default",
        },
        timeout=10,
    ).json()["access_token"]
    body = base64.b64encode(mime)
    deadline = time.monotonic() + seconds
    counts: list[int] = []

    def client() -> None:
        own = requests.Session()
        own.trust_env = False
        own.verify = str(fake.ca_bundle)
        done = 0
        while time.monotonic() < deadline:
            response = own.post(
                f"{fake.base_url}/users/{sender}/sendMail",
                data=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
                timeout=10,
            )
            done += response.status_code == 202
        counts.append(done)

    started = time.monotonic()
    pool = [threading.Thread(target=client) for _ in range(4)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(counts) / (time.monotonic() - started)


def run(mode: str, out: Path) -> Run:
    fake_graph = _fake_graph()
    from connector.app import build_app
    from connector.config import parse_config

    settings = SETTINGS[mode]
    window = REAL_WINDOW / SCALE
    # more threads than requests' pool keeps connections (10) make urllib3 warn for every
    # extra connection; the pool runs show that cost in their figures instead
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    result = Run("throughput", mode)
    result.parameters = {
        "scale": SCALE,
        "window_seconds": window,
        "real_window_seconds": REAL_WINDOW,
        "concurrency": CONCURRENCY,
        "per_window": PER_WINDOW,
        "mailboxes": list(settings.mailboxes),
        "latencies_ms": list(settings.latencies_ms),
        "threads": list(settings.threads),
        "seconds_per_run": settings.seconds,
        "state_store": "sqlite (pool-pg: postgresql)",
    }
    largest = max(settings.mailboxes)
    with tempfile.TemporaryDirectory() as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        setup = {
            "apps": [{"client_id": CLIENT_ID, "secret": CLIENT_SECRET}],
            "mailboxes": [{"address": a, "display_name": a} for a in _mailboxes(largest)],
        }
        log("throughput: starting the fake Graph")
        fake = stack.enter_context(fake_graph.start_process(tmp / "fake", setup))

        def make_app(state_url: str) -> Any:
            config = parse_config(
                {
                    "crm": {"url": f"sqlite:///{tmp / 'crm.db'}"},
                    "state": {"url": state_url},
                    "transport": "graph",
                    "graph": fake.graph_section(client_id=CLIENT_ID, client_secret=CLIENT_SECRET),
                    "mailboxes": {"rate_window_seconds": window},
                    "invitations": {"uid_domain": DOMAIN},
                    "api": {"enabled": False},
                    "logging": {"level": "WARNING"},
                }
            )
            app = build_app(config)
            stack.callback(app.close)
            return app

        apps = {"sqlite": make_app(f"sqlite:///{tmp / 'state.db'}")}
        if any(kind.endswith("-pg") for kind in settings.threads):
            from bench.common import temporary_database

            apps["postgresql"] = make_app(stack.enter_context(temporary_database("outbox")))
        mimes = {a: _mime_for(a) for a in _mailboxes(largest)}
        first = next(iter(mimes))
        fake.client.configure(limits=None, latency=0)
        ceiling = calibrate(fake, mimes[first], first, settings.calibrate_seconds)
        result.extra["harness_ceiling_messages_per_second"] = ceiling
        log(f"throughput: harness ceiling {ceiling:.0f} msg/s (4 plain clients)")
        for kind in settings.threads:
            app = apps["postgresql" if kind.endswith("-pg") else "sqlite"]
            for count in settings.mailboxes:
                for latency_ms in settings.latencies_ms:
                    row = one_run(app, fake, mimes, kind, count, latency_ms, window, settings)
                    result.results.append(row)
                    key = f"{kind}t_{count}mb_{latency_ms:g}ms"
                    result.headline[f"msgs_per_s_{key}"] = round(row["messages_per_second"], 2)
                    result.headline[f"efficiency_{key}"] = round(row["efficiency"], 3)
                    result.headline[f"throttled_{key}"] = row["throttled"]
                    if row["errors"]:
                        result.error = row["errors"][0]
        result.extra["outbox_claim"] = outbox_costs(settings, tmp)
        for row in result.extra["outbox_claim"]:
            key = f"claim_ms_{row['store']}_{row['backlog']}"
            if row["history"]:
                key += f"_after_{row['history']}_sent"
            result.headline[key] = round(row["seconds_per_message"] * 1000, 2)
    return result


def one_run(
    app: Any,
    fake: Any,
    mimes: dict[str, bytes],
    kind: str,
    count: int,
    latency_ms: float,
    window: float,
    settings: Settings,
) -> dict[str, Any]:
    latency = latency_ms / 1000
    threads = thread_count(kind, count)
    limit = per_mailbox_limit(latency, window) * count
    real_limit = per_mailbox_limit(latency, REAL_WINDOW) * count
    # what a perfect client could send in the time cap: no mailbox runs dry before it, and
    # nobody is left waiting for the next window after it
    per_mailbox = ideal_accepted(10**6, latency, window, settings.seconds)
    chosen = dict(list(mimes.items())[:count])
    queued = fill_outbox(app.store, chosen, per_mailbox)
    fake.client.configure(
        latency=latency,
        limits={
            "concurrency": CONCURRENCY,
            "per_window": PER_WINDOW,
            "window_seconds": window,
        },
    )
    _reset(fake)
    outcome = deliver_for(app, threads, window, settings.seconds)
    stats = fake.client.stats()
    counters = stats.get("counters", {})
    elapsed = settings.seconds
    ideal = count * per_mailbox
    in_time = outcome["in_time"]
    achieved = in_time / elapsed
    row = {
        "threads_kind": kind,
        "threads": threads,
        "state_store": "postgresql" if kind.endswith("-pg") else "sqlite",
        "mailboxes": count,
        "latency_ms": latency_ms,
        "queued": queued,
        "messages": in_time,
        "sent_including_after_stop": outcome["sent"],
        "accepted_by_fake": int(counters.get("accepted", 0)),
        "seconds": elapsed,
        "wall_seconds": outcome["wall"],
        "messages_per_second": achieved,
        "limit_messages_per_second": limit,
        "ideal_messages": ideal,
        "ideal_messages_per_second": ideal / elapsed,
        "efficiency": in_time / ideal if ideal else 0.0,
        "real_limit_messages_per_second": real_limit,
        "real_messages_per_second": min(achieved, real_limit),
        "throttled": int(counters.get("throttled", 0)),
        "max_in_flight": max(stats.get("max_in_flight", {}).values() or [0]),
        "limiter_waits": outcome["limiter_waits"],
        "retries": outcome["deliverer"].get("retries", 0),
        "errors": outcome["errors"],
    }
    log(
        f"throughput: {kind:>4} thread(s) {count:>3} mailbox(es) {latency_ms:>5g} ms: "
        f"{achieved:7.1f} msg/s, limit {limit:6.1f} (in {elapsed:g} s: {in_time} of ideal {ideal}, "
        f"{row['efficiency']:.0%}), 429s {row['throttled']}, max in flight {row['max_in_flight']}"
    )
    return row


def _reset(fake: Any) -> None:
    """Forget the previous run's messages, counters and rate windows (test API)."""
    response = fake.client.session.post(f"{fake.origin}/_test/reset", timeout=10)
    response.raise_for_status()
