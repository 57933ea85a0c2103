"""Benchmark 1: what it costs to build an invitation, and what building one per recipient costs.

One *build* is what the connector does for a meeting sent for the first time: the planner
(``snapshot_of`` + ``plan``) and, for each planned message, ``compose`` (body from the Jinja2
templates, the iCalendar object, the MIME message). With up to 500 recipients that is one message
whose To: header and ATTENDEE lines name everybody.

The *naive* build is the same meeting sent as one message per recipient: the planner once, then
N ``compose`` calls, each with one recipient and the full attendee list (the manual wants every
invitation to list the invited people, so a per-recipient message cannot drop them). The ratio
naive / batched is the price of not batching.

Everything runs on one thread, so builds per second are per core. Peak memory is measured with
``tracemalloc`` on a separate build (tracemalloc slows the code down, so it is never on while
timing).
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid5
from zoneinfo import ZoneInfo

from bench.common import Run, log
from mapping.body import render_body
from mapping.compose import Outgoing, compose
from mapping.ical import build_calendar
from mapping.identity import meeting_uid, message_id
from mapping.mime import build_mime
from mapping.model import (
    Attendee,
    Meeting,
    Method,
    Participant,
    Plan,
    PlannedMessage,
    Sender,
    SenderKind,
)
from mapping.planner import plan, snapshot_of

NOW = datetime(2030, 3, 4, 8, 0, tzinfo=UTC)
ZONE = ZoneInfo("Europe/Moscow")
DOMAIN = "ivanov.ru"
LANGUAGE = "ru"
SENDER = Sender("ivanov@ivanov.ru", "Супервизоров Иван", SenderKind.PERSONAL, "Supervisor")
_NS = UUID("5a0c6a3e-8f65-4f0e-9a57-0e3c1d1b2a10")


@dataclass(frozen=True)
class Settings:
    sizes: tuple[int, ...]
    #: each timing round repeats the build until this much time has passed
    min_seconds: float
    rounds: int
    #: naive builds time only this many of the N compose calls and scale up (None: all of them)
    naive_sample: int | None
    #: naive peak memory is measured for N up to this, estimated above it
    naive_memory_max: int
    breakdown: bool
    #: a call slower than this is timed in one round only
    slow_call: float = 1.0


SETTINGS = {
    "smoke": Settings((1, 10), 0.02, 1, None, 10, False),
    "quick": Settings((1, 10, 100, 500), 0.2, 2, 4, 10, False, 0.5),
    "full": Settings((1, 10, 100, 500), 2.0, 5, None, 100, True, 10.0),
}


def meeting_with(attendees: int) -> Meeting:
    """A meeting shaped like the manual's example, with ``attendees`` participants."""
    activity = uuid5(_NS, f"meeting-{attendees}")
    people = tuple(
        Participant(
            contact_id=uuid5(_NS, f"contact-{i}"),
            name=f"Участникова Мария Петровна {i}",
            email=f"participant.{i}@client{i % 7}.ivanov.by",
        )
        for i in range(attendees)
    )
    start = NOW + timedelta(days=2, hours=2)
    return Meeting(
        activity_id=activity,
        title="Встреча с клиентом: согласование договора поставки",
        start=start,
        end=start + timedelta(minutes=45),
        location="Кабинет 404, Москва, ул. Тверская, 1",
        notes="",
        status_id=None,
        category_id=None,
        category_name="Встреча",
        invitation_enabled=True,
        cancelled=False,
        participants=people,
    )


def _attendees(meeting: Meeting) -> list[Attendee]:
    return [Attendee(p.email or "", p.name, p.contact_id) for p in meeting.participants]


def plan_first_send(meeting: Meeting) -> Plan:
    return plan(
        activity_id=meeting.activity_id,
        uid=meeting_uid(meeting.activity_id, DOMAIN),
        snapshot=snapshot_of(meeting),
        previous=None,
        target=_attendees(meeting),
        sender=SENDER,
        now=NOW,
    )


def _compose(planned: PlannedMessage, result: Plan) -> Outgoing:
    assert result.state is not None
    return compose(
        planned, state=result.state, zone=ZONE, language=LANGUAGE, dtstamp=NOW, domain=DOMAIN
    )


def build_batched(meeting: Meeting) -> list[Outgoing]:
    """What the connector does: plan, then one message per chunk of up to 500 recipients."""
    result = plan_first_send(meeting)
    return [_compose(m, result) for m in result.messages]


