"""Benchmark 2: the cost of a sync cycle as the CRM grows.

A BPMSoft-shaped PostgreSQL database (the adapter's own table definitions) is filled with
generate_series: N activities with 4-6 participants each (5 on average, the owner first),
50,000 contacts, a few users with personal mailboxes. The first ``tracked`` activities are
upcoming meetings with an entry in the UID map, written straight into the state store's
``meetings`` table from what the real planner decides for a first send (and checked: a full
reconcile right after must find nothing to update, and a dry-run "Send invitation" on a sample
must plan nothing). The CRM grows from size to size by inserting more rows.

At each size:

1. without the optional indexes: incremental cycles with 0 and 10 changed meetings;
2. the migration ``connector/sql/bpmsoft_indexes_postgresql.sql`` is applied (timed);
3. incremental cycles with 0, 10 and 1,000 changed meetings, then a full reconcile;
4. ``EXPLAIN (ANALYZE, BUFFERS)`` of the statements the adapter actually sent for change
   detection and the meeting fetch (captured from the engine, same parameters), with and
   without the indexes.

A *changed meeting* is a tracked activity whose place was edited after the watermark. Before
each measured cycle the watermark is set to the clock and the reconcile is marked as done, so a
cycle sees exactly the edits made for it. Delivery goes to a transport that only counts and an
unlimited mailbox limiter: the cycle time is the connector's own work (change detection,
planning, building, recording, outbox bookkeeping), not Exchange's. Statements are counted on
both engines (CRM and state store) with SQLAlchemy events, beside the cycle's own ``queries``
counter. The state store is SQLite, the default.
"""

from __future__ import annotations

import hashlib
import random
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import Engine, create_engine, insert, text

from bench.common import ROOT, Run, StatementCounter, log, temporary_database
from connector.app import App, build_app
from connector.config import parse_config
from connector.crm.sample import (
    IN_DOUBT,
    MEETING_CATEGORY,
    NOT_STARTED,
    PARTICIPANT_ROLE,
    TASK_TYPE,
    CrmWriter,
)
from connector.delivery import DeliveryResult
from connector.limits import MailboxLimiter
from connector.ports import Envelope
from connector.state import tables as state_tables
from connector.state.store import _state_to_row
from connector.sync import LAST_RECONCILE, WATERMARK, SyncService
from mapping.crm_names import ALL_EMPLOYEES
from mapping.identity import meeting_uid
from mapping.model import Sender, SenderKind
from mapping.planner import plan, snapshot_of
from mapping.recipients import candidates, select

MIGRATION = ROOT / "connector" / "sql" / "bpmsoft_indexes_postgresql.sql"
#: the bench's "now"; every generated row was modified before it
T0 = datetime(2030, 3, 4, 8, 0, tzinfo=UTC)
DOMAIN = "bench.example"
USERS = 20
CONTACTS = 50_000
CALL_CATEGORY = UUID("03df85bf-6b19-4dea-8463-d5d49b80bb28")


@dataclass(frozen=True)
class Settings:
    sizes: tuple[int, ...]
    tracked: int
    changes: tuple[int, ...]
    #: repetitions of the cheap scenarios (up to 10 changes) and of the expensive ones
    repeats: int
    heavy_repeats: int
    without_indexes: tuple[int, ...]
    sample_checks: int
    #: the largest change count runs only at these sizes (None: at every size)
    heavy_sizes: tuple[int, ...] | None = None

    def changes_at(self, size: int) -> tuple[int, ...]:
        if self.heavy_sizes is None or size in self.heavy_sizes:
            return self.changes
        return tuple(c for c in self.changes if c != max(self.changes))


SETTINGS = {
    "smoke": Settings((2_000,), 300, (0, 10), 1, 1, (0, 10), 3),
    # quick: 2,000 tracked meetings, 100 changed instead of 1,000 and only at the first size
    "quick": Settings((10_000, 100_000), 2_000, (0, 10, 100), 3, 1, (0, 10), 5, (10_000,)),
    "full": Settings((10_000, 100_000, 1_000_000), 10_000, (0, 10, 1_000), 9, 3, (0, 10), 20),
}


