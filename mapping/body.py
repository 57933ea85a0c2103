"""The human-readable part of an invitation (figure 2.11 of the manual), in Russian or English.

Templates are Jinja2 files in ``mapping/templates``; the HTML one is autoescaped, so CRM text
can never become markup. Dates are formatted by Babel in the organiser's time zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_date
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from mapping.model import Attendee, Snapshot
from mapping.text import clean_block, clean_line, display_name

LABELS: dict[str, dict[str, str]] = {
    "ru": {
        "description": "Описание",
        "time": "Время",
        "place": "Место",
        "organizer": "Организатор",
        "invited": "Приглашены",
        "notes": "Примечание",
        "update": "Встреча изменена.",
        "cancelled": "Встреча отменена.",
        "removed": "Вы больше не приглашены на эту встречу.",
        "cancel_subject": "Отменено",
        "more": "… и ещё {count}",
    },
    "en": {
        "description": "Description",
        "time": "Time",
        "place": "Place",
        "organizer": "Organizer",
        "invited": "Invited",
        "notes": "Notes",
        "update": "The meeting has changed.",
        "cancelled": "The meeting has been cancelled.",
        "removed": "You are no longer invited to this meeting.",
        "cancel_subject": "Canceled",
        "more": "… and {count} more",
    },
}

_ENV = Environment(
    loader=PackageLoader("mapping", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class Body:
    text: str
    html: str


def person(a: Attendee) -> str:
    name = display_name(a.name)
    return f"{name} <{a.email}>" if name and name != a.email else a.email


#: the body names at most this many invited people (the calendar object lists everyone)
LISTED_LIMIT = 100


def _listed(invited: Sequence[Attendee], labels: dict[str, str]) -> list[str]:
    shown = [person(a) for a in invited[:LISTED_LIMIT]]
    if len(invited) > LISTED_LIMIT:
        shown.append(labels["more"].format(count=len(invited) - LISTED_LIMIT))
    return shown


def format_when(start: datetime, end: datetime, zone: ZoneInfo, language: str) -> str:
    """'среда, 26 февраля 2025 12:30 - 13:30 (UTC+03:00)' in the organiser's zone."""
    local_start = start.astimezone(zone)
    local_end = end.astimezone(zone)
    day = format_date(local_start.date(), "EEEE, d MMMM y", locale=language)
    text = f"{day} {local_start:%H:%M} - "
    if local_end.date() != local_start.date():
        text += format_date(local_end.date(), "EEEE, d MMMM y", locale=language) + " "
    text += f"{local_end:%H:%M}"
    return f"{text} ({_offset(local_start)})"


def _offset(moment: datetime) -> str:
    delta = moment.utcoffset()
    minutes = int(delta.total_seconds() // 60) if delta is not None else 0
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def render_body(
    *,
    snapshot: Snapshot,
    organizer: Attendee,
    invited: Sequence[Attendee],
    zone: ZoneInfo,
    language: str,
    heading_key: str | None,
) -> Body:
    labels = LABELS.get(language, LABELS["en"])
    values = {
        "L": labels,
        "language": language,
        "heading": labels[heading_key] if heading_key else "",
        "title": clean_line(snapshot.title),
        "when": format_when(snapshot.start, snapshot.end, zone, language),
        "place": clean_line(snapshot.location),
        "organizer": person(organizer),
        "invited": _listed(invited, labels),
        "notes": clean_block(snapshot.description),
    }
    text = _ENV.get_template("invitation.txt.j2").render(values).rstrip() + "\n"
    html = _ENV.get_template("invitation.html.j2").render(values)
    return Body(text=text, html=html)
