"""The planner: from what the CRM shows and what was sent before, decide what to send.

Rules (manual 2.11, RFC 5546, and the way sabre/vobject's iTIP broker diffs attendees):

* first send -> REQUEST, SEQUENCE 0, to the target attendees;
* a significant change (start, end, place, title, description, cancelled) -> REQUEST with
  SEQUENCE + 1 to every target attendee;
* no significant change -> REQUEST with the same SEQUENCE to newly added attendees only;
* attendees invited before and no longer targeted -> CANCEL to them (SEQUENCE + 1);
* a cancelled meeting that was invited -> CANCEL with STATUS:CANCELLED to everyone invited;
* nothing to say -> nothing is sent;
* the organizer and UID of the first send stay for the life of the meeting;
* more recipients than ``max_recipients_per_message`` -> several messages.

SEQUENCE never goes down and the UID never changes; nobody gets a REQUEST and a CANCEL in
the same round.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from uuid import UUID

from mapping.errors import Refusal
from mapping.model import (
    Attendee,
    InviteState,
    Meeting,
    Method,
    Plan,
    PlannedMessage,
    Sender,
    Snapshot,
)
from mapping.text import clean_block, clean_line, shorten

TITLE_LIMIT = 255
#: dates outside this range are refused (Outlook's own calendar ends in 4500)
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(4500, 1, 1, tzinfo=UTC)
LOCATION_LIMIT = 255
#: the notes appear four times in a message (text, HTML, the calendar part and invite.ics):
#: capped so that a meeting with huge notes stays far below Graph's 4 MB request limit
DESCRIPTION_LIMIT = 20_000


@dataclass(frozen=True)
class PlanOptions:
    cancel_dropped: bool = True
    max_recipients_per_message: int = 500


def snapshot_of(meeting: Meeting, *, include_notes: bool = False) -> Snapshot:
    """The sendable view of a meeting; refuses a meeting without a valid start and end."""
    if meeting.start is None or meeting.end is None:
        missing = "start" if meeting.start is None else "end"
        raise Refusal("invalid_time", detail=f"{missing} is empty")
    if meeting.end < meeting.start:
        raise Refusal("invalid_time", detail="end before start")
    if not (meeting.start >= EARLIEST and meeting.end < LATEST):
        raise Refusal("invalid_time", detail="date out of range")
    # an activity without a title (possible through the database) is named after its category
    title = clean_line(meeting.title, TITLE_LIMIT) or clean_line(meeting.category_name) or "—"
    return Snapshot(
        title=title,
        start=meeting.start,
        end=meeting.end,
        location=clean_line(meeting.location, LOCATION_LIMIT),
        description=shorten(clean_block(meeting.notes), DESCRIPTION_LIMIT) if include_notes else "",
        cancelled=meeting.cancelled,
    )


def plan(
    *,
    activity_id: UUID,
    uid: str,
    snapshot: Snapshot,
    previous: InviteState | None,
    target: Sequence[Attendee],
    sender: Sender,
    now: datetime,
    options: PlanOptions = PlanOptions(),
) -> Plan:
    """Decide the messages of one round and the state to record with them."""
    target = _unique(target)
    if snapshot.cancelled:
        return _plan_cancel(snapshot, previous, now, options)
    if previous is None:
        if not target:
            return Plan((), None, ("no_recipients",))
        state = InviteState(
            activity_id=activity_id,
            uid=uid,
            sequence=0,
            organizer=sender.organizer,
            sender_login=sender.login,
            sender_kind=sender.kind,
            sender_user_id=sender.user_id,
            invited=target,
            snapshot=snapshot,
            last_sent_at=now,
        )
        messages = tuple(_chunks(Method.REQUEST, 0, target, target, options))
        return Plan(messages, state, ("first_send",))

    before = previous.invited_keys()
    after = {a.key for a in target}
    dropped = tuple(a for a in previous.invited if a.key not in after)
    added = tuple(a for a in target if a.key not in before)
    significant = previous.cancelled or _significant(previous.snapshot, snapshot)
    cancels = dropped if options.cancel_dropped else ()
    sequence = previous.sequence + (1 if significant or cancels else 0)
    request_to = target if significant else added

    messages = (
        *_chunks(Method.REQUEST, sequence, request_to, target, options),
        *_chunks(Method.CANCEL, sequence, cancels, cancels, options),
    )
    reasons = []
    if significant:
        reasons.append("significant_change")
    if added:
        reasons.append("added_attendees")
    if dropped:
        reasons.append("dropped_attendees" if cancels else "dropped_without_cancel")
    if not messages and not dropped:
        return Plan((), previous, ("no_change",))
    state = replace(
        previous,
        sequence=sequence,
        invited=target,
        snapshot=snapshot,
        cancelled=False,
        last_sent_at=now if messages else previous.last_sent_at,
    )
    return Plan(messages, state, tuple(reasons))


def _plan_cancel(
    snapshot: Snapshot, previous: InviteState | None, now: datetime, options: PlanOptions
) -> Plan:
    if previous is None:
        return Plan((), None, ("cancelled_never_sent",))
    if previous.cancelled:
        return Plan((), previous, ("already_cancelled",))
    sequence = previous.sequence + 1
    everyone = previous.invited
    state = replace(
        previous,
        sequence=sequence,
        cancelled=True,
        snapshot=replace(previous.snapshot, cancelled=True),
        last_sent_at=now,
    )
    messages = tuple(_chunks(Method.CANCEL, sequence, everyone, everyone, options))
    return Plan(messages, state, ("cancelled",))


def _significant(old: Snapshot, new: Snapshot) -> bool:
    return (old.title, old.start, old.end, old.location, old.description) != (
        new.title,
        new.start,
        new.end,
        new.location,
        new.description,
    )


def _unique(attendees: Sequence[Attendee]) -> tuple[Attendee, ...]:
    seen: set[str] = set()
    out: list[Attendee] = []
    for a in attendees:
        if a.key not in seen:
            seen.add(a.key)
            out.append(a)
    return tuple(out)


def _chunks(
    method: Method,
    sequence: int,
    recipients: Sequence[Attendee],
    attendees: Sequence[Attendee],
    options: PlanOptions,
) -> Iterator[PlannedMessage]:
    size = max(1, options.max_recipients_per_message)
    for i in range(0, len(recipients), size):
        chunk = tuple(recipients[i : i + size])
        shown = tuple(attendees) if method is Method.REQUEST else chunk
        yield PlannedMessage(method, sequence, chunk, shown)
