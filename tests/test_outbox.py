"""The durable outbox: record before sending, claim in order, retry, park, supersede."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from sqlalchemy import event, insert

from connector.config import DeliveryConfig
from connector.delivery import Deliverer
from connector.limits import MailboxLimiter
from connector.state import tables as t
from connector.state.store import StateConflict, StateStore, StoredMessage
from connector.transports.directory import DirectoryTransport
from mapping.compose import Outgoing
from mapping.model import Attendee, InviteState, Method, SenderKind, Snapshot
from tests.support.transports import Scripted, forbidden, throttled, unavailable
from tests.support.world import Clock, World

NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path) -> StateStore:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        s = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    else:
        _, url = request.getfixturevalue("pg_schema_url")
        s = StateStore.from_url(url)
    yield s
    s.close()


def a_state(activity: UUID, sequence: int = 0) -> InviteState:
    snap = Snapshot("t", NOW, NOW + timedelta(hours=1), "p", "")
    return InviteState(
        activity,
        f"{activity}@x",
        sequence,
        Attendee("org@x.ru", "O"),
        "Supervisor",
        SenderKind.PERSONAL,
        (Attendee("a@x.ru", "A"),),
        snap,
        NOW,
    )


def rec(
    store: StateStore, state: InviteState, outs: list[Outgoing], origin: str, now: datetime
) -> list[int]:
    """Record a round on top of whatever is stored (these tests are about the outbox)."""
    previous = store.get_state(state.activity_id)
    return store.record(state, outs, origin=origin, now=now, previous=previous)


def out(activity: UUID, sequence: int, *to: str) -> Outgoing:
    return Outgoing(
        Method.REQUEST,
        sequence,
        f"{activity}@x",
        "org@x.ru",
        tuple(to),
        f"<{activity}-{sequence}-{'-'.join(to)}@x>",
        "t",
        f"mime {sequence} {to}".encode(),
    )


def test_plan_and_messages_are_recorded_together(store: StateStore) -> None:
    activity = uuid4()
    ids = rec(store, a_state(activity), [out(activity, 0, "a@x.ru")], origin="manual", now=NOW)
    assert store.get_state(activity) == a_state(activity)
    (message,) = store.messages(ids=ids)
    assert (message.status, message.attempts, message.mime) == ("pending", 0, b"mime 0 ('a@x.ru',)")


def test_messages_of_one_activity_are_claimed_in_order(store: StateStore) -> None:
    activity, other = uuid4(), uuid4()
    rec(store, a_state(activity), [out(activity, 0, "a@x.ru")], origin="manual", now=NOW)
    rec(store, a_state(activity, 1), [out(activity, 1, "b@x.ru")], origin="sync", now=NOW)
    rec(store, a_state(other), [out(other, 0, "c@x.ru")], origin="sync", now=NOW)
    first = store.claim("w1", NOW, 60, limit=10)
    assert [(m.activity_id, m.sequence) for m in first] == [(activity, 0), (other, 0)]
    assert store.claim("w2", NOW, 60, limit=10) == []  # seq 1 waits for seq 0
    assert store.finish(first[0].id, "w1", status="sent", now=NOW)
    (second,) = store.claim("w2", NOW, 60, limit=10)
    assert second.sequence == 1


def test_a_failed_or_parked_message_holds_back_later_ones_until_delivered(
    store: StateStore,
) -> None:
    activity = uuid4()
    rec(store, a_state(activity), [out(activity, 0, "a@x.ru", "b@x.ru")], "manual", NOW)
    rec(store, a_state(activity, 1), [out(activity, 1, "b@x.ru")], origin="sync", now=NOW)
    (m,) = store.claim("w", NOW, 60)
    store.finish(m.id, "w", status="failed", now=NOW, next_attempt_at=NOW + timedelta(minutes=5))
    assert store.claim("w", NOW, 60) == []
    (again,) = store.claim("w", NOW + timedelta(minutes=5), 60)
    assert again.id == m.id and again.attempts == 2
    store.finish(m.id, "w", status="parked", now=NOW, error="gave up")
    # a parked message still holds the meeting: sending the later one first would let a retry
    # deliver the older message after it (a stale REQUEST after its CANCEL)
    assert store.claim("w", NOW + timedelta(days=1), 60) == []
    assert store.requeue(NOW) == 1
    (first,) = store.claim("w", NOW, 60)
    assert first.id == m.id
    store.finish(first.id, "w", status="sent", now=NOW)
    (later,) = store.claim("w", NOW, 60)
    assert later.sequence == 1


@pytest.mark.postgres
def test_a_message_claimed_while_a_round_is_recorded_stays_in_flight(
    pg_schema_url: tuple[str, str],
) -> None:
    """Another instance claims the older message between the round's read of what it
    supersedes and its update: the message in flight must not become superseded, and the
    newer one must wait for it (the per-meeting order)."""
    _, url = pg_schema_url
    store, other = StateStore.from_url(url), StateStore.from_url(url)
    activity = uuid4()
    rec(store, a_state(activity), [out(activity, 0, "a@x.ru")], "manual", NOW)
    taken: list[StoredMessage] = []

    def claim_in_between(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if not taken and statement.lstrip().startswith("SELECT messages.id, messages.recipients"):
            worker = threading.Thread(target=lambda: taken.extend(other.claim("w2", NOW, 300)))
            worker.start()
            worker.join(10)

    event.listen(store.engine, "after_cursor_execute", claim_in_between)
    try:
        rec(store, a_state(activity, 1), [out(activity, 1, "a@x.ru")], "sync", NOW)
    finally:
        event.remove(store.engine, "after_cursor_execute", claim_in_between)
        store.close()
    try:
        assert [m.sequence for m in taken] == [0]
        statuses = [(m.sequence, m.status) for m in other.messages(activity_id=activity)]
        assert statuses == [(0, "sending"), (1, "pending")]
        assert other.claim("w3", NOW, 300) == []
        other.finish(taken[0].id, "w2", status="sent", now=NOW)
        (newer,) = other.claim("w3", NOW, 300)
        assert newer.sequence == 1
    finally:
        other.close()


def test_a_round_planned_from_a_stale_state_is_rejected(store: StateStore) -> None:
    activity = uuid4()
    store.record(
        a_state(activity), [out(activity, 0, "a@x.ru")], origin="manual", now=NOW, previous=None
    )
    with pytest.raises(StateConflict):
        store.record(
            a_state(activity, 1),
            [out(activity, 1, "a@x.ru")],
            origin="sync",
            now=NOW,
            previous=None,
        )
    with pytest.raises(StateConflict):
        store.record(
            a_state(activity, 1),
            [out(activity, 1, "a@x.ru")],
            origin="sync",
            now=NOW,
            previous=a_state(activity, 5),
        )
    assert [m.sequence for m in store.messages(activity_id=activity)] == [0]
    store.record(
        a_state(activity, 1),
        [out(activity, 1, "a@x.ru")],
        origin="sync",
        now=NOW,
        previous=a_state(activity),
    )
    assert store.get_state(activity) == a_state(activity, 1)


def test_expired_claim_is_taken_over_with_the_same_bytes(store: StateStore) -> None:
    activity = uuid4()
    rec(store, a_state(activity), [out(activity, 0, "a@x.ru")], origin="manual", now=NOW)
    (m,) = store.claim("crashed", NOW, 30)
    assert store.claim("w2", NOW + timedelta(seconds=10), 30) == []
    (again,) = store.claim("w2", NOW + timedelta(seconds=31), 30)
    assert (again.id, again.mime, again.message_id) == (m.id, m.mime, m.message_id)
    assert not store.finish(m.id, "crashed", status="sent", now=NOW)  # the claim was lost
    assert store.finish(m.id, "w2", status="sent", now=NOW)


def test_newer_round_supersedes_undelivered_older_messages(store: StateStore) -> None:
    activity = uuid4()
    (old,) = rec(store, a_state(activity), [out(activity, 0, "a@x.ru")], origin="manual", now=NOW)
    (keep,) = rec(
        store, a_state(activity), [out(activity, 0, "b@x.ru", "z@x.ru")], origin="manual", now=NOW
    )
    rec(store, a_state(activity, 1), [out(activity, 1, "a@x.ru", "b@x.ru")], origin="sync", now=NOW)
    statuses = {m.id: m.status for m in store.messages(activity_id=activity)}
    assert statuses[old] == "superseded" and statuses[keep] == "pending"


def test_requeue_gives_parked_messages_a_fresh_budget(store: StateStore) -> None:
    activity = uuid4()
    rec(store, a_state(activity), [out(activity, 0, "a@x.ru")], origin="manual", now=NOW)
    (m,) = store.claim("w", NOW, 60)
    store.finish(m.id, "w", status="parked", now=NOW, error="x")
    assert store.requeue(NOW, activity_id=activity) == 1
    (again,) = store.claim("w", NOW, 60)
    assert again.attempts == 1


def test_a_claim_reads_only_the_open_messages_however_long_the_history(store: StateStore) -> None:
    """The claim must be served by the partial index of open messages: scanning every
    delivered message made each claim (and each idle sync cycle) grow with the message log."""
    delivered = {
        "activity_id": str(uuid4()),
        "uid": "u@x",
        "method": "REQUEST",
        "sequence": 0,
        "sender": "org@x.ru",
        "sender_login": "Supervisor",
        "recipients": "[]",
        "message_id": "<m@x>",
        "subject": "t",
        "mime": b"m",
        "origin": "sync",
        "status": "sent",
        "attempts": 1,
        "next_attempt_at": NOW,
        "created_at": NOW,
        "updated_at": NOW,
    }
    with store.engine.begin() as conn:
        conn.execute(
            insert(t.messages), [{**delivered, "activity_id": str(uuid4())} for _ in range(5000)]
        )
        if store.postgres:
            conn.exec_driver_sql("ANALYZE messages")
    activity = uuid4()
    (wanted,) = rec(store, a_state(activity), [out(activity, 0, "a@x.ru")], "manual", NOW)
    statements: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        (claimed,) = store.claim("w", NOW, 60)
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    assert claimed.id == wanted
    statement, parameters = next(s for s in statements if s[0].lstrip().startswith("SELECT"))
    explain = "EXPLAIN " if store.postgres else "EXPLAIN QUERY PLAN "
    with store.engine.connect() as conn:
        plan = " ".join(str(row) for row in conn.exec_driver_sql(explain + statement, parameters))
    assert "ix_messages_open" in plan, plan


def test_only_finished_messages_lose_their_bytes(store: StateStore) -> None:
    ids = {}
    for outcome in ("sent", "parked", "failed", "pending"):
        activity = uuid4()
        (ids[outcome],) = rec(store, a_state(activity), [out(activity, 0, "a@x.ru")], "sync", NOW)
        if outcome != "pending":
            (claimed,) = store.claim("w", NOW, 60, message_ids=[ids[outcome]])
            store.finish(claimed.id, "w", status=outcome, now=NOW)
    later = uuid4()
    (old,) = rec(store, a_state(later), [out(later, 0, "a@x.ru")], "manual", NOW)
    (ids["superseded"],) = rec(store, a_state(later, 1), [out(later, 1, "a@x.ru")], "sync", NOW)
    ids["superseded"] = old
    assert store.forget_message_bytes(NOW) == 0  # nothing finished before NOW
    assert store.forget_message_bytes(NOW + timedelta(seconds=1)) == 2
    kept = {m.id: (m.status, bool(m.mime)) for m in store.messages(ids=list(ids.values()))}
    assert {name: kept[i] for name, i in ids.items()} == {
        "sent": ("sent", False),
        "superseded": ("superseded", False),
        "parked": ("parked", True),
        "failed": ("failed", True),
        "pending": ("pending", True),
    }
    assert store.forget_message_bytes(NOW + timedelta(days=1)) == 0


def test_leases_are_exclusive_until_they_expire(store: StateStore) -> None:
    assert store.acquire_lease("poll", "a", NOW, 60)
    assert not store.acquire_lease("poll", "b", NOW + timedelta(seconds=30), 60)
    assert store.acquire_lease("poll", "a", NOW + timedelta(seconds=30), 60)  # renewal
    assert store.acquire_lease("poll", "b", NOW + timedelta(seconds=91), 60)
    store.release_lease("poll", "b")
    assert store.acquire_lease("poll", "c", NOW, 60)


def deliverer(store: StateStore, transport: Scripted, clock: Clock, **policy: float) -> Deliverer:
    values = {"retry_max_seconds": 0.0, "max_attempts": 3, "backoff_initial_seconds": 60.0}
    values.update(policy)
    return Deliverer(
        store,
        transport,
        MailboxLimiter(),
        DeliveryConfig(**values),
        worker="w",
        clock=clock,  # type: ignore[arg-type]
    )


def test_transient_failures_back_off_then_park(store: StateStore) -> None:
    clock = Clock(NOW)
    activity = uuid4()
    rec(store, a_state(activity), [out(activity, 0, "a@x.ru")], origin="manual", now=NOW)
    d = deliverer(store, Scripted([unavailable()] * 10), clock)
    (first,) = d.drain()
    assert first.status == "failed" and d.drain() == []
    clock.advance(seconds=60)
    assert [r.status for r in d.drain()] == ["failed"]
    clock.advance(seconds=120)
    assert [r.status for r in d.drain()] == ["parked"]
    (m,) = store.messages(activity_id=activity)
    assert (m.status, m.attempts, m.error_code) == ("parked", 3, "ServiceUnavailable")
    assert [a.outcome for a in store.attempts([m.id])] == ["transient"] * 3


def test_permanent_failure_is_parked_at_once_with_its_code(store: StateStore) -> None:
    activity = uuid4()
    rec(store, a_state(activity), [out(activity, 0, "a@x.ru")], origin="manual", now=NOW)
    (result,) = deliverer(store, Scripted([forbidden()]), Clock(NOW)).drain()
    assert result.status == "parked" and result.error is not None
    assert result.error.remote_code == "ErrorAccessDenied"


def test_retry_after_is_honoured_within_the_retry_budget(store: StateStore) -> None:
    activity = uuid4()
    real_now = datetime.now(UTC)
    rec(store, a_state(activity), [out(activity, 0, "a@x.ru")], origin="manual", now=real_now)
    transport = Scripted([throttled(1.0), unavailable()])
    d = Deliverer(
        store,
        transport,
        MailboxLimiter(),
        DeliveryConfig(retry_max_seconds=10),
        worker="w",
        clock=lambda: datetime.now(UTC),
    )
    started = time.monotonic()
    (result,) = d.drain()
    assert result.status == "sent" and transport.calls == 3
    assert time.monotonic() - started >= 1.0
    (m,) = store.messages(activity_id=activity)
    assert [a.outcome for a in store.attempts([m.id])] == ["transient", "transient", "sent"]


def test_directory_transport_writes_one_file_atomically_and_idempotently(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from connector.ports import Envelope

    t = DirectoryTransport(tmp_path / "box")
    env = Envelope("o@x.ru", "S", ("a@x.ru",), b"bytes", "<id@x>", "uid@x", 3, "REQUEST")
    name = t.send(env)
    assert t.send(env) == name
    assert [p.name for p in (tmp_path / "box").iterdir()] == [name]
    assert (tmp_path / "box" / name).read_bytes() == b"bytes"
    assert name.endswith(".eml") and "-0003-request-" in name


def test_pressing_again_retries_what_was_parked(world: World) -> None:
    w = world
    failing = Scripted([forbidden()])
    w.app.deliverer.transport = failing
    first = w.invite()
    assert [d.status for d in first.deliveries] == ["parked"]
    second = w.invite()  # nothing changed, but the parked message goes out now
    assert [d.status for d in second.deliveries] == ["sent"]
    assert len(failing.accepted) == 1 and failing.accepted[0].sequence == 0


def test_a_cancel_planned_after_a_parked_request_waits_for_it(world: World) -> None:
    """The first invitation is parked; the sync then cancels for a removed participant. The
    CANCEL must not overtake the parked REQUEST: a retry would otherwise put the meeting back
    into the calendar of the person it was just cancelled for."""
    w = world
    failing = Scripted([forbidden()])
    w.app.deliverer.transport = failing
    assert [d.status for d in w.invite().deliveries] == ["parked"]
    w.clock.advance(minutes=1)
    w.sync()
    w.writer.remove_participant(w.ex.meeting, w.ex.dasha)
    w.clock.advance(minutes=1)
    report = w.sync(full=True)
    assert report.messages == 1 and failing.accepted == []  # the CANCEL waits
    w.clock.advance(minutes=1)
    w.app.store.requeue(w.clock(), statuses=("parked", "failed"))  # what `connector retry` does
    w.app.deliverer.drain()
    assert [(e.method, e.sequence, sorted(e.recipients)) for e in failing.accepted] == [
        ("REQUEST", 0, ["dasha@ivanov.by", "denis@ivanov.by", "liza@ivanov.by"]),
        ("CANCEL", 1, ["dasha@ivanov.by"]),
    ]


def test_a_worker_waiting_for_the_rate_window_keeps_its_claim(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Worker A sends one message and waits for the mailbox's rate window (7 s) with the next
    one claimed, longer than a claim lasts (5 s). A renews its claim while it waits, so worker B,
    starting meanwhile, finds nothing to take over: each message is sent once, by A."""
    store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    for _ in range(2):
        activity = uuid4()
        rec(store, a_state(activity), [out(activity, 0, "a@x.ru")], "sync", NOW)
    transport = Scripted()
    limiter = MailboxLimiter(rate_per_minute=1, window_seconds=7.0)  # one message per 7 s
    policy = DeliveryConfig(claim_seconds=5, retry_max_seconds=0)

    began = time.monotonic()

    def clock() -> datetime:  # the test's NOW, running at real speed
        return NOW + timedelta(seconds=time.monotonic() - began)

    first = Deliverer(store, transport, limiter, policy, worker="A", clock=clock)
    second = first.with_worker("B")
    results: dict[str, list[str]] = {}
    a = threading.Thread(target=lambda: results.update(A=[r.status for r in first.drain()]))
    a.start()
    time.sleep(5.5)  # A's first claim on the second message would have expired by now
    results["B"] = [r.status for r in second.drain()]
    a.join(20)
    store.close()
    sent = [e.message_id for e in transport.accepted]
    assert len(sent) == 2 and len(set(sent)) == 2, sent
    assert results == {"A": ["sent", "sent"], "B": []}, results