class CountingTransport:
    """Accepts every message instantly (the cycle's own cost is what is measured)."""

    name = "counting"

    def __init__(self) -> None:
        self.sent = 0

    def send(self, envelope: Envelope) -> str:
        self.sent += 1
        return "counted"

    def close(self) -> None:
        return None


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


# -- the CRM ------------------------------------------------------------------------------
def _uuid_sql(kind: str, expr: str) -> str:
    """A deterministic, random-looking uuid from an integer (same formula in Python below)."""
    return f"md5('{kind}:' || ({expr})::text)::uuid"


def _uuid(kind: str, number: int) -> UUID:
    return UUID(hashlib.md5(f"{kind}:{number}".encode()).hexdigest())


def activity_id(number: int) -> UUID:
    return _uuid("activity", number)


def user_contact(u: int) -> UUID:
    return _uuid("usercontact", u)


def user_id(u: int) -> UUID:
    return _uuid("user", u)


def mailbox_address(u: int) -> str:
    return f"user{u}@{DOMAIN}"


def create_crm(engine: Engine) -> None:
    """Tables (no optional indexes), lookups, users with personal mailboxes, contacts."""
    writer = CrmWriter(engine, clock=lambda: T0 - timedelta(days=800))
    writer.create_schema(indexes=False)
    writer.statuses()
    writer.role("All employees", id=ALL_EMPLOYEES, kind=0)
    writer.category("Встреча", enabled=True, id=MEETING_CATEGORY)
    writer.category("Звонок", enabled=False, id=CALL_CATEGORY, type_id=None)
    for u in range(USERS):
        contact = writer.contact(f"Сотрудник {u}", mailbox_address(u), id=user_contact(u))
        uid = writer.user(
            f"user{u}",
            contact,
            time_zone="Russian Standard Time",
            roles=[ALL_EMPLOYEES],
            id=user_id(u),
        )
        writer.mailbox(uid, mailbox_address(u), name=f"Сотрудник {u}", is_default=True)
    with engine.begin() as conn:
        conn.execute(
            text(
                f"""
                INSERT INTO "Contact" ("Id", "Name", "Email", "CreatedOn", "ModifiedOn")
                SELECT {_uuid_sql("contact", "i")}, 'Контакт Клиентов ' || i,
                       'contact' || i || '@client' || (i % 97) || '.example.ru',
                       :old, :old
                FROM generate_series(1, :n) AS i
                """
            ),
            {"n": CONTACTS, "old": (T0 - timedelta(days=800)).replace(tzinfo=None)},
        )


