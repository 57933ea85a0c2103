"""The "Send invitation" use case (manual section 2): the dialog's content and the send.

Flow: read (CRM, UID map) -> rules and plan (pure, :mod:`mapping`) -> build messages (pure) ->
record plan and messages in one transaction -> deliver through the outbox -> report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from connector.config import Config
from connector.delivery import Deliverer, DeliveryResult
from connector.ports import CrmReader, SenderCheck
from connector.state.store import StateConflict, StateStore
from mapping.addresses import normalise_email
from mapping.compose import Outgoing, compose
from mapping.errors import Refusal
from mapping.identity import meeting_uid
from mapping.model import CrmUser, InviteState, Meeting, Plan, Sender
from mapping.planner import PlanOptions, plan, snapshot_of
from mapping.recipients import Candidate, Problem, candidates, select
from mapping.sender import Fallback, authorize_existing, choose_sender
from mapping.timezones import resolve_zone

log = logging.getLogger("connector.service")


@dataclass(frozen=True)
class Notice:
    """A warning shown with the dialog (code + params, rendered by :mod:`mapping.messages`)."""

    code: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Draft:
    """What the recipient dialog (figure 2.4) shows."""

    meeting: Meeting
    user: CrmUser
    sender: Sender
    candidates: tuple[Candidate, ...]
    notices: tuple[Notice, ...]
    state: InviteState | None

    @property
    def location_empty(self) -> bool:
        return not self.meeting.location.strip()


@dataclass(frozen=True)
class InviteResult:
    activity_id: UUID
    uid: str
    sequence: int
    sender: str
    reasons: tuple[str, ...]
    outgoing: tuple[Outgoing, ...]
    deliveries: tuple[DeliveryResult, ...]
    skipped: tuple[Candidate, ...]
    dry_run: bool = False

    @property
    def delivered(self) -> bool:
        return all(d.status == "sent" for d in self.deliveries)

    @property
    def nothing_to_send(self) -> bool:
        return not self.outgoing and not self.deliveries

    def recipients_sent(self) -> list[str]:
        return [r for d in self.deliveries if d.status == "sent" for r in d.recipients]


@dataclass(frozen=True)
class _Round:
    """One planned send, before anything is written."""

    activity_id: UUID
    user: CrmUser
    state: InviteState | None
    sender: Sender
    uid: str
    plan: Plan
    outgoing: tuple[Outgoing, ...]
    skipped: tuple[Candidate, ...]
    now: datetime


#: how often a send is planned again when another process recorded a round meanwhile
CONFLICT_RETRIES = 3


class InvitationService:
    def __init__(
        self,
        config: Config,
        crm: CrmReader,
        store: StateStore,
        deliverer: Deliverer,
        clock: Callable[[], datetime],
    ) -> None:
        self.config = config
        self.crm = crm
        self.store = store
        self.deliverer = deliverer
        self.clock = clock

    # -- reading and rules ----------------------------------------------------------------
    def user(self, login: str) -> CrmUser:
        user = self.crm.user_by_login(login)
        if user is None:
            raise Refusal("user_not_found", login=login[:100])
        if not user.active:
            raise Refusal("user_inactive", login=user.login)
        return user

    def meeting(self, activity_id: UUID) -> Meeting:
        meeting = self.crm.meeting(activity_id)
        if meeting is None:
            raise Refusal("not_found", activity_id=str(activity_id))
        return meeting

    def fallback(self, user: CrmUser) -> Fallback | None:
        """The fallback mailbox: the YAML address, else the CRM setting (text or lookup)."""
        mailboxes = self.config.mailboxes
        address = mailboxes.fallback
        source = "config"
        mailbox = None
        if address is None:
            source = "crm_setting"
            value = self.crm.setting(self.config.crm.names.invitation_mailbox_setting, user.id)
            if value is None:
                return None
            if value.guid is not None:
                mailbox = self.crm.mailbox_by_id(value.guid)
                address = normalise_email(mailbox.address) if mailbox else None
            elif value.text:
                address = normalise_email(value.text)
            if address is None:
                log.warning("event=fallback_setting_unusable source=%s", source)
                return None
        if mailbox is None:
            mailbox = self.crm.mailbox_by_address(address)
        rights = tuple(self.crm.send_rights(mailbox.id)) if mailbox else ()
        return Fallback(address, mailbox, rights, source)

    def sender_for(self, user: CrmUser, state: InviteState | None) -> Sender:
        """The first send follows the manual's order; later sends keep the first organizer,
        and the acting user must be allowed to send from it."""
        override = self.config.mailboxes.users.get(user.login.lower())
        personal = self.crm.mailboxes_of(user.id)
        if state is None:
            return choose_sender(
                user,
                personal,
                override=override,
                fallback=None if override or personal else self.fallback(user),
                fallback_name=self.config.mailboxes.fallback_name,
            )
        address = state.organizer.email
        mailbox = self.crm.mailbox_by_address(address)
        rights = self.crm.send_rights(mailbox.id) if mailbox else []
        if not authorize_existing(
            user, address, personal, override=override, mailbox=mailbox, rights=rights
        ):
            raise Refusal("no_mailbox_rights", login=user.login, mailbox=address)
        return Sender(address, state.organizer.name, state.sender_kind, user.login, user.id)

    def transport_accepts(self, login: str, mailbox: str) -> None:
        """The transport's own early refusal (after the CRM rights check, before recording):
        e.g. delegated Graph without a stored sign-in of ``login``."""
        transport = self.deliverer.transport
        if isinstance(transport, SenderCheck):
            transport.check_sender(login, mailbox)

    def zone(self, user: CrmUser) -> ZoneInfo:
        zone_id = user.time_zone_id
        if not zone_id:
            value = self.crm.setting(self.config.crm.names.default_timezone_setting, user.id)
            zone_id = value.text if value else None
        return resolve_zone(zone_id, self.config.invitations.default_timezone)

    def _checked(
        self, activity_id: UUID, login: str
    ) -> tuple[CrmUser, Meeting, InviteState | None]:
        user = self.user(login)
        meeting = self.meeting(activity_id)
        if not meeting.invitation_enabled:
            raise Refusal("category_not_enabled", category=meeting.category_name or "-")
        state = self.store.get_state(activity_id)
        if meeting.cancelled and (state is None or state.cancelled):
            raise Refusal("meeting_cancelled")
        if not meeting.cancelled:
            snapshot_of(meeting)  # refuses a meeting without a valid start and end
        return user, meeting, state

    # -- the dialog -----------------------------------------------------------------------
    def draft(self, activity_id: UUID, login: str) -> Draft:
        user, meeting, state = self._checked(activity_id, login)
        sender = self.sender_for(user, state)
        lines = tuple(candidates(meeting, user, sender.address, _invited(state)))
        notices: list[Notice] = []
        if not meeting.location.strip():
            notices.append(Notice("warn_location_empty"))
        for c in lines:
            if c.problem is Problem.NO_EMAIL:
                notices.append(Notice("warn_no_email", {"name": c.name}))
            elif c.problem is Problem.BAD_EMAIL:
                notices.append(Notice("warn_bad_email", {"name": c.name, "email": c.raw_email}))
        if meeting.end is not None and meeting.end < self.clock():
            notices.append(Notice("warn_meeting_past"))
        if state is not None:
            notices.append(Notice("warn_already_sent", {"when": state.last_sent_at.isoformat()}))
        return Draft(meeting, user, sender, lines, tuple(notices), state)

    # -- the send -------------------------------------------------------------------------
    def invite(
        self,
        activity_id: UUID,
        login: str,
        recipients: Sequence[str] | None = None,
        *,
        without_location: bool = False,
        dry_run: bool = False,
    ) -> InviteResult:
        for attempt in range(1, CONFLICT_RETRIES + 1):
            round_ = self._round(
                activity_id, login, recipients, without_location, check_transport=not dry_run
            )
            if dry_run:
                return self._result(round_, (), True)
            try:
                self._record(round_, activity_id)
            except StateConflict:
                log.info("event=state_conflict activity=%s attempt=%d", activity_id, attempt)
                if attempt == CONFLICT_RETRIES:
                    raise
                continue
            break
        deliveries = tuple(self.deliverer.deliver_activity(activity_id))
        log.info(
            "event=invite activity=%s login=%s sender=%s messages=%d delivered=%d reasons=%s",
            activity_id,
            round_.user.login,
            round_.sender.address,
            len(round_.outgoing),
            sum(d.status == "sent" for d in deliveries),
            ",".join(round_.plan.reasons),
        )
        return self._result(round_, deliveries, False)

    def _round(
        self,
        activity_id: UUID,
        login: str,
        recipients: Sequence[str] | None,
        without_location: bool,
        *,
        check_transport: bool = True,
    ) -> _Round:
        """Read, check the rules and plan one send (nothing is written)."""
        user, meeting, state = self._checked(activity_id, login)
        sender = self.sender_for(user, state)
        if check_transport:  # after the CRM rights check, before any other refusal
            self.transport_accepts(user.login, sender.address)
        now = self.clock()
        uid = state.uid if state else meeting_uid(activity_id, self.config.invitations.uid_domain)
        skipped: tuple[Candidate, ...] = ()
        if meeting.cancelled:
            assert state is not None
            result = self._plan(meeting, state, (), sender, now, uid, cancelled=True)
        else:
            lines = candidates(meeting, user, sender.address, _invited(state))
            selection = select(lines, recipients)
            skipped = selection.skipped
            if not selection.attendees:
                raise Refusal("no_recipients")
            if not meeting.location.strip() and not without_location:
                raise Refusal("location_empty")
            result = self._plan(meeting, state, selection.attendees, sender, now, uid)
        organizer_user = user
        if state is not None and state.sender_user_id not in (None, user.id):
            organizer_user = self.crm.user_by_id(state.sender_user_id) or user
        outgoing = tuple(self.build(result, organizer_user, now))
        return _Round(activity_id, user, state, sender, uid, result, outgoing, skipped, now)

    def _record(self, round_: _Round, activity_id: UUID) -> None:
        requeued = self.store.requeue(
            round_.now, activity_id=activity_id, statuses=("failed", "parked")
        )
        if requeued:
            log.info("event=requeued activity=%s messages=%d", activity_id, requeued)
        new_state = round_.plan.state
        if new_state is not None and (round_.outgoing or new_state != round_.state):
            self.store.record(
                new_state,
                round_.outgoing,
                origin="manual",
                now=round_.now,
                previous=round_.state,
                acting_login=round_.user.login,
            )

    def _plan(
        self,
        meeting: Meeting,
        state: InviteState | None,
        target: Sequence[Any],
        sender: Sender,
        now: datetime,
        uid: str,
        *,
        cancelled: bool = False,
    ) -> Plan:
        if cancelled and state is not None:
            snapshot = replace(state.snapshot, cancelled=True)
        else:
            snapshot = snapshot_of(meeting, include_notes=self.config.invitations.include_notes)
        return plan(
            activity_id=meeting.activity_id,
            uid=uid,
            snapshot=snapshot,
            previous=state,
            target=target,
            sender=sender,
            now=now,
            options=PlanOptions(
                cancel_dropped=True,
                max_recipients_per_message=self.config.mailboxes.max_recipients_per_message,
            ),
        )

    def build(self, result: Plan, organizer_user: CrmUser, now: datetime) -> list[Outgoing]:
        if not result.messages or result.state is None:
            return []
        zone = self.zone(organizer_user)
        return [
            compose(
                planned,
                state=result.state,
                zone=zone,
                language=self.config.invitations.language,
                dtstamp=now,
                domain=self.config.invitations.uid_domain,
            )
            for planned in result.messages
        ]

    @staticmethod
    def _result(
        round_: _Round, deliveries: Sequence[DeliveryResult], dry_run: bool
    ) -> InviteResult:
        final = round_.plan.state or round_.state
        return InviteResult(
            activity_id=round_.activity_id,
            uid=round_.uid,
            sequence=final.sequence if final else 0,
            sender=final.organizer.email if final else round_.sender.address,
            reasons=round_.plan.reasons,
            outgoing=round_.outgoing,
            deliveries=tuple(deliveries),
            skipped=round_.skipped,
            dry_run=dry_run,
        )


def _invited(state: InviteState | None) -> frozenset[str]:
    """Who the last round invited: they stay selected by default (see ``candidates``)."""
    return state.invited_keys() if state is not None else frozenset()