def build_naive(meeting: Meeting, calls: int | None = None) -> list[Outgoing]:
    """One message per recipient (only the first ``calls`` of them when sampling)."""
    result = plan_first_send(meeting)
    everyone = tuple(a for m in result.messages for a in m.recipients)
    chosen = everyone if calls is None else everyone[:calls]
    return [
        _compose(PlannedMessage(Method.REQUEST, 0, (person,), everyone), result)
        for person in chosen
    ]


@dataclass(frozen=True)
class Timing:
    seconds: float  # median over rounds of the mean time of one call
    best: float
    cpu: float  # CPU seconds of one call (median round), the process's time
    calls: int
    value: Any = None


def _round(action: Callable[[], Any], min_seconds: float) -> tuple[float, float, int]:
    """One timing round: (wall seconds per call, CPU seconds per call, calls)."""
    gc.collect()
    calls = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while True:
        action()
        calls += 1
        if time.perf_counter() - wall0 >= min_seconds:
            break
    return (time.perf_counter() - wall0) / calls, (time.process_time() - cpu0) / calls, calls


def _timing(rounds: list[tuple[float, float, int]], value: Any) -> Timing:
    ordered = sorted(rounds)
    middle = ordered[len(ordered) // 2]
    return Timing(middle[0], ordered[0][0], middle[1], sum(r[2] for r in rounds), value)


def measure(
    action: Callable[[], Any], min_seconds: float, rounds: int, slow_call: float = 1.0
) -> Timing:
    """Repeat ``action`` until ``min_seconds`` pass, ``rounds`` times; median of the rounds.

    A call that alone takes longer than ``slow_call`` seconds is timed in one round only (a
    naive build of a 500-attendee meeting takes half a minute).
    """
    return measure_pair(action, None, min_seconds, rounds, slow_call)[0]


def measure_pair(
    first: Callable[[], Any],
    second: Callable[[], Any] | None,
    min_seconds: float,
    rounds: int,
    slow_call: float = 1.0,
) -> tuple[Timing, Timing | None]:
    """Time two actions in alternating rounds, so that a change in the machine's load (it is
    shared) affects both alike; see :func:`measure`."""
    actions = [a for a in (first, second) if a is not None]
    values, counts = [], []
    for action in actions:
        started = time.perf_counter()
        values.append(action())  # warm caches (templates, zone data) outside the measurement
        counts.append(1 if time.perf_counter() - started > slow_call else rounds)
    results: list[list[tuple[float, float, int]]] = [[] for _ in actions]
    for r in range(max(counts)):
        for i, action in enumerate(actions):
            if r < counts[i]:
                results[i].append(_round(action, min_seconds))
    timings = [_timing(rs, v) for rs, v in zip(results, values, strict=True)]
    return timings[0], (timings[1] if second is not None else None)


def peak_memory(action: Callable[[], Any]) -> tuple[int, Any]:
    """Peak bytes allocated by Python while ``action`` runs (results kept alive until the end)."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        value = action()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return peak, value


def breakdown(meeting: Meeting, settings: Settings) -> dict[str, float]:
    """Seconds per build spent in each stage, timed separately with the same arguments."""
    result = plan_first_send(meeting)
    assert result.state is not None
    state = result.state
    planned = result.messages[0]
    body = render_body(
        snapshot=state.snapshot,
        organizer=state.organizer,
        invited=planned.attendees,
        zone=ZONE,
        language=LANGUAGE,
        heading_key=None,
    )
    ics = build_calendar(
        method=planned.method,
        uid=state.uid,
        sequence=0,
        dtstamp=NOW,
        snapshot=state.snapshot,
        organizer=state.organizer,
        attendees=planned.attendees,
        description=body.text,
    )
    mid = message_id(state.uid, 0, "REQUEST", [r.email for r in planned.recipients], DOMAIN)
    stages: dict[str, Callable[[], Any]] = {
        "planner": lambda: plan_first_send(meeting),
        "body": lambda: render_body(
            snapshot=state.snapshot,
            organizer=state.organizer,
            invited=planned.attendees,
            zone=ZONE,
            language=LANGUAGE,
            heading_key=None,
        ),
        "icalendar": lambda: build_calendar(
            method=planned.method,
            uid=state.uid,
            sequence=0,
            dtstamp=NOW,
            snapshot=state.snapshot,
            organizer=state.organizer,
            attendees=planned.attendees,
            description=body.text,
        ),
        "mime": lambda: build_mime(
            sender=state.organizer,
            recipients=planned.recipients,
            subject=state.snapshot.title,
            text=body.text,
            html=body.html,
            ics=ics,
            method=planned.method,
            message_id=mid,
            date=NOW,
        ),
    }
    short = max(settings.min_seconds / 4, 0.01)
    return {name: measure(fn, short, 1).seconds for name, fn in stages.items()}


def one_size(size: int, settings: Settings) -> dict[str, Any]:
    meeting = meeting_with(size)
    batched = measure(
        lambda: build_batched(meeting), settings.min_seconds, settings.rounds, settings.slow_call
    )
    built: list[Outgoing] = batched.value
    batched_peak, _ = peak_memory(lambda: build_batched(meeting))

    sample = settings.naive_sample
    calls = size if sample is None or sample >= size else sample
    scale = size / calls
    naive = measure(
        lambda: build_naive(meeting, calls),
        settings.min_seconds,
        settings.rounds,
        settings.slow_call,
    )
    naive_messages: list[Outgoing] = naive.value
    naive_bytes = sum(len(o.mime) for o in naive_messages) * scale
    if size <= settings.naive_memory_max:
        naive_peak, _ = peak_memory(lambda: build_naive(meeting, None))
        naive_peak_estimated = False
    else:
        # the transient peak of one message plus every other message's bytes kept for the outbox
        one_peak, one = peak_memory(lambda: build_naive(meeting, 1))
        retained, _ = peak_memory(lambda: build_naive(meeting, min(calls, 4)))
        per_message = max((retained - one_peak) / max(min(calls, 4) - 1, 1), len(one[0].mime))
        naive_peak = int(one_peak + (size - 1) * per_message)
        naive_peak_estimated = True
    naive_seconds = naive.seconds * scale
    row: dict[str, Any] = {
        "attendees": size,
        "batched": {
            "messages": len(built),
            "seconds_per_build": batched.seconds,
            "best_seconds_per_build": batched.best,
            "cpu_seconds_per_build": batched.cpu,
            "builds_per_second": 1 / batched.seconds,
            "recipients_per_second": size / batched.seconds,
            "mime_bytes": sum(len(o.mime) for o in built),
            "peak_bytes": batched_peak,
            "timed_builds": batched.calls,
        },
        "naive": {
            "messages": size,
            "seconds_per_meeting": naive_seconds,
            "cpu_seconds_per_meeting": naive.cpu * scale,
            "messages_per_second": size / naive_seconds,
            "meetings_per_second": 1 / naive_seconds,
            "mime_bytes": int(naive_bytes),
            "peak_bytes": naive_peak,
            "peak_estimated": naive_peak_estimated,
            "compose_calls_timed": calls,
            "sampled": calls < size,
        },
        "ratio": naive_seconds / batched.seconds,
    }
    if settings.breakdown:
        row["breakdown_seconds"] = breakdown(meeting, settings)
    return row


def run(mode: str, out: Path) -> Run:
    settings = SETTINGS[mode]
    result = Run("build_cost", mode)
    result.parameters = {
        "sizes": list(settings.sizes),
        "min_seconds_per_round": settings.min_seconds,
        "rounds": settings.rounds,
        "naive_sample": settings.naive_sample,
        "language": LANGUAGE,
        "zone": str(ZONE),
        "threads": 1,
    }
    for size in settings.sizes:
        log(f"build_cost: {size} attendees")
        row = one_size(size, settings)
        result.results.append(row)
        b, n = row["batched"], row["naive"]
        log(
            f"build_cost: {size:>3} attendees: {b['builds_per_second']:.1f} builds/s "
            f"({b['seconds_per_build'] * 1000:.2f} ms, peak {b['peak_bytes'] / 2**20:.2f} MiB); "
            f"naive {n['seconds_per_meeting'] * 1000:.1f} ms/meeting, ratio {row['ratio']:.1f}x"
        )
        result.headline[f"builds_per_s_{size}"] = round(b["builds_per_second"], 2)
        result.headline[f"ms_per_build_{size}"] = round(b["seconds_per_build"] * 1000, 3)
        result.headline[f"naive_ratio_{size}"] = round(row["ratio"], 2)
        result.headline[f"peak_mib_{size}"] = round(b["peak_bytes"] / 2**20, 3)
    if settings.naive_sample is not None:
        result.notes.append(
            f"naive builds time {settings.naive_sample} of the N compose calls and scale by "
            "N/sample (every call builds the same-size message); run --full for complete ones"
        )
    return result
