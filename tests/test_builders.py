"""The iCalendar and MIME builders, judged by parsers we did not write.

Golden files in ``tests/golden`` pin the exact bytes of typical invitations (regenerate with
``UPDATE_GOLDEN=1``); every golden file and every fuzzed output is parsed by the standard
library's e-mail parser, vobject (validating) and libical (iTIP restrictions per METHOD).
"""

from __future__ import annotations

import email
import email.policy
import os
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
import vobject
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapping.compose import Outgoing, compose
from mapping.model import (
    Attendee,
    InviteState,
    Meeting,
    Method,
    PlannedMessage,
    SenderKind,
    Snapshot,
)
from mapping.planner import snapshot_of
from tests.support.checkers import assert_libical_accepts, libical_verdicts, parse_message

GOLDEN = Path(__file__).with_name("golden")
MSK = ZoneInfo("Europe/Moscow")
STAMP = datetime(2025, 2, 24, 10, 27, tzinfo=UTC)
ORGANIZER = Attendee("ivanov@ivanov.ru", "Супервизоров Иван")
PEOPLE = (
    Attendee("dasha@ivanov.by", "Плугина Дарья"),
    Attendee("denis@ivanov.by", "Шилевич Денис"),
    Attendee("liza@ivanov.by", "Титова Елизавета"),
)
SNAP = Snapshot(
    "Встреча с клиентом",
    datetime(2025, 2, 26, 9, 30, tzinfo=UTC),
    datetime(2025, 2, 26, 10, 30, tzinfo=UTC),
    "Кабинет 505",
    "",
)


def meeting_with(title: str, place: str, notes: str, number: int = 7) -> Meeting:
    """A meeting at SNAP's time with the given CRM texts."""
    return Meeting(
        activity_id=UUID(int=number),
        title=title,
        start=SNAP.start,
        end=SNAP.end,
        location=place,
        notes=notes,
        status_id=None,
        category_id=None,
        category_name="",
        invitation_enabled=True,
        cancelled=False,
    )


def state(**kw: object) -> InviteState:
    values: dict[str, object] = {
        "activity_id": UUID(int=1),
        "uid": "0f7c1c1e-golden@ivanov.ru",
        "sequence": 1,
        "organizer": ORGANIZER,
        "sender_login": "Supervisor",
        "sender_kind": SenderKind.PERSONAL,
        "invited": PEOPLE,
        "snapshot": SNAP,
        "last_sent_at": STAMP,
    }
    values.update(kw)
    return InviteState(**values)  # type: ignore[arg-type]


def build(planned: PlannedMessage, st_: InviteState, language: str = "ru") -> Outgoing:
    return compose(
        planned, state=st_, zone=MSK, language=language, dtstamp=STAMP, domain="ivanov.ru"
    )