def test_a_worker_whose_claim_was_taken_over_does_not_send(store: StateStore) -> None:
    """A's claim expired (a long pause) and B took the message over: A, resuming, must not send
    a second copy."""
    activity = uuid4()
    rec(store, a_state(activity), [out(activity, 0, "a@x.ru")], "sync", NOW)
    clock = Clock(NOW)
    transport = Scripted()
    a = deliverer(store, transport, clock)
    b = a.with_worker("B")
    (mine,) = store.claim(a.worker, clock(), 60)
    clock.advance(seconds=61)
    (taken,) = store.claim(b.worker, clock(), 60)
    assert taken.id == mine.id
    assert a.deliver(mine).status == "lost" and transport.accepted == []
    assert b.deliver(taken).status == "sent" and len(transport.accepted) == 1


def test_a_run_that_never_reached_the_server_does_not_use_up_an_attempt(
    store: StateStore,
) -> None:
    """The mailbox is held by a server's Retry-After (another message got a 429): claiming the
    message and putting it back must not count as a try, or a long storm would park messages
    nobody tried (and a parked message holds its meeting)."""
    activity = uuid4()
    rec(store, a_state(activity), [out(activity, 0, "a@x.ru")], "sync", NOW)
    clock = Clock(NOW)
    transport = Scripted()
    d = deliverer(store, transport, clock, max_attempts=1)
    held_for = 600.0
    d.limiter.hold("org@x.ru", held_for)
    for _ in range(3):
        (result,) = d.drain()
        assert result.status == "failed" and transport.accepted == []
        (message,) = store.messages(activity_id=activity)
        assert (message.status, message.attempts) == ("failed", 0)
        assert message.next_attempt_at >= clock() + timedelta(seconds=held_for - 1)
        clock.advance(seconds=1)
        store.requeue(clock(), statuses=("failed",))  # come back at once, still held
    d.limiter = MailboxLimiter()
    (result,) = d.drain()
    assert result.status == "sent" and len(transport.accepted) == 1


