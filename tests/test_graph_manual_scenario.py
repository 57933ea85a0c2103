"""The manual's scenario end to end through Microsoft Graph (the fake), as the participants'
mailboxes receive it: every message parsed by the standard library, vobject and libical, and the
participants' calendars built from them by the RFC 5546 rules (updates change the entry,
nothing is duplicated, CANCEL removes it)."""

from __future__ import annotations

from datetime import timedelta

from tests.support.checkers import assert_libical_accepts, parse_message
from tests.support.fake_graph import FakeGraph
from tests.support.graph_env import FALLBACK, PERSONAL
from tests.support.world import World

PARTICIPANTS = ["denis@ivanov.by", "dasha@ivanov.by", "liza@ivanov.by"]


def test_first_send_then_place_and_time_change_update_the_same_calendar_entry(
    graph_world: World, fake_graph: FakeGraph
) -> None:
    w = graph_world
    first = w.invite()
    assert first.delivered and first.sequence == 0
    start = w.ex_start() + timedelta(days=2)
    w.clock.advance(hours=1)
    w.writer.update_activity(
        w.ex.meeting, location="Кабинет 505", StartDate=start, DueDate=start + timedelta(hours=1)
    )
    second = w.invite()
    assert second.delivered and second.sequence == 1

    texts = []
    for address in PARTICIPANTS:
        received = fake_graph.inbox(address)
        assert len(received) == 2
        original, update = (parse_message(r.raw) for r in received)
        assert original.method == update.method == "REQUEST"
        assert update.uid == original.uid == first.uid
        assert (original.sequence, update.sequence) == (0, 1)
        assert update.vevent.location.value == "Кабинет 505"
        assert update.vevent.dtstart.value == start
        assert update.vevent.organizer.value.lower() == f"mailto:{PERSONAL}"
        assert update.message["From"].addresses[0].addr_spec == PERSONAL
        assert "Место: Кабинет 505" in update.text_body
        texts += [original.calendar_text, update.calendar_text]
    assert_libical_accepts(texts)

    calendars = fake_graph.calendars()
    for address in PARTICIPANTS:
        (entry,) = calendars[address].values()  # changed, not duplicated
        assert (entry["uid"], entry["sequence"]) == (first.uid, 1)
        assert entry["location"] == "Кабинет 505"
        assert entry["start"] == start.isoformat()
    assert PERSONAL not in calendars  # the organizer invites, is not invited


def test_removed_participant_gets_a_cancel_that_clears_the_entry(
    graph_world: World, fake_graph: FakeGraph
) -> None:
    w = graph_world
    w.invite()
    w.clock.advance(hours=1)
    result = w.invite(recipients=["dasha@ivanov.by", "liza@ivanov.by"])
    assert result.delivered
    (cancel,) = (parse_message(r.raw) for r in fake_graph.inbox("denis@ivanov.by")[1:])
    assert cancel.method == "CANCEL" and cancel.sequence == 1
    assert_libical_accepts([cancel.calendar_text])
    calendars = fake_graph.calendars()
    assert calendars["denis@ivanov.by"] == {}
    assert len(calendars["dasha@ivanov.by"]) == 1
    assert fake_graph.calendars(include_cancelled=True)["denis@ivanov.by"]


def test_stas_sends_from_the_fallback_mailbox_through_graph(
    graph_world: World, fake_graph: FakeGraph
) -> None:
    assert graph_world.invite("Stas").delivered
    (received,) = fake_graph.messages()
    assert received.mailbox == FALLBACK
    message = parse_message(received.raw)
    assert message.vevent.organizer.value.lower() == f"mailto:{FALLBACK}"
    assert sorted(received.recipients) == sorted([PERSONAL, *PARTICIPANTS])
    assert_libical_accepts([message.calendar_text])
