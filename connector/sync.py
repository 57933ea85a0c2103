"""The sync service: keeps recipients' calendars in step with the CRM without a button press.

One cycle:

1. take (or renew) the poller lease, so that of several instances only one looks for changes;
2. incremental pass: Activity and ActivityParticipant rows modified since the stored watermark
   minus ``sync.overlap_seconds`` (clock skew, long transactions), page by page in
   (ModifiedOn, Id) order; only activities in the UID map are looked at;
3. full reconcile every ``sync.reconcile_minutes`` (and on the first cycle): every tracked
   meeting that is not over and not cancelled, which also finds deleted activities and deleted
   participant rows;
4. for each changed meeting the pure rule (:mod:`mapping.sync_rules`) and the planner decide;
   the sender is the organizer and CRM user of the first send, whose right to the mailbox is
   checked again (a lost right stops the update and is shown by ``status``);
5. plans and messages are recorded (one transaction each), then the outbox is drained.

Memory stays bounded: ids are handled in batches of ``crm.batch_size``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from connector.app import App
from connector.crashpoints import crash_point
from connector.delivery import DeliveryResult
from connector.state.store import StateConflict
from mapping.compose import Outgoing
from mapping.errors import Refusal
from mapping.model import CrmUser, InviteState, Meeting, Sender
from mapping.planner import PlanOptions, plan
from mapping.sync_rules import Skip, SyncOptions, decide

log = logging.getLogger("connector.sync")

WATERMARK = "sync.watermark"
LAST_RECONCILE = "sync.last_reconcile"
LAST_CYCLE_AT = "sync.last_cycle_at"
LAST_CYCLE_SECONDS = "sync.last_cycle_seconds"
POLLER_LEASE = "sync.poller"


@dataclass
class CycleReport:
    started_at: datetime
    leader: bool = False
    full: bool = False
    rows_seen: int = 0
    examined: int = 0
    updated: int = 0
    messages: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    problems: int = 0
    deliveries: list[DeliveryResult] = field(default_factory=list)
    seconds: float = 0.0
    queries: int = 0
    #: messages whose stored bytes the full reconcile emptied (state.keep_message_bytes_days)
    forgotten: int = 0
    #: activities already brought up to date in this cycle (each is looked at once)
    done: set[UUID] = field(default_factory=set, repr=False)


class SyncService:
    def __init__(self, app: App, stop: Callable[[], bool] = lambda: False) -> None:
        self.app = app
        self.config = app.config
        self.stop = stop
        self.options = SyncOptions(
            cancel_removed_participants=app.config.sync.cancel_removed_participants,
            invite_new_participants=app.config.sync.invite_new_participants,
            skip_past_meetings=app.config.sync.skip_past_meetings,
            include_notes=app.config.invitations.include_notes,
        )
        self._users: dict[UUID | str, CrmUser | None] = {}
        #: the rights verdict per (user, organizer mailbox), asked once per cycle
        self._verdicts: dict[tuple[UUID, str], Refusal | None] = {}

    # -- one cycle ------------------------------------------------------------------------
    def cycle(self, *, full: bool = False) -> CycleReport:
        started = time.monotonic()
        now = self.app.clock()
        report = CycleReport(started_at=now)
        self._users = {}
        self._verdicts = {}
        store = self.app.store
        report.leader = store.acquire_lease(
            POLLER_LEASE, self.app.worker, now, self.config.sync.lease_seconds
        )
        if report.leader:
            last = store.get(LAST_RECONCILE)
            due = last is None or datetime.fromisoformat(last) <= now - timedelta(
                minutes=self.config.sync.reconcile_minutes
            )
            watermark = store.get(WATERMARK)
            if watermark is not None:
                self._incremental(datetime.fromisoformat(watermark), report)
            if full or due or watermark is None:
                report.full = True
                self._reconcile(report)
                keep = self.config.state.keep_message_bytes_days
                if keep is not None and not self.stop():
                    report.forgotten = store.forget_message_bytes(now - timedelta(days=keep))
                # a reconcile cut short by a stop is not done: the next cycle does it again
                if not self.stop():
                    store.put(LAST_RECONCILE, now.isoformat())
            if watermark is None and not self.stop():
                store.put(WATERMARK, now.isoformat())
        report.deliveries = self.app.deliverer.drain(stop=self.stop)
        report.seconds = time.monotonic() - started
        store.put(LAST_CYCLE_AT, self.app.clock().isoformat())
        store.put(LAST_CYCLE_SECONDS, f"{report.seconds:.6f}")
        log.info(
            "event=sync_cycle leader=%s full=%s rows=%d examined=%d updated=%d messages=%d "
            "delivered=%d problems=%d skipped=%s forgotten=%d seconds=%.3f",
            report.leader,
            report.full,
            report.rows_seen,
            report.examined,
            report.updated,
            report.messages,
            sum(d.status == "sent" for d in report.deliveries),
            report.problems,
            ",".join(f"{k}:{v}" for k, v in sorted(report.skipped.items())) or "-",
            report.forgotten,
            report.seconds,
        )
        return report

    def _incremental(self, watermark: datetime, report: CycleReport) -> None:
        since = watermark - timedelta(seconds=self.config.sync.overlap_seconds)
        newest = watermark
        crm = self.app.crm
        for reader in (crm.changed_activities, crm.changed_participants):
            after: tuple[datetime, UUID] | None = None
            while not self.stop():
                page = reader(since, after, self.config.crm.batch_size)
                report.queries += 1
                if not page:
                    break
                report.rows_seen += len(page)
                newest = max(newest, page[-1][0])
                after = (page[-1][0], page[-1][1])
                ids = list(dict.fromkeys(row[2] for row in page))
                tracked = self.app.store.tracked(ids)
                self._process([i for i in ids if i in tracked], report)
                if len(page) < self.config.crm.batch_size:
                    break
        # a pass cut short by a stop leaves the watermark: the rows it did not read are read
        # again next time (the ones it did are compared with the UID map, so nothing is resent)
        if not self.stop():
            self.app.store.put(WATERMARK, newest.isoformat())

    def _reconcile(self, report: CycleReport) -> None:
        after: str | None = None
        while not self.stop():
            page = self.app.store.tracked_page(after, self.config.crm.batch_size, self.app.clock())
            if not page:
                break
            after = str(page[-1])
            self._process(page, report)

    # -- meetings -------------------------------------------------------------------------
    def _process(self, ids: Iterable[UUID], report: CycleReport) -> None:
        batch = [i for i in dict.fromkeys(ids) if i not in report.done]
        if not batch:
            return
        report.done.update(batch)
        # the UID map first, then the CRM: the CRM view is then at least as new as the entry it
        # is compared with; a round recorded in between makes ours conflict and re-plan
        states = self.app.store.states(batch)
        meetings = self.app.crm.meetings(batch)
        report.queries += 2
        for activity_id in batch:
            state = states.get(activity_id)
            if state is None:
                continue
            report.examined += 1
            self.update(activity_id, meetings.get(activity_id), state, report)

    def update(
        self,
        activity_id: UUID,
        meeting: Meeting | None,
        state: InviteState,
        report: CycleReport,
    ) -> None:
        """Bring one tracked meeting up to date (re-planning if another process got there)."""
        for _ in range(3):
            try:
                self._update_once(activity_id, meeting, state, report)
                return
            except StateConflict:
                # someone else recorded a round since we read: plan again from both the new
                # entry and the CRM as it is now (the other round may carry a newer edit)
                fresh = self.app.store.get_state(activity_id)
                if fresh is None:
                    return
                state = fresh
                meeting = self.app.crm.meetings([activity_id]).get(activity_id)
                report.queries += 1
        log.warning("event=sync_conflict activity=%s", activity_id)

    def _update_once(
        self, activity_id: UUID, meeting: Meeting | None, state: InviteState, report: CycleReport
    ) -> None:
        now = self.app.clock()
        user = self._user(state)
        decision = decide(
            meeting,
            state,
            now,
            self.options,
            sender_contact_id=user.contact_id if user else None,
        )
        if isinstance(decision, Skip):
            if decision.reason not in ("already_cancelled", "meeting_over"):
                log.info("event=sync_skip activity=%s reason=%s", activity_id, decision.reason)
            report.skipped[decision.reason] += 1
            return
        sender = Sender(
            state.organizer.email,
            state.organizer.name,
            state.sender_kind,
            state.sender_login,
            state.sender_user_id,
        )
        result = plan(
            activity_id=activity_id,
            uid=state.uid,
            snapshot=decision.snapshot,
            previous=state,
            target=decision.target,
            sender=sender,
            now=now,
            options=PlanOptions(
                cancel_dropped=decision.cancel_dropped,
                max_recipients_per_message=self.config.mailboxes.max_recipients_per_message,
            ),
        )
        if result.state is None or (not result.messages and result.state == state):
            report.skipped["no_change"] += 1
            return
        outgoing: list[Outgoing] = []
        if result.messages:
            refusal = self._sender_refusal(user, state)
            if refusal is not None:
                report.problems += 1
                text = refusal.message(self.config.invitations.language)
                self.app.store.set_problem(activity_id, f"{refusal.code}: {text}", now)
                log.warning(
                    "event=sync_refused activity=%s login=%s reason=%s",
                    activity_id,
                    state.sender_login,
                    refusal.code,
                )
                return
            assert user is not None
            outgoing = self.app.service.build(result, user, now)
        self.app.store.record(
            result.state,
            outgoing,
            origin="sync",
            now=now,
            previous=state,
            acting_login=state.sender_login,
        )
        crash_point("after_record")
        report.updated += 1
        report.messages += len(outgoing)
        log.info(
            "event=sync_update activity=%s sequence=%d messages=%d reasons=%s",
            activity_id,
            result.state.sequence,
            len(outgoing),
            ",".join(result.reasons),
        )

    def _user(self, state: InviteState) -> CrmUser | None:
        key: UUID | str = state.sender_user_id or state.sender_login.lower()
        if key not in self._users:
            crm = self.app.crm
            found = crm.user_by_id(state.sender_user_id) if state.sender_user_id else None
            self._users[key] = found or crm.user_by_login(state.sender_login)
        return self._users[key]

    def _sender_refusal(self, user: CrmUser | None, state: InviteState) -> Refusal | None:
        """Why the original sender may not send this update, or None when they may."""
        if user is None:
            return Refusal("user_not_found", login=state.sender_login)
        if not user.active:
            return Refusal("user_inactive", login=user.login)
        key = (user.id, state.organizer.key)
        if key not in self._verdicts:
            verdict: Refusal | None = None
            try:
                self.app.service.sender_for(user, state)
                # the transport's own early refusal (delegated Graph: no stored sign-in)
                self.app.service.transport_accepts(user.login, state.organizer.email)
            except Refusal as refusal:
                verdict = refusal
            self._verdicts[key] = verdict
        return self._verdicts[key]
