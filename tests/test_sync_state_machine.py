"""A Hypothesis state machine over CRM edits, button presses and sync cycles, checked against a
reference model of every recipient's calendar (RFC 5546: a lower SEQUENCE is ignored, REQUEST
creates or replaces, CANCEL removes). The calendars are fed by parsing each sent message with
vobject, not with our own code."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mapping.crm_names import CANCELLED_STATUS
from mapping.errors import Refusal
from tests.support.calendar_model import Calendars
from tests.support.checkers import parse_message
from tests.support.world import CrmDb, World, make_world

PLACES = ["Кабинет 404", "Кабинет 505", "Переговорная"]
TITLES = ["Встреча с клиентом", "Встреча (перенос)"]


class CalendarsFollowTheCrm(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="sm-"))
        self.w: World = make_world(
            CrmDb(f"sqlite:///{self.tmp / 'crm.db'}", None, "sqlite"),
            self.tmp,
            sync={"overlap_seconds": 0},
        )
        ex = self.w.ex
        self.pool = [ex.denis, ex.dasha, ex.liza, ex.stas_contact]
        self.emails = {
            ex.denis: "denis@ivanov.by",
            ex.dasha: "dasha@ivanov.by",
            ex.liza: "liza@ivanov.by",
            ex.stas_contact: "stas@ivanov.ru",
        }
        self.participants = {ex.denis, ex.dasha, ex.liza}
        self.deleted = False
        self.cancelled = False
        self.calendars = Calendars()
        self.applied = 0
        self.full_since_edit = True

    def teardown(self) -> None:
        self.w.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- edits ------------------------------------------------------------------------------
    def _edit(self, **changes: object) -> None:
        self.w.clock.advance(seconds=1)
        self.w.writer.update_activity(self.w.ex.meeting, **changes)
        self.full_since_edit = False

    @precondition(lambda self: not self.deleted)
    @rule(hours=st.integers(1, 5))
    def move(self, hours: int) -> None:
        start = self.w.ex_start() + timedelta(hours=hours)
        self._edit(StartDate=start, DueDate=start + timedelta(minutes=30 * hours))

    @precondition(lambda self: not self.deleted)
    @rule(place=st.sampled_from(PLACES))
    def change_place(self, place: str) -> None:
        self._edit(location=place)

    @precondition(lambda self: not self.deleted)
    @rule(title=st.sampled_from(TITLES))
    def change_title(self, title: str) -> None:
        self._edit(Title=title)

    @precondition(lambda self: not self.deleted)
    @rule(index=st.integers(0, 3))
    def add_participant(self, index: int) -> None:
        contact = self.pool[index]
        if contact not in self.participants:
            self.w.clock.advance(seconds=1)
            self.w.writer.add_participant(self.w.ex.meeting, contact)
            self.participants.add(contact)
            self.full_since_edit = False

    @precondition(lambda self: not self.deleted)
    @rule(index=st.integers(0, 3))
    def remove_participant(self, index: int) -> None:
        contact = self.pool[index]
        if contact in self.participants:
            self.w.writer.remove_participant(self.w.ex.meeting, contact)
            self.participants.discard(contact)
            self.full_since_edit = False

    @precondition(lambda self: not self.deleted and not self.cancelled)
    @rule()
    def cancel(self) -> None:
        self._edit(StatusId=CANCELLED_STATUS)
        self.cancelled = True

    @precondition(lambda self: not self.deleted)
    @rule()
    def delete(self) -> None:
        self.w.writer.delete_activity(self.w.ex.meeting)
        self.deleted = True
        self.full_since_edit = False

    # -- the connector --------------------------------------------------------------------------
    @rule()
    def press_send(self) -> None:
        with contextlib.suppress(Refusal):  # deleted, cancelled before any send, ...
            self.w.invite()
        self._apply()

    @rule()
    def sync(self) -> None:
        self.w.clock.advance(seconds=1)
        self.w.sync()
        self._apply()

    @rule()
    def full_sync(self) -> None:
        self.w.clock.advance(seconds=1)
        self.w.sync(full=True)
        self._apply()
        self.full_since_edit = True

    def _apply(self) -> None:
        for envelope in self.w.envelopes()[self.applied :]:
            msg = parse_message(envelope.mime)
            ev = msg.vevent
            content = (
                str(ev.summary.value),
                ev.dtstart.value,
                ev.dtend.value,
                str(ev.location.value),
            )
            for rcpt in envelope.recipients:
                self.calendars.apply(rcpt, msg.method, msg.uid, msg.sequence, content)
        self.applied = len(self.w.envelopes())

    # -- what must hold -----------------------------------------------------------------------
    @invariant()
    def every_calendar_shows_the_meeting_as_the_crm_does_or_not_at_all(self) -> None:
        if not self.full_since_edit:
            return
        state = self.w.app.store.get_state(self.w.ex.meeting)
        if state is None:
            assert not self.calendars.entries
            return
        holders = self.calendars.holders(state.uid)
        if self.deleted or self.cancelled:
            assert holders == set()
            return
        meeting = self.w.app.crm.meeting(self.w.ex.meeting)
        assert meeting is not None
        crm_view = (meeting.title, meeting.start, meeting.end, meeting.location)
        for who in holders:
            entry = self.calendars.entry(who, state.uid)
            assert entry is not None and entry.content == crm_view, (who, entry, crm_view)
        current = {self.emails[c] for c in self.participants}
        assert holders <= current, (holders, current)
        assert {a.email for a in state.invited} == holders

    @invariant()
    def sequence_never_goes_down(self) -> None:
        state = self.w.app.store.get_state(self.w.ex.meeting)
        seqs = [m.sequence for m in self.w.app.store.messages(activity_id=self.w.ex.meeting)]
        assert seqs == sorted(seqs)
        if state is not None and seqs:
            assert max(seqs) <= state.sequence


CalendarsFollowTheCrm.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestCalendarsFollowTheCrm = CalendarsFollowTheCrm.TestCase
