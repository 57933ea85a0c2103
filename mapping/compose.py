"""Turn a planned message into the bytes that are sent: body, calendar object and MIME."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from mapping.body import LABELS, render_body
from mapping.ical import build_calendar
from mapping.identity import message_id as make_message_id
from mapping.mime import build_mime
from mapping.model import Attendee, InviteState, Method, PlannedMessage


@dataclass(frozen=True)
class Outgoing:
    """A message ready for a transport. ``mime`` is the complete RFC 5322 message."""

    method: Method
    sequence: int
    uid: str
    sender: str
    recipients: tuple[str, ...]
    message_id: str
    subject: str
    mime: bytes


def compose(
    planned: PlannedMessage,
    *,
    state: InviteState,
    zone: ZoneInfo,
    language: str,
    dtstamp: datetime,
    domain: str,
) -> Outgoing:
    """Build one message of a plan. ``state`` is the state recorded with the plan."""
    snapshot = state.snapshot
    organizer = state.organizer
    recipients = planned.recipients
    heading: str | None
    if planned.method is Method.CANCEL:
        heading = "cancelled" if state.cancelled else "removed"
        labels = LABELS.get(language, LABELS["en"])
        subject = f"{labels['cancel_subject']}: {snapshot.title}"
    else:
        heading = "update" if planned.sequence > 0 else None
        subject = snapshot.title
    shown: tuple[Attendee, ...] = planned.attendees
    body = render_body(
        snapshot=snapshot,
        organizer=organizer,
        invited=shown,
        zone=zone,
        language=language,
        heading_key=heading,
    )
    ics = build_calendar(
        method=planned.method,
        uid=state.uid,
        sequence=planned.sequence,
        dtstamp=dtstamp,
        snapshot=snapshot,
        organizer=organizer,
        attendees=shown,
        description=body.text,
    )
    addresses = tuple(r.email for r in recipients)
    mid = make_message_id(state.uid, planned.sequence, planned.method.value, addresses, domain)
    mime = build_mime(
        sender=organizer,
        recipients=recipients,
        subject=subject,
        text=body.text,
        html=body.html,
        ics=ics,
        method=planned.method,
        message_id=mid,
        date=dtstamp,
    )
    return Outgoing(
        method=planned.method,
        sequence=planned.sequence,
        uid=state.uid,
        sender=organizer.email,
        recipients=addresses,
        message_id=mid,
        subject=subject,
        mime=mime,
    )