@pytest.mark.postgres
def test_discard_and_a_concurrent_retry_do_not_both_win(pg_schema_url: tuple[str, str]) -> None:
    """Another instance re-queues the parked message while `discard` is deciding: the message
    ends either discarded (and reported so) or re-queued (and not reported), never both."""
    _, url = pg_schema_url
    store, other = StateStore.from_url(url), StateStore.from_url(url)
    activity = uuid4()
    (parked,) = rec(store, a_state(activity), [out(activity, 0, "a@x.ru")], "manual", NOW)
    (claimed,) = store.claim("w", NOW, 60)
    store.finish(claimed.id, "w", status="parked", now=NOW, error="refused")
    requeued: list[int] = []
    retry = threading.Thread(target=lambda: requeued.append(other.requeue(NOW)))

    def retry_in_between(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if not retry.is_alive() and not requeued and statement.lstrip().startswith("UPDATE"):
            retry.start()
            retry.join(1.0)  # it waits for the row discard holds

    event.listen(store.engine, "after_cursor_execute", retry_in_between)
    try:
        reported = store.discard([parked], NOW)
    finally:
        event.remove(store.engine, "after_cursor_execute", retry_in_between)
        store.close()
    retry.join(10)
    (message,) = other.messages(ids=[parked])
    other.close()
    assert (reported, message.status, requeued) == ([parked], "discarded", [0])
