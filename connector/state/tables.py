"""Tables of the state store (SQLite by default, PostgreSQL for several instances)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

SCHEMA_VERSION = 1


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out; stored naive UTC on every database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError("UtcDateTime needs an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


metadata = MetaData()

#: the UID map: one row per activity that invitations were sent for
meetings = Table(
    "meetings",
    metadata,
    Column("activity_id", String(36), primary_key=True),
    Column("uid", String(255), nullable=False, unique=True),
    Column("sequence", Integer, nullable=False),
    Column("organizer_email", String(320), nullable=False),
    Column("organizer_name", String(255), nullable=False),
    Column("sender_login", String(255), nullable=False),
    Column("sender_user_id", String(36)),
    Column("sender_kind", String(16), nullable=False),
    Column("invited", Text, nullable=False),  # JSON list of {email, name, contact_id}
    Column("snapshot", Text, nullable=False),  # JSON of mapping.model.Snapshot
    Column("cancelled", Boolean, nullable=False, default=False),
    Column("meeting_end", UtcDateTime(), nullable=False),
    Column("last_sent_at", UtcDateTime(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("last_problem", Text),  # why the last sync could not send (e.g. right revoked)
    Column("last_problem_at", UtcDateTime()),
)
Index("ix_meetings_end", meetings.c.meeting_end)

#: the outbox and the message log: every message planned, with its bytes and its fate
messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("activity_id", String(36), nullable=False),
    Column("uid", String(255), nullable=False),
    Column("method", String(16), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("sender", String(320), nullable=False),
    Column("sender_login", String(255), nullable=False),
    Column("recipients", Text, nullable=False),  # JSON list of addresses
    Column("message_id", String(255), nullable=False),
    Column("subject", Text, nullable=False),
    Column("mime", LargeBinary, nullable=False),
    Column("origin", String(16), nullable=False),  # manual | sync | retry
    # pending -> sending -> sent | failed (retry later) | parked (gave up) | superseded;
    # parked or failed -> discarded (``connector discard``: an admin gave the message up)
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("claimed_by", String(255)),
    Column("claimed_until", UtcDateTime()),
    Column("last_error", Text),
    Column("error_code", String(255)),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime()),
)
Index("ix_messages_activity", messages.c.activity_id, messages.c.id)
#: the messages still to deliver, in planning order: a claim reads this small index from its
#: start instead of sorting every due row (which made draining a large backlog quadratic)
OPEN_STATUSES = ("pending", "sending", "failed")
Index(
    "ix_messages_open",
    messages.c.id,
    sqlite_where=messages.c.status.in_(OPEN_STATUSES),
    postgresql_where=messages.c.status.in_(OPEN_STATUSES),
)

#: every delivery attempt of every message
attempts = Table(
    "attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message", Integer, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("worker", String(255), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime()),
    Column("outcome", String(16), nullable=False),  # sent | transient | permanent | unknown
    Column("status_code", Integer),
    Column("error_code", String(255)),
    Column("detail", Text),
)
Index("ix_attempts_message", attempts.c.message)

#: small named values: schema version, sync watermark, last reconcile
kv = Table(
    "kv",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)

#: leases (leader of the polling job, instance locks)
leases = Table(
    "leases",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
)

#: delegated-mode msal token caches, encrypted
tokens = Table(
    "tokens",
    metadata,
    Column("login", String(255), primary_key=True),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)
