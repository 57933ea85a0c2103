"""The iCalendar object of an iTIP message (RFC 5545/5546), shaped the way Outlook expects.

Times are UTC; ORGANIZER is the sending mailbox; every attendee has CN, ROLE, PARTSTAT and
RSVP; X-MICROSOFT-CDO-APPT-SEQUENCE mirrors SEQUENCE. Line folding and escaping are
icalendar's (it folds at 75 octets without splitting UTF-8 characters).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from icalendar import Calendar, Event, vCalAddress, vText

from mapping.model import Attendee, Method, Snapshot
from mapping.text import display_name

PRODID = "-//BPMSoft Invite Connector//Meeting invitations//EN"


def _address(attendee: Attendee, **params: str) -> vCalAddress:
    value = vCalAddress(f"mailto:{attendee.email}")
    name = display_name(attendee.name)
    if name:
        value.params["CN"] = vText(name)
    for key, param in params.items():
        value.params[key] = param
    return value


def build_calendar(
    *,
    method: Method,
    uid: str,
    sequence: int,
    dtstamp: datetime,
    snapshot: Snapshot,
    organizer: Attendee,
    attendees: Sequence[Attendee],
    description: str,
) -> bytes:
    """The VCALENDAR text (UTF-8, CRLF line endings)."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method.value)

    event = Event()
    event.add("uid", uid)
    event.add("sequence", sequence)
    event.add("dtstamp", dtstamp.astimezone(UTC))
    event.add("dtstart", snapshot.start.astimezone(UTC))
    event.add("dtend", snapshot.end.astimezone(UTC))
    event.add("summary", snapshot.title)
    event.add("location", snapshot.location)
    event.add("description", description)
    event.add("organizer", _address(organizer))
    cancelled = method is Method.CANCEL
    for person in attendees:
        if cancelled:
            event.add("attendee", _address(person, ROLE="REQ-PARTICIPANT", PARTSTAT="NEEDS-ACTION"))
        else:
            event.add(
                "attendee",
                _address(person, ROLE="REQ-PARTICIPANT", PARTSTAT="NEEDS-ACTION", RSVP="TRUE"),
            )
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("transp", "TRANSPARENT" if cancelled else "OPAQUE")
    event.add("class", "PUBLIC")
    event.add("priority", 5)
    event.add("x-microsoft-cdo-appt-sequence", str(sequence))
    event.add("x-microsoft-cdo-busystatus", "FREE" if cancelled else "BUSY")
    event.add("x-microsoft-cdo-intendedstatus", "FREE" if cancelled else "BUSY")
    cal.add_component(event)
    data: bytes = cal.to_ical()
    return data
