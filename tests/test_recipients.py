"""Recipient choice of manual section 2.4 as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from mapping.errors import Refusal
from mapping.model import CrmUser, Meeting, Participant
from mapping.recipients import Problem, candidates, select

ME = uuid4()


def meeting(*people: Participant) -> Meeting:
    return Meeting(
        activity_id=uuid4(),
        title="t",
        start=datetime(2030, 1, 1, tzinfo=UTC),
        end=datetime(2030, 1, 1, 1, tzinfo=UTC),
        location="x",
        notes="",
        status_id=None,
        category_id=None,
        category_name="",
        invitation_enabled=True,
        cancelled=False,
        participants=people,
    )


def me() -> CrmUser:
    return CrmUser(uuid4(), "me", ME, "Я", "me@x.ru", None, True)


def p(
    email: str | None, name: str = "Имя", contact: object = None, invite: bool = True
) -> Participant:
    return Participant(contact or uuid4(), name, email, invite)  # type: ignore[arg-type]


def test_default_recipients_exclude_current_user() -> None:
    lines = candidates(meeting(p("me@x.ru", contact=ME), p("a@x.ru"), p("b@x.ru")), me(), "me@x.ru")
    assert [c.email for c in lines if c.selected] == ["a@x.ru", "b@x.ru"]


def test_already_invited_participants_stay_selected_the_current_user_too() -> None:
    lines = candidates(
        meeting(p("me@x.ru", contact=ME), p("a@x.ru", invite=False), p("b@x.ru"), p("c@x.ru")),
        me(),
        "org@x.ru",
        invited={"me@x.ru", "a@x.ru"},
    )
    assert [c.email for c in lines if c.selected] == ["me@x.ru", "a@x.ru", "b@x.ru", "c@x.ru"]


def test_participants_without_address_are_reported_not_dropped() -> None:
    lines = candidates(
        meeting(p(None, "Без почты"), p("not-an-address", "Кривой"), p("a@x.ru")), me(), None
    )
    assert [(c.name, c.problem) for c in lines] == [
        ("Без почты", Problem.NO_EMAIL),
        ("Кривой", Problem.BAD_EMAIL),
        ("Имя", None),
    ]
    chosen = select(lines, None)
    assert [a.email for a in chosen.attendees] == ["a@x.ru"]
    assert sorted(c.name for c in chosen.skipped) == ["Без почты", "Кривой"]


def test_duplicate_contacts_and_addresses_are_invited_once() -> None:
    same = uuid4()
    lines = candidates(
        meeting(p("a@x.ru", contact=same), p("a@x.ru", contact=same), p("A@X.RU", "Двойник")),
        me(),
        None,
    )
    assert len(lines) == 2 and lines[1].problem is Problem.DUPLICATE_EMAIL
    assert [a.email for a in select(lines, None).attendees] == ["a@x.ru"]


def test_organizer_mailbox_is_not_invited_to_its_own_meeting() -> None:
    lines = candidates(meeting(p("org@x.ru"), p("a@x.ru")), me(), "ORG@x.ru")
    assert [c.email for c in lines if c.selected] == ["a@x.ru"]
    assert [a.email for a in select(lines, ["org@x.ru", "a@x.ru"]).attendees] == ["a@x.ru"]


def test_invite_participant_flag_off_is_not_selected_by_default() -> None:
    lines = candidates(meeting(p("a@x.ru", invite=False), p("b@x.ru")), me(), None)
    assert [c.email for c in lines if c.selected] == ["b@x.ru"]
    assert [a.email for a in select(lines, ["a@x.ru"]).attendees] == ["a@x.ru"]


def test_explicit_selection_by_contact_id_or_address() -> None:
    dasha = uuid4()
    lines = candidates(meeting(p("dasha@x.ru", contact=dasha), p("liza@x.ru")), me(), None)
    assert [a.email for a in select(lines, [str(dasha)]).attendees] == ["dasha@x.ru"]
    assert [a.email for a in select(lines, [" LIZA@x.ru "]).attendees] == ["liza@x.ru"]


@pytest.mark.parametrize("token", ["outsider@x.ru", str(uuid4()), "a@x.ru\r\nBcc: x@y.ru", ""])
def test_selection_cannot_add_a_non_participant(token: str) -> None:
    lines = candidates(meeting(p("a@x.ru")), me(), None)
    with pytest.raises(Refusal) as refused:
        select(lines, [token])
    assert refused.value.code == "unknown_recipient"


def test_internationalised_domain_is_converted_and_non_ascii_local_part_refused() -> None:
    lines = candidates(meeting(p("ivan@пример.рф"), p("иван@x.ru")), me(), None)
    assert lines[0].email == "ivan@xn--e1afmkfd.xn--p1ai"
    assert lines[1].problem is Problem.BAD_EMAIL