def grow_crm(engine: Engine, start: int, stop: int, tracked: int) -> None:
    """Activities start+1..stop with their participants (INSERT ... SELECT generate_series).

    Activities 1..tracked are upcoming meetings (1-60 days ahead); the rest spread over two
    years back and two months ahead, a third of them calls (a category without invitations).
    Every row was last modified 1-700 days before T0.
    """
    t0 = T0.replace(tzinfo=None)
    owner = f"md5('usercontact:' || (i % {USERS})::text)::uuid"
    modified = (
        "(:t0 - interval '1 day' - (i % 700) * interval '1 day'"
        " - (i % 86400) * interval '1 second')"
    )
    start_date = """(CASE WHEN i <= :tracked
                THEN :t0 + (1 + i % 60) * interval '1 day' + (i % 9) * interval '1 hour'
                ELSE :t0 - interval '730 days' + (i % 790) * interval '1 day'
                     + (i % 9) * interval '1 hour' END)"""
    params = {"lo": start + 1, "hi": stop, "t0": t0, "tracked": tracked}
    with engine.begin() as conn:
        conn.execute(
            text(
                f"""
                INSERT INTO "Activity" ("Id", "Title", "StartDate", "DueDate", "StatusId",
                    "ActivityCategoryId", "TypeId", "OwnerId", "AuthorId", "ShowInScheduler",
                    "Location", "CreatedOn", "ModifiedOn")
                SELECT {_uuid_sql("activity", "i")}, 'Встреча с клиентом ' || i,
                       {start_date}, {start_date} + interval '30 minutes',
                       :status,
                       CASE WHEN i > :tracked AND i % 3 = 0 THEN :call ELSE :meeting END,
                       :task, {owner}, {owner}, true,
                       'Кабинет ' || (i % 500), {modified}, {modified}
                FROM generate_series(CAST(:lo AS integer), CAST(:hi AS integer)) AS i
                """
            ),
            {
                **params,
                "status": NOT_STARTED,
                "call": CALL_CATEGORY,
                "meeting": MEETING_CATEGORY,
                "task": TASK_TYPE,
            },
        )
        conn.execute(
            text(
                f"""
                INSERT INTO "ActivityParticipant" ("Id", "ActivityId", "ParticipantId",
                    "RoleId", "InviteParticipant", "InviteResponseId", "CreatedOn", "ModifiedOn")
                SELECT md5('participant:' || i || ':' || j)::uuid,
                       {_uuid_sql("activity", "i")},
                       CASE WHEN j = 0 THEN {owner}
                            ELSE {_uuid_sql("contact", f"(i * 7 + j * 7919) % {CONTACTS} + 1")}
                       END,
                       :role, true, :response,
                       {modified} + j * interval '1 millisecond',
                       {modified} + j * interval '1 millisecond'
                FROM generate_series(CAST(:lo AS integer), CAST(:hi AS integer)) AS i
                CROSS JOIN LATERAL generate_series(0, 3 + i % 3) AS j
                """
            ),
            {**params, "role": PARTICIPANT_ROLE, "response": IN_DOUBT},
        )


def migration_statements() -> list[str]:
    body = "\n".join(
        line for line in MIGRATION.read_text().splitlines() if not line.lstrip().startswith("--")
    )
    return [s.strip() for s in body.split(";") if s.strip()]


def apply_migration(engine: Engine) -> float:
    """Run the optional migration as an admin would (autocommit, CONCURRENTLY)."""
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for statement in migration_statements():
            conn.exec_driver_sql(statement)
    return time.perf_counter() - started