CASES = {
    "request-first": lambda: build(
        PlannedMessage(Method.REQUEST, 0, PEOPLE, PEOPLE), state(sequence=0)
    ),
    "request-update": lambda: build(PlannedMessage(Method.REQUEST, 1, PEOPLE, PEOPLE), state()),
    "request-en": lambda: build(
        PlannedMessage(Method.REQUEST, 0, PEOPLE, PEOPLE), state(sequence=0), "en"
    ),
    "cancel-removed": lambda: build(
        PlannedMessage(Method.CANCEL, 2, PEOPLE[:1], PEOPLE[:1]), state(sequence=2)
    ),
    "cancel-meeting": lambda: build(
        PlannedMessage(Method.CANCEL, 3, PEOPLE, PEOPLE),
        state(sequence=3, cancelled=True, snapshot=replace(SNAP, cancelled=True)),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_invitations(name: str) -> None:
    built = CASES[name]()
    path = GOLDEN / f"{name}.eml"
    if os.environ.get("UPDATE_GOLDEN") == "1" or not path.exists():
        GOLDEN.mkdir(exist_ok=True)
        path.write_bytes(built.mime)
    assert built.mime == path.read_bytes(), "builder output changed; inspect, then UPDATE_GOLDEN=1"


def test_golden_files_pass_independent_parsers() -> None:
    files = sorted(GOLDEN.glob("*.eml"))
    assert len(files) == len(CASES)
    parsed = [parse_message(f.read_bytes()) for f in files]
    assert_libical_accepts([p.calendar_text for p in parsed])
    for p in parsed:
        assert p.uid == "0f7c1c1e-golden@ivanov.ru"
        assert p.vevent.organizer.value.lower() == "mailto:ivanov@ivanov.ru"


def test_request_has_every_property_outlook_needs() -> None:
    p = parse_message(CASES["request-update"]().mime)
    ev = p.vevent
    assert p.vcalendar.prodid.value and p.vcalendar.version.value == "2.0"
    assert p.method == "REQUEST" and ev.status.value == "CONFIRMED"
    assert ev.dtstamp.value == STAMP
    assert ev.dtstart.value == SNAP.start and ev.dtstart.value.tzinfo is not None
    assert ev.dtend.value == SNAP.end
    assert ev.x_microsoft_cdo_appt_sequence.value == ev.sequence.value == "1"
    for attendee in ev.contents["attendee"]:
        assert attendee.params["ROLE"] == ["REQ-PARTICIPANT"]
        assert attendee.params["PARTSTAT"] == ["NEEDS-ACTION"]
        assert attendee.params["RSVP"] == ["TRUE"]
        assert attendee.params["CN"][0]
    for line in p.calendar_text.split("\r\n"):
        assert len(line.encode("utf-8")) <= 75
    assert "\n" not in p.calendar_text.replace("\r\n", "")


def test_cancel_carries_status_cancelled_and_the_cancelled_attendees() -> None:
    p = parse_message(CASES["cancel-removed"]().mime)
    assert p.method == "CANCEL" and p.vevent.status.value == "CANCELLED"
    assert p.attendees == ["dasha@ivanov.by"]
    assert p.message["Subject"].startswith("Отменено: ")


def test_mime_structure_is_the_one_exchange_emits() -> None:
    raw = CASES["request-first"]().mime
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/mixed"
    alternative, attachment = msg.iter_parts()  # type: ignore[attr-defined]
    assert [p.get_content_type() for p in alternative.iter_parts()] == [
        "text/plain",
        "text/html",
        "text/calendar",
    ]
    calendar = list(alternative.iter_parts())[2]
    assert calendar.get_param("method") == "REQUEST"
    assert calendar.get_content_charset() == "utf-8"
    assert attachment.get_filename() == "invite.ics"
    assert attachment.get_content_type() == "application/ics"
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert (
        msg["Message-ID"]
        == build(PlannedMessage(Method.REQUEST, 0, PEOPLE, PEOPLE), state(sequence=0)).message_id
    )


def test_cyrillic_headers_are_rfc2047_encoded() -> None:
    raw = CASES["request-first"]().mime
    head = raw.split(b"\r\n\r\n", 1)[0]
    head.decode("ascii")  # raises if any raw 8-bit byte is in the headers
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == "Встреча с клиентом"
    assert msg["From"].addresses[0].display_name == "Супервизоров Иван"


def test_message_id_depends_on_uid_sequence_method_and_recipients() -> None:
    base = build(PlannedMessage(Method.REQUEST, 0, PEOPLE, PEOPLE), state(sequence=0))
    again = build(PlannedMessage(Method.REQUEST, 0, PEOPLE[::-1], PEOPLE), state(sequence=0))
    other = build(PlannedMessage(Method.REQUEST, 1, PEOPLE, PEOPLE), state(sequence=1))
    fewer = build(PlannedMessage(Method.REQUEST, 0, PEOPLE[:2], PEOPLE), state(sequence=0))
    assert base.message_id == again.message_id
    assert len({base.message_id, other.message_id, fewer.message_id}) == 3
    assert re.fullmatch(r"<[0-9a-f]{40}@ivanov\.ru>", base.message_id)


# -- fuzzing: hostile CRM text never breaks a header or the calendar --------------------------
hostile_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=400
) | st.sampled_from(
    [
        "Встреча\r\nBcc: victim@evil.example",
        "<script>alert(1)</script>",
        "Title\x00with\x07controls\x1b",
        "😀👩‍👩‍👧 эмодзи",
        "a" * 10_000,
        "=?utf-8?b?0JLRgdGC0YDQtdGH0LA=?=",
        "line1\u2028line2\u0085line3",
        ";,\\:\"'",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=hostile_text, place=hostile_text, name=hostile_text, notes=hostile_text)
def test_hostile_crm_text_gives_a_safe_parseable_invitation(
    title: str, place: str, name: str, notes: str
) -> None:
    snap = snapshot_of(meeting_with(title, place, notes), include_notes=True)
    people = (Attendee("a@x.ru", name), Attendee("b@x.ru", "Б"))
    built = build(
        PlannedMessage(Method.REQUEST, 0, people, people),
        state(snapshot=snap, organizer=Attendee("org@x.ru", name), invited=people, sequence=0),
    )
    head = built.mime.split(b"\r\n\r\n", 1)[0]
    names = [
        line.split(b":", 1)[0] for line in head.split(b"\r\n") if line[:1] not in (b" ", b"\t")
    ]
    assert names == [
        b"From",
        b"To",
        b"Subject",
        b"Date",
        b"Message-ID",
        b"MIME-Version",
        b"Content-Class",
        b"X-Mailer",
        b"Content-Type",
    ]
    parsed = parse_message(built.mime)
    assert parsed.sequence == 0 and parsed.uid == "0f7c1c1e-golden@ivanov.ru"
    assert sorted(parsed.attendees) == ["a@x.ru", "b@x.ru"]
    assert "<script" not in parsed.html_body
    assert not parsed.message.defects
    summary = str(parsed.vevent.summary.value)
    assert "\r" not in summary and "\n" not in summary and len(summary) <= 255
    FUZZED.append(parsed.calendar_text)


FUZZED: list[str] = []


def test_fuzzed_calendars_pass_libical() -> None:
    """Runs after the fuzz test (file order) and checks its outputs with libical in one go."""
    if not FUZZED:
        test_hostile_crm_text_gives_a_safe_parseable_invitation()
    verdicts = libical_verdicts(FUZZED)
    tolerated = {"No value for LOCATION property. Removing entire property:"}
    for text, verdict in zip(FUZZED, verdicts, strict=True):
        assert verdict["parsed"], text
        assert [e for e in verdict["errors"] if str(e).strip() not in tolerated] == [], text  # type: ignore[union-attr]
    assert vobject  # the fuzz test parsed each with vobject already


def test_times_are_utc_in_the_calendar_and_local_in_the_body() -> None:
    p = parse_message(CASES["request-update"]().mime)
    assert "DTSTART:20250226T093000Z" in p.calendar_text
    assert "среда, 26 февраля 2025 12:30 - 13:30 (UTC+03:00)" in p.text_body


def test_multi_day_meeting_shows_both_days() -> None:
    snap = replace(SNAP, end=SNAP.start + timedelta(days=1, hours=2))
    p = parse_message(
        build(PlannedMessage(Method.REQUEST, 0, PEOPLE, PEOPLE), state(snapshot=snap)).mime
    )
    assert "среда, 26 февраля 2025 12:30 - четверг, 27 февраля 2025 14:30" in p.text_body


def test_large_messages_list_bare_addresses_in_to_but_name_everyone_in_the_calendar() -> None:
    people = tuple(Attendee(f"p{i}@ivanov.by", f"Участник {i}") for i in range(51))
    built = build(PlannedMessage(Method.REQUEST, 0, people, people), state(invited=people))
    p = parse_message(built.mime)
    assert [a.display_name for a in p.message["To"].addresses] == [""] * 51
    assert [a.addr_spec for a in p.message["To"].addresses][:2] == ["p0@ivanov.by", "p1@ivanov.by"]
    assert len(p.attendees) == 51
    assert {a.params["CN"][0] for a in p.vevent.contents["attendee"]} == {
        f"Участник {i}" for i in range(51)
    }
    few = build(PlannedMessage(Method.REQUEST, 0, people[:50], people[:50]), state())
    assert parse_message(few.mime).message["To"].addresses[0].display_name == "Участник 0"


def test_huge_notes_are_cut_so_the_message_stays_far_below_graphs_limit() -> None:
    notes = "Повестка: обсуждение договора и сроков поставки. " * 6000  # 300,000 characters
    snap = snapshot_of(meeting_with("Встреча", "Кабинет 404", notes, 8), include_notes=True)
    assert len(snap.description) == 20_000 and snap.description.endswith("…")
    people = (Attendee("a@x.ru", "А"),)
    built = build(
        PlannedMessage(Method.REQUEST, 0, people, people),
        state(snapshot=snap, organizer=Attendee("org@x.ru", "О"), invited=people, sequence=0),
    )
    # Graph takes the MIME base64-encoded, at most 4 MB a request
    assert len(built.mime) * 4 / 3 < 1_000_000
    parsed = parse_message(built.mime)
    description = str(parsed.vevent.description.value)
    assert "Повестка: обсуждение договора" in description and "…" in description
