"""Bad CRM data gives a clear refusal or a safe message, never a crash or a broken header."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from mapping.errors import Refusal
from tests.support.checkers import (
    MESSAGE_HEADERS,
    TEMPLATE_TAGS,
    assert_libical_accepts,
    html_tags,
)
from tests.support.world import World

HOSTILE = [
    "Встреча\r\nBcc: victim@evil.example",
    "Встреча\nX-Injected: yes",
    "<b>Встреча</b><script>alert('x')</script>",
    "Встреча 🎉 с клиентом 👩‍💼",
    "Нулевой\x00символ и \x1b[31mцвет",
]


@pytest.mark.parametrize("title", HOSTILE)
def test_hostile_title_and_place_stay_inside_their_fields(world: World, title: str) -> None:
    world.writer.update_activity(world.ex.meeting, Title=title, location=title)
    assert world.invite().delivered
    (message,) = world.sent()
    raw = world.envelopes()[0].mime
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    names = {line.split(":", 1)[0].lower() for line in head.split("\r\n") if line[:1] not in " \t"}
    assert names == MESSAGE_HEADERS
    assert list(message.message.keys()).count("Subject") == 1
    assert "\n" not in message.message["Subject"] and "\r" not in message.message["Subject"]
    assert html_tags(message.html_body) <= TEMPLATE_TAGS
    if "<script>" in title:
        assert "&lt;script&gt;" in message.html_body
    summary = str(message.vevent.summary.value)
    assert "\x00" not in summary and "\n" not in summary
    assert_libical_accepts([message.calendar_text])


def test_ten_thousand_character_title_is_shortened_in_subject_and_summary(world: World) -> None:
    world.writer.update_activity(world.ex.meeting, Title="Очень длинная встреча " * 500)
    assert world.invite().delivered
    (message,) = world.sent()
    assert len(message.message["Subject"]) <= 255
    assert len(str(message.vevent.summary.value)) <= 255
    assert str(message.vevent.summary.value).endswith("…")
    assert_libical_accepts([message.calendar_text])


def test_end_before_start_is_refused(world: World) -> None:
    start = world.ex_start()
    world.writer.update_activity(world.ex.meeting, DueDate=start - timedelta(hours=1))
    with pytest.raises(Refusal) as refused:
        world.invite()
    assert refused.value.code == "invalid_time"
    assert world.envelopes() == []


@pytest.mark.parametrize("column", ["StartDate", "DueDate"])
def test_missing_start_or_end_is_refused(world: World, column: str) -> None:
    world.writer.update_activity(world.ex.meeting, **{column: None})
    for action in (world.invite, world.draft):
        with pytest.raises(Refusal) as refused:
            action()
        assert refused.value.code == "invalid_time"


def test_zero_length_and_multi_day_meetings_are_sent(world: World) -> None:
    start = world.ex_start()
    world.writer.update_activity(world.ex.meeting, DueDate=start)
    assert world.invite().delivered
    world.writer.update_activity(world.ex.meeting, DueDate=start + timedelta(days=3))
    assert world.invite().sequence == 1
    assert_libical_accepts([m.calendar_text for m in world.sent()])


def test_participants_without_or_with_malformed_email_are_reported(world: World) -> None:
    w = world
    nomail = w.writer.contact("Безадресный Борис", None)
    broken = w.writer.contact("Кривой Кирилл", "kirill at ivanov dot by")
    w.writer.add_participant(w.ex.meeting, nomail)
    w.writer.add_participant(w.ex.meeting, broken)
    draft = w.draft()
    codes = [n.code for n in draft.notices]
    assert codes.count("warn_no_email") == 1 and codes.count("warn_bad_email") == 1
    result = w.invite()
    assert sorted(c.name for c in result.skipped) == ["Безадресный Борис", "Кривой Кирилл"]
    assert len(result.recipients_sent()) == 3


def test_only_participants_without_email_means_no_recipients(world: World) -> None:
    w = world
    nomail = w.writer.contact("Безадресный Борис", "")
    activity = w.writer.activity(
        "Встреча",
        w.ex_start(),
        w.ex_start() + timedelta(hours=1),
        location="404",
        participants=[w.ex.supervisor_contact, nomail],
    )
    with pytest.raises(Refusal) as refused:
        w.invite(activity=activity)
    assert refused.value.code == "no_recipients"


def test_unknown_activity_and_user_are_refused(world: World) -> None:
    with pytest.raises(Refusal) as refused:
        world.invite(activity=uuid4())
    assert refused.value.code == "not_found"
    with pytest.raises(Refusal) as refused:
        world.invite("no-such-login")
    assert refused.value.code == "user_not_found"


def test_inactive_user_is_refused(world: World) -> None:
    world.writer.user("Gone", world.writer.contact("Уволенный", "gone@ivanov.ru"), active=False)
    with pytest.raises(Refusal) as refused:
        world.invite("Gone")
    assert refused.value.code == "user_inactive"


def test_duplicate_participants_get_one_invitation(world: World) -> None:
    w = world
    w.writer.add_participant(w.ex.meeting, w.ex.denis)
    twin = w.writer.contact("Шилович Денис (дубль)", "DENIS@ivanov.by")
    w.writer.add_participant(w.ex.meeting, twin)
    assert sorted(w.invite().recipients_sent()) == [
        "dasha@ivanov.by",
        "denis@ivanov.by",
        "liza@ivanov.by",
    ]


def test_activity_without_title_is_named_after_its_category(world: World) -> None:
    world.writer.update_activity(world.ex.meeting, Title=None)
    world.invite()
    (message,) = world.sent()
    assert message.vevent.summary.value == "Встреча"


@pytest.mark.parametrize("year", [1, 1899, 4500, 9999])
def test_dates_far_in_the_past_or_future_are_refused(world: World, year: int) -> None:
    start = world.ex_start().replace(year=year, month=1, day=1, hour=10)
    world.writer.update_activity(world.ex.meeting, StartDate=start, DueDate=start)
    with pytest.raises(Refusal) as refused:
        world.invite()
    assert refused.value.code == "invalid_time"
    assert "out of range" in refused.value.message("en")


def test_a_meeting_with_2000_participants_is_split_and_stays_small(world: World) -> None:
    w = world
    from sqlalchemy import insert

    t = w.writer.t
    rows = [
        {"Id": uuid4(), "Name": f"Участник {i}", "Email": f"p{i}@ivanov.by"} for i in range(2000)
    ]
    with w.writer.engine.begin() as conn:
        conn.execute(insert(t.contact), rows)
        conn.execute(
            insert(t.activity_participant),
            [
                {
                    "Id": uuid4(),
                    "ActivityId": w.ex.meeting,
                    "ParticipantId": r["Id"],
                    "InviteParticipant": True,
                    "CreatedOn": None,
                }
                for r in rows
            ],
        )
    result = w.invite()
    assert [len(o.recipients) for o in result.outgoing] == [500, 500, 500, 500, 3]
    assert len(result.recipients_sent()) == 2003
    assert max(len(o.mime) for o in result.outgoing) < 3_000_000  # Graph refuses 4 MB requests
    first = w.sent()[0]
    assert len(first.attendees) == 2003
    assert "… и ещё 1903" in first.text_body
    assert_libical_accepts([first.calendar_text])
