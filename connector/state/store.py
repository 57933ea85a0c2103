"""The state store: UID map, durable outbox, message log, key-values and leases.

Data flows one way: a plan and its messages are recorded in one transaction before anything is
sent (:meth:`StateStore.record`); workers then claim due messages (``FOR UPDATE SKIP LOCKED``
on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), deliver them and mark the result. A message
claimed by a worker that died stays ``sending`` until its claim expires; it is then claimed
again and sent with the same bytes (same Message-ID, UID and SEQUENCE).

Messages of one activity are delivered in the order they were planned: a message is not
claimable while an earlier message of the same activity is still undelivered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from connector.state import tables as t
from mapping.compose import Outgoing
from mapping.errors import ConnectorError
from mapping.model import Attendee, InviteState, SenderKind, Snapshot

#: messages that hold back the later messages of their meeting: a parked message too, so a
#: stale REQUEST retried later can never follow the CANCEL planned after it
UNDELIVERED = ("pending", "sending", "failed", "parked")
#: messages a newer round to the same people replaces
SUPERSEDABLE = ("pending", "failed", "parked")


class StateUnavailable(ConnectorError):
    exit_code = 1
    code = "state_unavailable"


class StateConflict(ConnectorError):
    """The UID map entry changed between reading it and recording a new round."""

    exit_code = 1
    code = "state_conflict"


@dataclass(frozen=True)
class StoredMessage:
    id: int
    activity_id: UUID
    uid: str
    method: str
    sequence: int
    sender: str
    sender_login: str
    recipients: tuple[str, ...]
    message_id: str
    subject: str
    mime: bytes
    origin: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    error_code: str | None
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True)
class Attempt:
    message: int
    worker: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    status_code: int | None
    error_code: str | None
    detail: str | None


@dataclass(frozen=True)
class MeetingOverview:
    state: InviteState
    meeting_end: datetime
    pending: int
    failed: int
    parked: int
    sent: int
    last_problem: str | None
    last_problem_at: datetime | None


def make_engine(url: str, busy_timeout: float = 30.0) -> Engine:
    """An engine for the state store; SQLite gets WAL, a busy timeout and BEGIN IMMEDIATE."""
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            future=True,
            connect_args={"check_same_thread": False, "timeout": busy_timeout},
            poolclass=StaticPool if memory else None,
        )

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, future=True, pool_pre_ping=True)


def _state_to_row(state: InviteState) -> dict[str, Any]:
    snap = asdict(state.snapshot)
    snap["start"] = state.snapshot.start.isoformat()
    snap["end"] = state.snapshot.end.isoformat()
    return {
        "uid": state.uid,
        "sequence": state.sequence,
        "organizer_email": state.organizer.email,
        "organizer_name": state.organizer.name,
        "sender_login": state.sender_login,
        "sender_user_id": str(state.sender_user_id) if state.sender_user_id else None,
        "sender_kind": state.sender_kind.value,
        "invited": json.dumps(
            [
                {
                    "email": a.email,
                    "name": a.name,
                    "contact_id": str(a.contact_id) if a.contact_id else None,
                }
                for a in state.invited
            ],
            ensure_ascii=False,
        ),
        "snapshot": json.dumps(snap, ensure_ascii=False),
        "cancelled": state.cancelled,
        "meeting_end": state.snapshot.end,
        "last_sent_at": state.last_sent_at,
    }


def _row_to_state(row: Any) -> InviteState:
    snap = json.loads(row.snapshot)
    snapshot = Snapshot(
        title=snap["title"],
        start=datetime.fromisoformat(snap["start"]),
        end=datetime.fromisoformat(snap["end"]),
        location=snap["location"],
        description=snap["description"],
        cancelled=bool(snap.get("cancelled", False)),
    )
    invited = tuple(
        Attendee(a["email"], a["name"], UUID(a["contact_id"]) if a.get("contact_id") else None)
        for a in json.loads(row.invited)
    )
    return InviteState(
        activity_id=UUID(row.activity_id),
        uid=row.uid,
        sequence=row.sequence,
        organizer=Attendee(row.organizer_email, row.organizer_name),
        sender_login=row.sender_login,
        sender_kind=SenderKind(row.sender_kind),
        sender_user_id=UUID(row.sender_user_id) if row.sender_user_id else None,
        invited=invited,
        snapshot=snapshot,
        last_sent_at=row.last_sent_at,
        cancelled=bool(row.cancelled),
    )


def _row_to_message(row: Any) -> StoredMessage:
    return StoredMessage(
        id=row.id,
        activity_id=UUID(row.activity_id),
        uid=row.uid,
        method=row.method,
        sequence=row.sequence,
        sender=row.sender,
        sender_login=row.sender_login,
        recipients=tuple(json.loads(row.recipients)),
        message_id=row.message_id,
        subject=row.subject,
        mime=bytes(row.mime),
        origin=row.origin,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        error_code=row.error_code,
        created_at=row.created_at,
        sent_at=row.sent_at,
    )


class StateStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"

    @classmethod
    def from_url(cls, url: str, busy_timeout: float = 30.0) -> StateStore:
        store = cls(make_engine(url, busy_timeout))
        store.migrate()
        return store

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except IntegrityError as exc:
            if "meetings" in str(exc.statement or ""):
                raise StateConflict(detail="concurrent first send") from exc
            raise StateUnavailable(detail=type(exc).__name__) from exc
        except SQLAlchemyError as exc:
            raise StateUnavailable(detail=type(exc).__name__) from exc

    def migrate(self) -> None:
        try:
            t.metadata.create_all(self.engine)
            for table in t.metadata.sorted_tables:  # indexes added since a store was created
                for index in table.indexes:
                    index.create(self.engine, checkfirst=True)
        except SQLAlchemyError as exc:
            raise StateUnavailable(detail=type(exc).__name__) from exc
        if self.get("schema_version") is None:
            self.put("schema_version", str(t.SCHEMA_VERSION))

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        with self._tx() as conn:
            conn.execute(select(1))

    # -- UID map --------------------------------------------------------------------------
    def get_state(self, activity_id: UUID) -> InviteState | None:
        with self._tx() as conn:
            row = conn.execute(
                select(t.meetings).where(t.meetings.c.activity_id == str(activity_id))
            ).first()
        return _row_to_state(row) if row else None

    def states(self, activity_ids: Sequence[UUID]) -> dict[UUID, InviteState]:
        keys = [str(a) for a in activity_ids]
        out: dict[UUID, InviteState] = {}
        with self._tx() as conn:
            for i in range(0, len(keys), 500):
                for row in conn.execute(
                    select(t.meetings).where(t.meetings.c.activity_id.in_(keys[i : i + 500]))
                ):
                    state = _row_to_state(row)
                    out[state.activity_id] = state
        return out

    def tracked(self, activity_ids: Sequence[UUID]) -> set[UUID]:
        """Which of these activities have an entry in the UID map."""
        keys = [str(a) for a in activity_ids]
        found: set[UUID] = set()
        with self._tx() as conn:
            for i in range(0, len(keys), 500):
                found.update(
                    UUID(k)
                    for k in conn.execute(
                        select(t.meetings.c.activity_id).where(
                            t.meetings.c.activity_id.in_(keys[i : i + 500])
                        )
                    ).scalars()
                )
        return found

    def tracked_page(self, after: str | None, limit: int, now: datetime) -> list[UUID]:
        """One page (by activity id) of tracked meetings that are not cancelled and not over."""
        mt = t.meetings
        query = select(mt.c.activity_id).where(mt.c.cancelled.is_(False), mt.c.meeting_end >= now)
        if after is not None:
            query = query.where(mt.c.activity_id > after)
        with self._tx() as conn:
            keys = conn.execute(query.order_by(mt.c.activity_id).limit(limit)).scalars().all()
        return [UUID(k) for k in keys]

    def record(
        self,
        state: InviteState,
        outgoing: Sequence[Outgoing],
        *,
        origin: str,
        now: datetime,
        previous: InviteState | None,
        acting_login: str | None = None,
    ) -> list[int]:
        """Record the new state and its messages in one transaction; return the message ids.

        ``previous`` is the state the plan was made from: if the stored state is no longer that
        one (another process or request recorded a round meanwhile), nothing is written and
        :class:`StateConflict` is raised, so the caller plans again from the fresh state. This
        is what keeps two instances from sending the same round twice.

        ``acting_login`` is the CRM user whose credentials send (the one who pressed the button);
        automatic updates send as the user of the first send.

        Older undelivered messages of the activity whose recipients all get a newer message in
        this round are superseded: they would only bring stale data.
        """
        key = str(state.activity_id)
        row = _state_to_row(state)
        new_recipients = {r.lower() for o in outgoing for r in o.recipients}
        ids: list[int] = []
        with self._tx() as conn:
            lock = select(t.meetings).where(t.meetings.c.activity_id == key)
            if self.postgres:
                lock = lock.with_for_update()
            exists = conn.execute(lock).first()
            stored = _row_to_state(exists) if exists else None
            if stored != previous:
                raise StateConflict(activity_id=key)
            if exists:
                conn.execute(
                    update(t.meetings)
                    .where(t.meetings.c.activity_id == key)
                    .values(**row, updated_at=now, last_problem=None, last_problem_at=None)
                )
            else:
                conn.execute(
                    insert(t.meetings).values(
                        activity_id=key, **row, created_at=now, updated_at=now
                    )
                )
            if outgoing:
                older = conn.execute(
                    select(t.messages.c.id, t.messages.c.recipients).where(
                        t.messages.c.activity_id == key,
                        t.messages.c.status.in_(SUPERSEDABLE),
                    )
                ).all()
                stale = [
                    m.id
                    for m in older
                    if {r.lower() for r in json.loads(m.recipients)} <= new_recipients
                ]
                if stale:
                    conn.execute(
                        update(t.messages)
                        # the status again: another instance may have claimed one since the
                        # read, and a message in flight must stay in the per-meeting order
                        .where(t.messages.c.id.in_(stale), t.messages.c.status.in_(SUPERSEDABLE))
                        .values(status="superseded", updated_at=now)
                    )
            for o in outgoing:
                result = conn.execute(
                    insert(t.messages).values(
                        activity_id=key,
                        uid=o.uid,
                        method=o.method.value,
                        sequence=o.sequence,
                        sender=o.sender,
                        sender_login=acting_login or state.sender_login,
                        recipients=json.dumps(list(o.recipients)),
                        message_id=o.message_id,
                        subject=o.subject,
                        mime=o.mime,
                        origin=origin,
                        status="pending",
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                        updated_at=now,
                    )
                )
                key_row = result.inserted_primary_key
                assert key_row is not None
                ids.append(int(key_row[0]))
        return ids

    def set_problem(self, activity_id: UUID, problem: str | None, now: datetime) -> None:
        """Remember why the last automatic update of a meeting could not be sent."""
        with self._tx() as conn:
            conn.execute(
                update(t.meetings)
                .where(t.meetings.c.activity_id == str(activity_id))
                .values(last_problem=problem, last_problem_at=now if problem else None)
            )

    # -- outbox ---------------------------------------------------------------------------
    def claim(
        self,
        worker: str,
        now: datetime,
        claim_seconds: float,
        *,
        activity_id: UUID | None = None,
        message_ids: Sequence[int] | None = None,
        limit: int = 1,
    ) -> list[StoredMessage]:
        """Claim up to ``limit`` due messages for ``worker`` (status becomes ``sending``)."""
        m = t.messages
        earlier = m.alias("earlier")
        due = or_(
            and_(m.c.status.in_(("pending", "failed")), m.c.next_attempt_at <= now),
            and_(m.c.status == "sending", m.c.claimed_until < now),
        )
        blocked = (
            select(earlier.c.id)
            .where(
                earlier.c.activity_id == m.c.activity_id,
                earlier.c.id < m.c.id,
                earlier.c.status.in_(UNDELIVERED),
            )
            .exists()
        )
        # the first term is the partial index's own condition, with its values written into the
        # SQL: a planner can only use a partial index when the query's condition implies the
        # index's, and SQLite (and PostgreSQL's generic plans) cannot see that through bound
        # parameters; otherwise every claim walks every delivered message
        open_only = m.c.status.in_(
            bindparam("open_statuses", t.OPEN_STATUSES, expanding=True, literal_execute=True)
        )
        query = select(m.c.id).where(open_only, due, ~blocked)
        if activity_id is not None:
            query = query.where(m.c.activity_id == str(activity_id))
        if message_ids is not None:
            query = query.where(m.c.id.in_(list(message_ids)))
        query = query.order_by(m.c.id).limit(limit)
        if self.postgres:
            query = query.with_for_update(skip_locked=True, of=m)
        with self._tx() as conn:
            ids = list(conn.execute(query).scalars())
            if not ids:
                return []
            conn.execute(
                update(m)
                .where(m.c.id.in_(ids))
                .values(
                    status="sending",
                    claimed_by=worker,
                    claimed_until=now + timedelta(seconds=claim_seconds),
                    attempts=m.c.attempts + 1,
                    updated_at=now,
                )
            )
            rows = conn.execute(select(m).where(m.c.id.in_(ids)).order_by(m.c.id)).all()
        return [_row_to_message(r) for r in rows]

    def finish(
        self,
        message: int,
        worker: str,
        *,
        status: str,
        now: datetime,
        error: str | None = None,
        error_code: str | None = None,
        next_attempt_at: datetime | None = None,
        refund_attempt: bool = False,
    ) -> bool:
        """Mark the result of a claimed message. False if the claim was lost meanwhile.
        ``refund_attempt``: the claim did not reach the transport, so it does not count."""
        assert status in ("sent", "failed", "parked")
        m = t.messages
        values: dict[str, Any] = {
            "status": status,
            "updated_at": now,
            "claimed_by": None,
            "claimed_until": None,
            "last_error": error,
            "error_code": error_code,
        }
        if status == "sent":
            values["sent_at"] = now
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        if refund_attempt:
            values["attempts"] = m.c.attempts - 1
        with self._tx() as conn:
            result = conn.execute(
                update(m)
                .where(m.c.id == message, m.c.claimed_by == worker, m.c.status == "sending")
                .values(**values)
            )
        return bool(result.rowcount)

    def extend_claim(self, message: int, worker: str, until: datetime) -> bool:
        """Move the claim's expiry; False when ``worker`` no longer holds the claim (it
        expired and another worker took the message over, or it was finished)."""
        m = t.messages
        with self._tx() as conn:
            result = conn.execute(
                update(m)
                .where(m.c.id == message, m.c.claimed_by == worker, m.c.status == "sending")
                .values(claimed_until=until)
            )
        return int(result.rowcount) == 1

    def add_attempt(
        self,
        message: int,
        worker: str,
        *,
        started_at: datetime,
        finished_at: datetime | None,
        outcome: str,
        status_code: int | None = None,
        error_code: str | None = None,
        detail: str | None = None,
    ) -> None:
        with self._tx() as conn:
            conn.execute(
                insert(t.attempts).values(
                    message=message,
                    worker=worker,
                    started_at=started_at,
                    finished_at=finished_at,
                    outcome=outcome,
                    status_code=status_code,
                    error_code=error_code,
                    detail=detail[:2000] if detail else None,
                )
            )

    def forget_message_bytes(self, before: datetime) -> int:
        """Empty the stored MIME of messages sent or superseded before ``before`` (nothing can
        send them again); their log rows stay. Returns how many were emptied."""
        m = t.messages
        with self._tx() as conn:
            result = conn.execute(
                update(m)
                .where(
                    m.c.status.in_(("sent", "superseded", "discarded")),
                    m.c.updated_at < before,
                    func.length(m.c.mime) > 0,
                )
                .values(mime=b"")
            )
        return int(result.rowcount)

    def discard(self, message_ids: Sequence[int], now: datetime) -> list[int]:
        """Give up parked or failed messages for good, so the later messages of their meeting
        can go; returns the ids discarded (others are left as they are)."""
        m = t.messages
        with self._tx() as conn:  # one statement: a concurrent retry or claim wins or loses whole
            found = conn.execute(
                update(m)
                .where(m.c.id.in_(list(message_ids)), m.c.status.in_(("parked", "failed")))
                .values(status="discarded", updated_at=now)
                .returning(m.c.id)
            ).scalars()
            return sorted(found)

    def requeue(
        self,
        now: datetime,
        *,
        activity_id: UUID | None = None,
        statuses: Sequence[str] = ("parked",),
    ) -> int:
        """Put failed or parked messages back in the queue with a fresh attempt budget."""
        m = t.messages
        query = update(m).where(m.c.status.in_(list(statuses)))
        if activity_id is not None:
            query = query.where(m.c.activity_id == str(activity_id))
        with self._tx() as conn:
            result = conn.execute(
                query.values(status="pending", attempts=0, next_attempt_at=now, updated_at=now)
            )
        return int(result.rowcount)

    def messages(
        self, *, activity_id: UUID | None = None, ids: Sequence[int] | None = None
    ) -> list[StoredMessage]:
        m = t.messages
        query = select(m).order_by(m.c.id)
        if activity_id is not None:
            query = query.where(m.c.activity_id == str(activity_id))
        if ids is not None:
            query = query.where(m.c.id.in_(list(ids)))
        with self._tx() as conn:
            return [_row_to_message(r) for r in conn.execute(query)]

    def attempts(self, message_ids: Sequence[int]) -> list[Attempt]:
        a = t.attempts
        with self._tx() as conn:
            rows = conn.execute(
                select(a).where(a.c.message.in_(list(message_ids))).order_by(a.c.id)
            ).all()
        return [
            Attempt(
                r.message,
                r.worker,
                r.started_at,
                r.finished_at,
                r.outcome,
                r.status_code,
                r.error_code,
                r.detail,
            )
            for r in rows
        ]

    def queue_depth(self) -> dict[str, int]:
        m = t.messages
        with self._tx() as conn:
            rows = conn.execute(select(m.c.status, func.count()).group_by(m.c.status)).all()
        return {str(status): int(count) for status, count in rows}

    def message_counts(self) -> dict[tuple[str, str], int]:
        """Messages in the outbox by (method, status)."""
        m = t.messages
        with self._tx() as conn:
            rows = conn.execute(
                select(m.c.method, m.c.status, func.count()).group_by(m.c.method, m.c.status)
            ).all()
        return {(str(method), str(status)): int(count) for method, status, count in rows}

    def attempt_counts(self) -> dict[tuple[str, str], int]:
        """Delivery attempts by (method of the message, outcome)."""
        m, a = t.messages, t.attempts
        with self._tx() as conn:
            rows = conn.execute(
                select(m.c.method, a.c.outcome, func.count())
                .select_from(a.join(m, a.c.message == m.c.id))
                .group_by(m.c.method, a.c.outcome)
            ).all()
        return {(str(method), str(outcome)): int(count) for method, outcome, count in rows}

    def overview(self, activity_id: UUID | None = None) -> list[MeetingOverview]:
        """Per meeting: the UID map entry and counts of its messages by status."""
        mt, m = t.meetings, t.messages
        counts: dict[str, dict[str, int]] = {}
        with self._tx() as conn:
            query = select(mt).order_by(mt.c.created_at, mt.c.activity_id)
            cq = select(m.c.activity_id, m.c.status, func.count()).group_by(
                m.c.activity_id, m.c.status
            )
            if activity_id is not None:
                query = query.where(mt.c.activity_id == str(activity_id))
                cq = cq.where(m.c.activity_id == str(activity_id))
            rows = conn.execute(query).all()
            for key, status, count in conn.execute(cq):
                counts.setdefault(key, {})[status] = int(count)
        out = []
        for row in rows:
            c = counts.get(row.activity_id, {})
            out.append(
                MeetingOverview(
                    state=_row_to_state(row),
                    meeting_end=row.meeting_end,
                    pending=c.get("pending", 0) + c.get("sending", 0),
                    failed=c.get("failed", 0),
                    parked=c.get("parked", 0),
                    sent=c.get("sent", 0),
                    last_problem=row.last_problem,
                    last_problem_at=row.last_problem_at,
                )
            )
        return out

    # -- delegated-mode token caches (ciphertext only; see connector.token_vault) ---------
    def get_token_cache(self, login: str) -> bytes | None:
        with self._tx() as conn:
            value = conn.execute(
                select(t.tokens.c.ciphertext).where(t.tokens.c.login == login.lower())
            ).scalar()
        return None if value is None else bytes(value)

    def put_token_cache(self, login: str, ciphertext: bytes, now: datetime) -> None:
        key = login.lower()
        with self._tx() as conn:
            done = conn.execute(
                update(t.tokens)
                .where(t.tokens.c.login == key)
                .values(ciphertext=ciphertext, updated_at=now)
            )
            if not done.rowcount:
                conn.execute(
                    insert(t.tokens).values(login=key, ciphertext=ciphertext, updated_at=now)
                )

    def delete_token_cache(self, login: str) -> bool:
        with self._tx() as conn:
            done = conn.execute(delete(t.tokens).where(t.tokens.c.login == login.lower()))
        return bool(done.rowcount)

    def token_logins(self) -> list[str]:
        with self._tx() as conn:
            rows = conn.execute(select(t.tokens.c.login).order_by(t.tokens.c.login))
            return [str(v) for v in rows.scalars()]

    # -- key-values and leases ------------------------------------------------------------
    def get(self, key: str) -> str | None:
        with self._tx() as conn:
            value = conn.execute(select(t.kv.c.value).where(t.kv.c.key == key)).scalar()
        return None if value is None else str(value)

    def put(self, key: str, value: str) -> None:
        with self._tx() as conn:
            done = conn.execute(update(t.kv).where(t.kv.c.key == key).values(value=value))
            if not done.rowcount:
                conn.execute(insert(t.kv).values(key=key, value=value))

    def acquire_lease(self, name: str, holder: str, now: datetime, seconds: float) -> bool:
        """Take or renew the lease ``name``; False while somebody else holds it."""
        until = now + timedelta(seconds=seconds)
        lease = t.leases
        try:
            with self._tx() as conn:
                taken = conn.execute(
                    update(lease)
                    .where(
                        lease.c.name == name,
                        or_(lease.c.holder == holder, lease.c.expires_at < now),
                    )
                    .values(holder=holder, expires_at=until)
                )
                if taken.rowcount:
                    return True
                if conn.execute(select(lease.c.name).where(lease.c.name == name)).first():
                    return False
                conn.execute(insert(lease).values(name=name, holder=holder, expires_at=until))
                return True
        except StateUnavailable as exc:
            if isinstance(exc.__cause__, IntegrityError):
                return False
            raise

    def release_lease(self, name: str, holder: str) -> None:
        lease = t.leases
        with self._tx() as conn:
            conn.execute(delete(lease).where(lease.c.name == name, lease.c.holder == holder))
