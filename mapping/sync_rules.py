"""What the sync service does with a tracked meeting that changed (pure).

Given the activity as the CRM shows it now (None when deleted) and its UID map entry:

* deleted, or set to a cancelled status -> cancel for everyone invited;
* the category no longer allows invitations -> nothing new is sent;
* the meeting is over (``skip_past_meetings``) -> nothing;
* otherwise the target is everyone invited who is still a participant, plus new participants
  when ``invite_new_participants`` is on; the planner then decides (significant change ->
  REQUEST + 1 to all, removed participants -> CANCEL when ``cancel_removed_participants``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

from mapping.addresses import normalise_email
from mapping.errors import Refusal
from mapping.model import Attendee, InviteState, Meeting, Snapshot
from mapping.planner import snapshot_of
from mapping.text import display_name


@dataclass(frozen=True)
class SyncOptions:
    cancel_removed_participants: bool = True
    invite_new_participants: bool = False
    skip_past_meetings: bool = True
    include_notes: bool = False


@dataclass(frozen=True)
class Skip:
    reason: str  # deleted_never_sent | category_disabled | meeting_over | invalid_time | ...


@dataclass(frozen=True)
class Update:
    snapshot: Snapshot
    target: tuple[Attendee, ...]
    cancel_dropped: bool


def decide(
    meeting: Meeting | None,
    state: InviteState,
    now: datetime,
    options: SyncOptions,
    *,
    sender_contact_id: UUID | None = None,
) -> Skip | Update:
    """The sync rule for one tracked meeting."""
    if meeting is None or meeting.cancelled:
        if state.cancelled:
            return Skip("already_cancelled")
        if options.skip_past_meetings and state.snapshot.end < now:
            return Skip("meeting_over")
        return Update(replace(state.snapshot, cancelled=True), (), True)
    if not meeting.invitation_enabled:
        return Skip("category_disabled")
    try:
        snapshot = snapshot_of(meeting, include_notes=options.include_notes)
    except Refusal:
        return Skip("invalid_time")
    if options.skip_past_meetings and snapshot.end < now:
        return Skip("meeting_over")
    current: dict[str, Attendee] = {}
    for p in meeting.participants:
        address = normalise_email(p.email)
        if address is not None and address.lower() not in current:
            current[address.lower()] = Attendee(
                address, display_name(p.name) or address, p.contact_id
            )
    target = [current.get(a.key, a) for a in state.invited if a.key in current]
    if options.invite_new_participants:
        invited = state.invited_keys()
        organizer = state.organizer.key
        for p in meeting.participants:
            address = normalise_email(p.email)
            if address is None or address.lower() in invited or address.lower() == organizer:
                continue
            if not p.invite or (
                sender_contact_id is not None and p.contact_id == sender_contact_id
            ):
                continue
            attendee = current[address.lower()]
            if attendee not in target:
                target.append(attendee)
    return Update(snapshot, tuple(target), options.cancel_removed_participants)
