"""The sync service: the recipients' calendars follow the CRM without a button press.
Every trigger of issue 4 on SQLite and PostgreSQL, with messages judged by vobject."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.crm.sample import MEETING_CATEGORY
from connector.sync import WATERMARK, SyncService
from mapping.crm_names import CANCELLED_STATUS
from tests.support.world import World

PARTICIPANTS = ["dasha@ivanov.by", "denis@ivanov.by", "liza@ivanov.by"]


def sent_after(w: World, before: int) -> list:  # type: ignore[type-arg]
    return w.sent()[before:]


def started(w: World) -> int:
    """Send the invitation, let the service take its first look, return the message count."""
    assert w.invite().delivered
    w.clock.advance(minutes=1)
    report = w.sync()
    assert report.full and report.messages == 0
    w.clock.advance(minutes=1)
    return len(w.envelopes())


def test_time_change_sends_an_update_to_everyone(any_world: World) -> None:
    w = any_world
    before = started(w)
    start = w.ex_start() + timedelta(hours=3)
    w.writer.update_activity(w.ex.meeting, StartDate=start, DueDate=start + timedelta(hours=1))
    report = w.sync()
    (update,) = sent_after(w, before)
    assert (report.updated, update.method, update.sequence) == (1, "REQUEST", 1)
    assert update.vevent.dtstart.value == start
    assert sorted(update.attendees) == PARTICIPANTS


def test_place_change_sends_an_update(any_world: World) -> None:
    w = any_world
    before = started(w)
    w.writer.update_activity(w.ex.meeting, location="Кабинет 505")
    w.sync()
    (update,) = sent_after(w, before)
    assert update.vevent.location.value == "Кабинет 505" and update.sequence == 1


def test_title_change_sends_an_update(any_world: World) -> None:
    w = any_world
    before = started(w)
    w.writer.update_activity(w.ex.meeting, Title="Встреча с клиентом (перенос)")
    w.sync()
    (update,) = sent_after(w, before)
    assert update.vevent.summary.value == "Встреча с клиентом (перенос)"


def test_several_edits_between_cycles_make_one_update(any_world: World) -> None:
    w = any_world
    before = started(w)
    w.writer.update_activity(w.ex.meeting, location="Кабинет 505")
    w.writer.update_activity(w.ex.meeting, Title="Новая тема")
    w.writer.update_activity(w.ex.meeting, location="Кабинет 606")
    w.sync()
    (update,) = sent_after(w, before)
    assert (update.sequence, update.vevent.location.value) == (1, "Кабинет 606")


def test_no_change_sends_nothing(any_world: World) -> None:
    w = any_world
    before = started(w)
    w.writer.update_activity(w.ex.meeting, Notes="внутренняя заметка")  # not sent, not significant
    report = w.sync(full=True)
    assert report.messages == 0 and len(w.envelopes()) == before


def test_removed_participant_gets_a_cancel(any_world: World) -> None:
    w = any_world
    before = started(w)
    w.writer.remove_participant(w.ex.meeting, w.ex.dasha)
    w.sync(full=True)
    (cancel,) = sent_after(w, before)
    assert (cancel.method, cancel.sequence, cancel.attendees) == ("CANCEL", 1, ["dasha@ivanov.by"])
    state = w.app.store.get_state(w.ex.meeting)
    assert state is not None and sorted(a.email for a in state.invited) == [
        "denis@ivanov.by",
        "liza@ivanov.by",
    ]


def test_only_the_reconcile_sees_a_deleted_participant_row(world: World) -> None:
    w = world
    w.reconfigure(sync={"overlap_seconds": 0})
    before = started(w)
    w.clock.advance(minutes=5)
    other = w.writer.activity("Другая", w.ex_start(), w.ex_start(), participants=[w.ex.denis])
    w.sync()  # the watermark moves past the meeting's rows
    w.writer.remove_participant(w.ex.meeting, w.ex.dasha)
    assert w.sync().messages == 0  # a deleted row leaves no ModifiedOn behind
    assert w.sync(full=True).messages == 1
    assert [m.method for m in sent_after(w, before)] == ["CANCEL"]
    assert other


def test_removed_participant_is_left_alone_when_cancelling_is_off(world: World) -> None:
    w = world
    w.reconfigure(sync={"cancel_removed_participants": False})
    before = started(w)
    w.writer.remove_participant(w.ex.meeting, w.ex.dasha)
    w.sync(full=True)
    assert len(w.envelopes()) == before


def test_added_participant_is_not_invited_by_default(any_world: World) -> None:
    w = any_world
    before = started(w)
    w.writer.add_participant(w.ex.meeting, w.ex.stas_contact)
    assert w.sync().messages == 0 and len(w.envelopes()) == before


def test_added_participant_is_invited_when_the_option_is_on(any_world: World) -> None:
    w = any_world
    w.reconfigure(sync={"invite_new_participants": True})
    before = started(w)
    w.writer.add_participant(w.ex.meeting, w.ex.stas_contact)
    w.sync()  # the new participant row is seen by the incremental pass
    (invite,) = sent_after(w, before)
    assert (invite.method, invite.sequence) == ("REQUEST", 0)
    assert invite.message["To"].addresses[0].addr_spec == "stas@ivanov.ru"
    assert sorted(invite.attendees) == sorted([*PARTICIPANTS, "stas@ivanov.ru"])


def test_cancelled_status_cancels_for_everyone(any_world: World) -> None:
    w = any_world
    before = started(w)
    w.writer.update_activity(w.ex.meeting, StatusId=CANCELLED_STATUS)
    w.sync()
    (cancel,) = sent_after(w, before)
    assert (cancel.method, cancel.sequence) == ("CANCEL", 1)
    assert cancel.vevent.status.value == "CANCELLED"
    assert sorted(cancel.attendees) == PARTICIPANTS
    assert w.sync(full=True).messages == 0  # cancelled once


def test_deleted_activity_cancels_for_everyone(any_world: World) -> None:
    w = any_world
    before = started(w)
    w.writer.delete_activity(w.ex.meeting)
    w.sync(full=True)
    (cancel,) = sent_after(w, before)
    assert cancel.method == "CANCEL" and sorted(cancel.attendees) == PARTICIPANTS


def test_category_flag_off_sends_nothing_new(any_world: World) -> None:
    w = any_world
    before = started(w)
    w.writer.set_category_flag(MEETING_CATEGORY, False)
    w.writer.update_activity(w.ex.meeting, location="Кабинет 505")
    report = w.sync()
    assert report.skipped["category_disabled"] == 1 and len(w.envelopes()) == before


def test_meeting_already_over_is_left_alone(any_world: World) -> None:
    w = any_world
    before = started(w)
    w.clock.advance(days=3)
    w.writer.update_activity(w.ex.meeting, location="Кабинет 505")
    w.sync()
    assert len(w.envelopes()) == before


def test_sender_who_lost_the_right_sends_nothing_and_status_shows_why(any_world: World) -> None:
    w = any_world
    assert w.invite("Stas").delivered  # from the shared mailbox
    w.clock.advance(minutes=1)
    w.sync()
    before = len(w.envelopes())
    w.writer.revoke(w.ex.fallback_mailbox, w.ex.stas)
    w.writer.update_activity(w.ex.meeting, location="Кабинет 505")
    report = w.sync()
    assert report.problems == 1 and len(w.envelopes()) == before
    (item,) = w.app.store.overview(w.ex.meeting)
    assert item.last_problem is not None and item.last_problem.startswith("no_mailbox_rights")
    w.writer.grant(w.ex.fallback_mailbox, w.ex.stas)
    w.sync()
    (update,) = sent_after(w, before)
    assert update.vevent.location.value == "Кабинет 505"
    assert w.app.store.overview(w.ex.meeting)[0].last_problem is None


def test_untracked_activities_are_ignored(any_world: World) -> None:
    w = any_world
    started(w)
    other = w.writer.activity(
        "Чужая встреча",
        w.ex_start(),
        w.ex_start() + timedelta(hours=1),
        location="1",
        participants=[w.ex.denis],
    )
    w.writer.update_activity(other, location="2")
    report = w.sync()
    assert report.rows_seen >= 1 and other not in report.done and report.messages == 0
    assert w.app.store.get_state(other) is None


def test_updates_go_from_the_first_sender_mailbox(any_world: World) -> None:
    w = any_world
    before = started(w)
    w.writer.update_activity(w.ex.meeting, location="Кабинет 505")
    w.sync()
    (update,) = sent_after(w, before)
    assert update.message["From"].addresses[0].addr_spec == "ivanov@ivanov.ru"
    assert w.envelopes()[-1].sender_login == "Supervisor"


def test_failed_update_is_retried_by_later_cycles(world: World) -> None:
    from tests.support.transports import Scripted, unavailable

    w = world
    before = started(w)
    flaky = Scripted([unavailable()])
    inner = w.transport.inner
    w.transport.inner = flaky  # type: ignore[assignment]
    w.writer.update_activity(w.ex.meeting, location="Кабинет 505")
    first = w.sync()
    assert [d.status for d in first.deliveries] == ["failed"]
    w.transport.inner = inner
    w.clock.advance(seconds=w.config.delivery.backoff_initial_seconds)
    second = w.sync()
    assert [d.status for d in second.deliveries] == ["sent"]
    assert len(sent_after(w, before)) == 1


def test_reconcile_drops_the_bytes_of_messages_delivered_long_ago(world: World) -> None:
    w = world
    started(w)
    w.writer.update_activity(w.ex.meeting, location="Кабинет 505")
    w.sync()
    sent = w.app.store.messages(activity_id=w.ex.meeting)
    assert len(sent) == 2 and all(m.status == "sent" and m.mime for m in sent)
    w.clock.advance(days=29)
    assert w.sync(full=True).forgotten == 0
    w.clock.advance(days=2)
    report = w.sync(full=True)
    assert report.forgotten == 2
    kept = w.app.store.messages(activity_id=w.ex.meeting)
    # the log keeps every row and what it says; only the bytes are gone
    assert [(m.id, m.method, m.sequence, m.status, m.recipients) for m in kept] == [
        (m.id, m.method, m.sequence, m.status, m.recipients) for m in sent
    ]
    assert all(m.mime == b"" for m in kept)
    assert w.sync(full=True).forgotten == 0


def test_message_bytes_are_kept_when_retention_is_off(world: World) -> None:
    w = world
    w.reconfigure(state={"keep_message_bytes_days": None})
    started(w)
    w.clock.advance(days=400)
    assert w.sync(full=True).forgotten == 0
    assert all(m.mime for m in w.app.store.messages(activity_id=w.ex.meeting))


def test_a_round_recorded_meanwhile_is_replanned_from_the_crm_as_it_is_now(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sync reads the meeting; before it records its round, the user moves the meeting
    again and presses the button. The sync's round then conflicts and is planned again: from
    the CRM as it is now, not from what it read, or it would undo the user's newer time."""
    w = world
    started(w)
    moved = w.ex_start() + timedelta(hours=1)
    w.writer.update_activity(w.ex.meeting, StartDate=moved, DueDate=moved + timedelta(hours=1))
    w.clock.advance(seconds=10)
    newest = w.ex_start() + timedelta(hours=5)
    read_crm = w.app.crm.meetings
    pressed: list[bool] = []

    def read_then_user_acts(ids):  # type: ignore[no-untyped-def]
        found = read_crm(ids)
        if not pressed:
            pressed.append(True)
            w.writer.update_activity(
                w.ex.meeting, StartDate=newest, DueDate=newest + timedelta(hours=1)
            )
            assert w.invite().delivered
        return found

    monkeypatch.setattr(w.app.crm, "meetings", read_then_user_acts)
    w.sync()
    monkeypatch.setattr(w.app.crm, "meetings", read_crm)
    times = [(m.sequence, m.vevent.dtstart.value) for m in w.sent()]
    assert times[-1][1] == newest, times
    assert [s for s, _ in times] == sorted(s for s, _ in times)


def test_a_cycle_stopped_midway_leaves_the_reconcile_and_the_watermark_to_the_next(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM arrives while the incremental pass reads participants, before the hourly
    reconcile: neither the watermark nor the reconcile time may move, or a deleted activity
    would wait another hour for its CANCEL and participant edits would be skipped."""
    w = world
    before = started(w)
    watermark = w.app.store.get(WATERMARK)
    w.writer.delete_activity(w.ex.meeting)
    w.clock.advance(minutes=61)
    stopping: list[bool] = []
    read_participants = w.app.crm.changed_participants

    def stop_arrives(*args, **kwargs):  # type: ignore[no-untyped-def]
        stopping.append(True)
        return read_participants(*args, **kwargs)

    monkeypatch.setattr(w.app.crm, "changed_participants", stop_arrives)
    stopped = SyncService(w.app, stop=lambda: bool(stopping)).cycle()
    monkeypatch.setattr(w.app.crm, "changed_participants", read_participants)
    assert stopped.full and len(w.envelopes()) == before
    assert w.app.store.get(WATERMARK) == watermark
    w.clock.advance(minutes=1)
    report = w.sync()  # the restarted service
    assert report.full
    (cancel,) = w.sent()[before:]
    assert cancel.method == "CANCEL"