def drop_migration_indexes(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for statement in migration_statements():
            found = re.search(r'EXISTS\s+"([^"]+)"', statement)
            if found:
                conn.exec_driver_sql(f'DROP INDEX IF EXISTS "{found.group(1)}"')


def analyze(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql('ANALYZE "Activity"')
        conn.exec_driver_sql('ANALYZE "ActivityParticipant"')
        conn.exec_driver_sql('ANALYZE "Contact"')


def table_sizes(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                """
                SELECT relname, n_live_tup,
                       pg_total_relation_size(relid) AS bytes
                FROM pg_stat_user_tables
                WHERE relname IN ('Activity', 'ActivityParticipant', 'Contact')
                """
            )
        ).all()
        counts = {
            name: conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar()
            for name in ("Activity", "ActivityParticipant")
        }
    return {
        "rows": counts,
        "bytes": {r.relname: int(r.bytes) for r in rows},
    }


# -- the UID map --------------------------------------------------------------------------
def seed_tracked(app: App, tracked: int, sent_at: datetime) -> int:
    """UID-map entries for activities 1..tracked, as the real planner would record them for a
    first send by the owner from their personal mailbox, written in one transaction."""
    users = {}
    for u in range(USERS):
        user = app.crm.user_by_id(user_id(u))
        assert user is not None, f"user{u} missing"
        users[user.contact_id] = user
    ids = [activity_id(i) for i in range(1, tracked + 1)]
    rows: list[dict[str, Any]] = []
    for i in range(0, len(ids), 500):
        meetings = app.crm.meetings(ids[i : i + 500])
        for aid in ids[i : i + 500]:
            meeting = meetings[aid]
            user = users[meeting.owner_contact_id]
            sender = Sender(user.email or "", user.name, SenderKind.PERSONAL, user.login, user.id)
            chosen = select(candidates(meeting, user, sender.address), None)
            result = plan(
                activity_id=aid,
                uid=meeting_uid(aid, app.config.invitations.uid_domain),
                snapshot=snapshot_of(meeting),
                previous=None,
                target=chosen.attendees,
                sender=sender,
                now=sent_at,
            )
            assert result.state is not None
            # the same row StateStore.record writes for a first send
            rows.append(
                {
                    "activity_id": str(aid),
                    **_state_to_row(result.state),
                    "created_at": sent_at,
                    "updated_at": sent_at,
                }
            )
    with app.store.engine.begin() as conn:
        for i in range(0, len(rows), 1000):
            conn.execute(insert(state_tables.meetings), rows[i : i + 1000])
    return len(rows)


def check_seeded(app: App, tracked: int, sample: int) -> dict[str, Any]:
    """The real "Send invitation" path (dry run) must find nothing to send for a sample."""
    numbers = random.Random(7).sample(range(1, tracked + 1), sample)
    agree = 0
    for n in numbers:
        aid = activity_id(n)
        meeting = app.crm.meeting(aid)
        assert meeting is not None
        login = next(
            f"user{u}" for u in range(USERS) if user_contact(u) == meeting.owner_contact_id
        )
        result = app.service.invite(aid, login, dry_run=True)
        if not result.outgoing and result.reasons == ("no_change",):
            agree += 1
    return {"sampled": len(numbers), "no_change": agree}


# -- cycles -------------------------------------------------------------------------------
class Probe:
    """Counts statements on both engines and times the outbox drain inside a cycle."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.crm = StatementCounter(app.crm.engine)
        self.state = StatementCounter(app.store.engine)
        self.drain_seconds = 0.0
        inner = app.deliverer.drain

        def timed_drain(
            limit: int = 1000, stop: Callable[[], bool] = lambda: False
        ) -> list[DeliveryResult]:
            started = time.perf_counter()
            try:
                return inner(limit, stop)
            finally:
                self.drain_seconds += time.perf_counter() - started

        app.deliverer.drain = timed_drain  # type: ignore[method-assign]

    def reset(self) -> None:
        self.crm.reset()
        self.state.reset()
        self.drain_seconds = 0.0

    def close(self) -> None:
        self.crm.close()
        self.state.close()


def edit_meetings(engine: Engine, ids: list[UUID], stamp: datetime, label: str) -> None:
    """What a CRM user does: change the place of these meetings (one statement)."""
    if not ids:
        return
    with engine.begin() as conn:
        conn.execute(
            text(
                'UPDATE "Activity" SET "Location" = :place, "ModifiedOn" = :stamp '
                'WHERE "Id" = ANY(:ids)'
            ),
            {"place": f"Переговорная {label}", "stamp": stamp.replace(tzinfo=None), "ids": ids},
        )


def one_cycle(
    app: App,
    clock: Clock,
    probe: Probe,
    crm_engine: Engine,
    *,
    changed: list[UUID],
    label: str,
    full: bool = False,
    fresh_watermark: bool = True,
) -> dict[str, Any]:
    """Edit ``changed`` just after the watermark, then time one cycle.

    ``fresh_watermark=False`` leaves the watermark where the previous cycle put it and only
    lets a minute pass: the next cycle of a running service.
    """
    if fresh_watermark:
        clock.advance(600)  # earlier edits fall out of the overlap window
        app.store.put(WATERMARK, clock().isoformat())
    app.store.put(LAST_RECONCILE, clock().isoformat())
    # a new place every time (the clock never repeats), so every edit is a significant change
    edit_meetings(crm_engine, changed, clock() + timedelta(seconds=30), f"{label} {clock():%j%H%M}")
    clock.advance(60)
    probe.reset()
    started = time.perf_counter()
    report = SyncService(app).cycle(full=full)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "drain_seconds": probe.drain_seconds,
        "rows_seen": report.rows_seen,
        "examined": report.examined,
        "updated": report.updated,
        "messages": report.messages,
        "delivered": sum(d.status == "sent" for d in report.deliveries),
        "problems": report.problems,
        "skipped": dict(report.skipped),
        "cycle_queries": report.queries,
        "crm_statements": probe.crm.count,
        "crm_seconds": probe.crm.seconds,
        "state_statements": probe.state.count,
        "state_seconds": probe.state.seconds,
        "full": report.full,
    }


def scenario(
    app: App,
    clock: Clock,
    probe: Probe,
    crm_engine: Engine,
    tracked: int,
    changes: int,
    repeats: int,
    rng: random.Random,
    *,
    full: bool = False,
) -> dict[str, Any]:
    runs = []
    for r in range(repeats):
        chosen = [activity_id(n) for n in rng.sample(range(1, tracked + 1), changes)]
        runs.append(
            one_cycle(
                app, clock, probe, crm_engine, changed=chosen, label=f"{changes}-{r}", full=full
            )
        )
    times = sorted(run["seconds"] for run in runs)
    middle = runs[[run["seconds"] for run in runs].index(times[len(times) // 2])]
    return {
        "kind": "full_reconcile" if full else "incremental",
        "changed": changes,
        "seconds": middle["seconds"],
        "min_seconds": times[0],
        "max_seconds": times[-1],
        "median_run": middle,
        "runs": runs,
    }


# -- query plans --------------------------------------------------------------------------
QUERY_KINDS = {
    "changed_activities": re.compile(r'FROM "Activity"\s+WHERE "Activity"\."ModifiedOn" >='),
    "changed_participants": re.compile(
        r'FROM "ActivityParticipant"\s+WHERE "ActivityParticipant"\."ModifiedOn" >='
    ),
    "meetings": re.compile(r'FROM "Activity" LEFT OUTER JOIN "ActivityCategory"'),
    "meeting_participants": re.compile(r'FROM "ActivityParticipant" JOIN "Contact"'),
}


def capture_plans(
    app: App, clock: Clock, crm_engine: Engine, tracked: int, rng: random.Random
) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of the statements a 10-change cycle really sent."""
    keeper = StatementCounter(app.crm.engine, keep=True)
    try:
        chosen = [activity_id(n) for n in rng.sample(range(1, tracked + 1), 10)]
        clock.advance(600)
        app.store.put(WATERMARK, clock().isoformat())
        app.store.put(LAST_RECONCILE, clock().isoformat())
        edit_meetings(crm_engine, chosen, clock() + timedelta(seconds=30), "plans")
        clock.advance(60)
        SyncService(app).cycle()
        statements = list(keeper.statements)
    finally:
        keeper.close()
    plans: dict[str, Any] = {}
    with crm_engine.connect() as conn:
        for kind, pattern in QUERY_KINDS.items():
            found = next(((s, p) for s, p in statements if pattern.search(s)), None)
            if found is None:
                continue
            statement, params = found
            lines = [
                str(row[0])
                for row in conn.exec_driver_sql(
                    f"EXPLAIN (ANALYZE, BUFFERS) {statement}", params
                ).all()
            ]
            plans[kind] = {
                "statement": _shorten_in_list(statement),
                "plan": lines,
                "summary": _plan_summary(lines),
            }
        conn.rollback()
    return plans


def _shorten_in_list(statement: str) -> str:
    """Long IN (...) lists of bound parameters are shown by their length."""

    def repl(match: re.Match[str]) -> str:
        count = match.group(0).count("%(")
        return f"IN (<{count} parameters>)"

    return re.sub(r"IN \((?:%\([^)]+\)s(?:, )?)+\)", repl, " ".join(statement.split()))


def _plan_summary(lines: list[str]) -> dict[str, Any]:
    text_plan = "\n".join(lines)
    scans = re.findall(
        r"((?:Parallel )?(?:Index Only Scan|Index Scan|Bitmap Index Scan|Seq Scan)"
        r"(?: Backward)?(?: using \"?[\w]+\"?)? on \"?[\w]+\"?)",
        text_plan,
    )
    execution = re.search(r"Execution Time: ([\d.]+) ms", text_plan)
    top = next((line for line in lines if "Buffers:" in line), "")
    hit = sum(int(x) for x in re.findall(r"shared hit=(\d+)", top))
    read = sum(int(x) for x in re.findall(r"read=(\d+)", top))
    return {
        "scans": list(dict.fromkeys(scans)),
        "execution_ms": float(execution.group(1)) if execution else None,
        "top_shared_hit": hit,
        "top_shared_read": read,
        "seq_scan": any("Seq Scan" in s for s in scans),
    }


# -- the run ------------------------------------------------------------------------------
def _config(crm_url: str, state_dir: Path) -> dict[str, Any]:
    return {
        "crm": {"url": crm_url},
        "state": {"url": f"sqlite:///{state_dir / 'state.db'}"},
        "transport": "directory",
        "directory": {"path": str(state_dir / "unused-outbox")},
        "invitations": {"uid_domain": DOMAIN},
        "delivery": {"retry_max_seconds": 0},
        "api": {"enabled": False},
        "logging": {"level": "WARNING"},
    }


def run(mode: str, out: Path) -> Run:
    settings = SETTINGS[mode]
    result = Run("sync_cost", mode)
    result.parameters = {
        "sizes": list(settings.sizes),
        "participants_per_activity": "4-6 (mean 5)",
        "contacts": CONTACTS,
        "users": USERS,
        "tracked_meetings": settings.tracked,
        "changes": list(settings.changes),
        "repeats": settings.repeats,
        "heavy_repeats": settings.heavy_repeats,
        "batch_size": 500,
        "overlap_seconds": 300,
        "state_store": "sqlite",
        "transport": "counting (no I/O), limiter unlimited",
    }
    plans: dict[str, Any] = {}
    with temporary_database("sync") as url, tempfile.TemporaryDirectory() as tmp:
        crm_engine = create_engine(url)
        log("sync_cost: creating the CRM")
        create_crm(crm_engine)
        clock = Clock(T0)
        app = build_app(
            parse_config(_config(url, Path(tmp))),
            clock=clock,
            transport=CountingTransport(),
            limiter=MailboxLimiter(1_000_000, 64),
        )
        probe: Probe | None = None
        rng = random.Random(2030)
        try:
            done = 0
            for size in settings.sizes:
                log(f"sync_cost: {size:,} activities: generating rows")
                drop_migration_indexes(crm_engine)
                started = time.perf_counter()
                grow_crm(crm_engine, done, size, settings.tracked)
                gen_seconds = time.perf_counter() - started
                done = size
                analyze(crm_engine)
                if probe is None:
                    log(f"sync_cost: seeding {settings.tracked:,} tracked meetings")
                    seed_seconds, seeded = _time(
                        lambda: seed_tracked(app, settings.tracked, T0 - timedelta(days=1))
                    )
                    result.extra["seed"] = {"meetings": seeded, "seconds": seed_seconds}
                    probe = Probe(app)
                row: dict[str, Any] = {
                    "activities": size,
                    "generate_seconds": gen_seconds,
                    "scenarios": [],
                }
                log(f"sync_cost: {size:,}: cycles without the optional indexes")
                for changes in settings.without_indexes:
                    outcome = scenario(
                        app,
                        clock,
                        probe,
                        crm_engine,
                        settings.tracked,
                        changes,
                        settings.heavy_repeats,
                        rng,
                    )
                    row["scenarios"].append({**outcome, "indexes": False})
                size_plans = {
                    "without_indexes": capture_plans(app, clock, crm_engine, settings.tracked, rng)
                }
                log(f"sync_cost: {size:,}: applying the migration")
                row["migration_seconds"] = apply_migration(crm_engine)
                row["tables"] = table_sizes(crm_engine)
                if size == settings.sizes[0]:
                    # consistency of the seeded UID map with the real paths
                    check = one_cycle(
                        app, clock, probe, crm_engine, changed=[], label="check", full=True
                    )
                    result.extra["seed_check"] = {
                        "full_reconcile_examined": check["examined"],
                        "full_reconcile_updated": check["updated"],
                        **check_seeded(app, settings.tracked, settings.sample_checks),
                    }
                for changes in settings.changes_at(size):
                    log(f"sync_cost: {size:,}: incremental cycle, {changes} changed")
                    repeats = settings.repeats if changes <= 10 else settings.heavy_repeats
                    outcome = scenario(
                        app, clock, probe, crm_engine, settings.tracked, changes, repeats, rng
                    )
                    row["scenarios"].append({**outcome, "indexes": True})
                # the service's next cycle after the biggest batch of edits: nothing new, but
                # the watermark is the newest ModifiedOn seen, so the overlap reads them again
                log(f"sync_cost: {size:,}: the next cycle, nothing new changed")
                after = one_cycle(
                    app, clock, probe, crm_engine, changed=[], label="next", fresh_watermark=False
                )
                row["scenarios"].append(
                    {
                        "kind": "next_cycle",
                        "changed": 0,
                        "after_changed": max(settings.changes_at(size)),
                        "seconds": after["seconds"],
                        "min_seconds": after["seconds"],
                        "max_seconds": after["seconds"],
                        "median_run": after,
                        "runs": [after],
                        "indexes": True,
                    }
                )
                log(f"sync_cost: {size:,}: full reconcile")
                outcome = scenario(
                    app,
                    clock,
                    probe,
                    crm_engine,
                    settings.tracked,
                    0,
                    settings.heavy_repeats,
                    rng,
                    full=True,
                )
                row["scenarios"].append({**outcome, "indexes": True})
                size_plans["with_indexes"] = capture_plans(
                    app, clock, crm_engine, settings.tracked, rng
                )
                plans[str(size)] = size_plans
                result.results.append(row)
                for s in row["scenarios"]:
                    kind = {"full_reconcile": "full", "next_cycle": "next"}
                    name = kind.get(s["kind"], f"inc{s['changed']}")
                    name += "" if s["indexes"] else "_noidx"
                    m = s["median_run"]
                    log(
                        f"sync_cost: {size:>9,} {name:>10}: {s['seconds'] * 1000:8.1f} ms, "
                        f"rows {m['rows_seen']}, examined {m['examined']}, "
                        f"updated {m['updated']}, crm stmts {m['crm_statements']} "
                        f"({m['crm_seconds'] * 1000:.1f} ms), "
                        f"state stmts {m['state_statements']}"
                    )
                    result.headline[f"{name}_ms_{size}"] = round(s["seconds"] * 1000, 1)
                    result.headline[f"{name}_crm_statements_{size}"] = m["crm_statements"]
                    result.headline[f"{name}_crm_ms_{size}"] = round(m["crm_seconds"] * 1000, 2)
        finally:
            if probe is not None:
                probe.close()
            app.close()
            crm_engine.dispose()
    result.extra["plans"] = plans
    write_plans(plans, out / "sync_plans.txt")
    return result


def _time(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


def write_plans(plans: dict[str, Any], path: Path) -> None:
    """The query plans as text, one block per CRM size, query and index state."""
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = []
    for size, states in plans.items():
        for state, kinds in states.items():
            for kind, data in kinds.items():
                parts.append(
                    f"=== {int(size):,} activities, {state.replace('_', ' ')}: {kind}\n"
                    f"{data['statement']}\n\n" + "\n".join(data["plan"]) + "\n"
                )
    path.write_text("\n".join(parts))
