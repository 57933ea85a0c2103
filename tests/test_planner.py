"""The planner: who gets REQUEST, who gets CANCEL, which SEQUENCE (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from mapping.model import Attendee, InviteState, Method, Sender, SenderKind, Snapshot
from mapping.planner import PlanOptions, plan
from tests.support.calendar_model import Calendars

NOW = datetime(2030, 1, 1, tzinfo=UTC)
ACTIVITY = uuid4()
UID = "u-1@example.com"
SENDER = Sender("org@x.ru", "Организатор", SenderKind.PERSONAL, "Supervisor")
SNAP = Snapshot("Встреча", NOW + timedelta(days=1), NOW + timedelta(days=1, hours=1), "404", "")
POOL = [Attendee(f"p{i}@x.ru", f"Участник {i}") for i in range(8)]


def run(snapshot: Snapshot, previous: InviteState | None, target: list[Attendee], **opts: object):  # type: ignore[no-untyped-def]
    return plan(
        activity_id=ACTIVITY,
        uid=UID,
        snapshot=snapshot,
        previous=previous,
        target=target,
        sender=SENDER,
        now=NOW,
        options=PlanOptions(**opts),  # type: ignore[arg-type]
    )


def first(target: list[Attendee] = POOL[:3]) -> InviteState:
    result = run(SNAP, None, target)
    assert result.state is not None
    return result.state


def test_first_send_is_request_sequence_zero_to_the_selection() -> None:
    result = run(SNAP, None, POOL[:3])
    (message,) = result.messages
    assert (message.method, message.sequence) == (Method.REQUEST, 0)
    assert message.recipients == tuple(POOL[:3]) == message.attendees
    assert result.state is not None and result.state.organizer.email == "org@x.ru"


def test_significant_change_goes_to_everyone_with_sequence_plus_one() -> None:
    result = run(replace(SNAP, location="505"), first(), POOL[:3])
    (message,) = result.messages
    assert (message.method, message.sequence, message.recipients) == (
        Method.REQUEST,
        1,
        tuple(POOL[:3]),
    )


def test_no_change_sends_only_to_newly_selected_with_same_sequence() -> None:
    result = run(SNAP, first(), POOL[:4])
    (message,) = result.messages
    assert (message.sequence, message.recipients, message.attendees) == (
        0,
        (POOL[3],),
        tuple(POOL[:4]),
    )


def test_no_change_and_no_new_people_sends_nothing() -> None:
    state = first()
    result = run(SNAP, state, list(reversed(POOL[:3])))
    assert result.empty and result.state == state and result.reasons == ("no_change",)


def test_dropped_people_get_cancel_with_higher_sequence() -> None:
    result = run(SNAP, first(), POOL[:2])
    (cancel,) = result.messages
    assert (cancel.method, cancel.sequence, cancel.recipients) == (Method.CANCEL, 1, (POOL[2],))
    assert result.state is not None and result.state.invited == tuple(POOL[:2])


def test_dropped_without_cancel_option_are_forgotten_silently() -> None:
    result = run(SNAP, first(), POOL[:2], cancel_dropped=False)
    assert result.empty and result.state is not None and result.state.invited == tuple(POOL[:2])
    assert result.state.sequence == 0


def test_cancelled_meeting_cancels_everyone_invited() -> None:
    state = first()
    result = run(replace(SNAP, cancelled=True), state, [])
    (cancel,) = result.messages
    assert (cancel.method, cancel.sequence, cancel.recipients) == (
        Method.CANCEL,
        1,
        tuple(POOL[:3]),
    )
    assert result.state is not None and result.state.cancelled
    again = run(replace(SNAP, cancelled=True), result.state, [])
    assert again.empty


def test_cancelled_before_any_send_sends_nothing() -> None:
    assert run(replace(SNAP, cancelled=True), None, POOL[:2]).empty


def test_reinstated_meeting_is_requested_again_with_higher_sequence() -> None:
    cancelled = run(replace(SNAP, cancelled=True), first(), []).state
    result = run(SNAP, cancelled, POOL[:3])
    (message,) = result.messages
    assert (message.method, message.sequence) == (Method.REQUEST, 2)


def test_organizer_stays_the_one_of_the_first_send() -> None:
    state = first()
    other = Sender("other@x.ru", "Другой", SenderKind.FALLBACK, "Stas")
    result = plan(
        activity_id=ACTIVITY,
        uid=UID,
        snapshot=replace(SNAP, title="Новое"),
        previous=state,
        target=POOL[:3],
        sender=other,
        now=NOW,
    )
    assert result.state is not None and result.state.organizer.email == "org@x.ru"


def test_large_meetings_are_split_by_max_recipients_per_message() -> None:
    people = [Attendee(f"a{i}@x.ru", "") for i in range(1201)]
    result = run(SNAP, None, people, max_recipients_per_message=500)
    assert [len(m.recipients) for m in result.messages] == [500, 500, 201]
    assert all(len(m.attendees) == 1201 for m in result.messages)


def test_addresses_are_compared_case_insensitively() -> None:
    state = first([Attendee("Mixed@X.ru", "M")])
    assert run(SNAP, state, [Attendee("mixed@x.RU", "M")]).empty


# -- properties ----------------------------------------------------------------------------
edits = st.fixed_dictionaries(
    {
        "title": st.sampled_from(["Встреча", "Встреча (перенос)"]),
        "shift": st.sampled_from([0, 30, 60]),
        "location": st.sampled_from(["404", "505", ""]),
        "cancelled": st.booleans(),
        "target": st.sets(st.integers(0, len(POOL) - 1), max_size=len(POOL)),
        "cancel_dropped": st.booleans(),
        "max": st.sampled_from([1, 2, 500]),
    }
)


@settings(max_examples=300, deadline=None)
@given(st.lists(edits, min_size=1, max_size=12))
def test_planner_properties_over_rounds(rounds: list[dict[str, object]]) -> None:
    state: InviteState | None = None
    calendars = Calendars()
    for edit in rounds:
        shift = timedelta(minutes=int(edit["shift"]))  # type: ignore[arg-type]
        snapshot = replace(
            SNAP,
            title=str(edit["title"]),
            start=SNAP.start + shift,
            end=SNAP.end + shift,
            location=str(edit["location"]),
            cancelled=bool(edit["cancelled"]),
        )
        target = [POOL[i] for i in sorted(edit["target"])]  # type: ignore[call-overload]
        result = run(
            snapshot,
            state,
            target,
            cancel_dropped=edit["cancel_dropped"],
            max_recipients_per_message=edit["max"],
        )
        requested = [
            r.key for m in result.messages if m.method is Method.REQUEST for r in m.recipients
        ]
        cancelled = [
            r.key for m in result.messages if m.method is Method.CANCEL for r in m.recipients
        ]
        # nobody gets a REQUEST and a CANCEL in one round, and nobody gets two of either
        assert not set(requested) & set(cancelled)
        assert len(requested) == len(set(requested)) and len(cancelled) == len(set(cancelled))
        if state is not None and result.state is not None:
            # SEQUENCE never decreases, the UID never changes, the organizer stays
            assert result.state.sequence >= state.sequence
            assert result.state.uid == state.uid == UID
            assert result.state.organizer == state.organizer
            # every previously invited address no longer targeted gets exactly one CANCEL
            if not state.cancelled and not snapshot.cancelled and edit["cancel_dropped"]:
                dropped = state.invited_keys() - {a.key for a in target}
                assert sorted(dropped) == sorted(cancelled)
        for m in result.messages:
            assert state is None or m.sequence >= state.sequence
            for r in m.recipients:
                calendars.apply(r.email, m.method.value, UID, m.sequence, snapshot)
        state = result.state
        # the reference calendars agree with the CRM: every invited person holds the meeting as
        # it is now; everyone else who was cancelled does not hold it
        if state is not None and not state.cancelled:
            for person in state.invited:
                entry = calendars.entry(person.email, UID)
                assert entry is not None and entry.content == replace(snapshot, cancelled=False)
        if state is not None and state.cancelled:
            for person in state.invited:
                assert calendars.entry(person.email, UID) is None
