"""The domain model: plain frozen values read from the CRM and from the state store."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True)
class Attendee:
    """Somebody who receives (or received) an invitation: an address and a display name."""

    email: str
    name: str
    contact_id: UUID | None = None

    @property
    def key(self) -> str:
        """Addresses are compared case-insensitively."""
        return self.email.lower()


@dataclass(frozen=True)
class Participant:
    """A row of the activity's "Participants" detail, joined with its contact."""

    contact_id: UUID
    name: str
    email: str | None
    #: ActivityParticipant.InviteParticipant: when false, not selected by default
    invite: bool = True


@dataclass(frozen=True)
class Meeting:
    """An activity as the CRM shows it now. Times are aware UTC datetimes."""

    activity_id: UUID
    title: str
    start: datetime | None
    end: datetime | None
    location: str
    notes: str
    status_id: UUID | None
    category_id: UUID | None
    category_name: str
    invitation_enabled: bool
    cancelled: bool
    owner_contact_id: UUID | None = None
    author_contact_id: UUID | None = None
    participants: tuple[Participant, ...] = ()
    modified_on: datetime | None = None


@dataclass(frozen=True)
class CrmUser:
    """A CRM user (SysAdminUnit of type 4) with the contact it belongs to."""

    id: UUID
    login: str
    contact_id: UUID | None
    name: str
    email: str | None
    time_zone_id: str | None
    active: bool
    role_ids: frozenset[UUID] = frozenset()


@dataclass(frozen=True)
class Mailbox:
    """A row of MailboxSyncSettings."""

    id: UUID
    owner_id: UUID | None
    address: str
    name: str = ""
    is_default: bool = False
    send_via: bool = False
    is_shared: bool = False
    created_on: datetime | None = None


@dataclass(frozen=True)
class MailboxRight:
    """A "Send emails" row of SysMailboxSyncSettingsRight (Operation 0)."""

    unit_id: UUID
    level: int


class SenderKind(enum.StrEnum):
    PERSONAL = "personal"
    FALLBACK = "fallback"


@dataclass(frozen=True)
class Sender:
    """The mailbox an invitation leaves from and the name shown as organiser."""

    address: str
    name: str
    kind: SenderKind
    login: str
    user_id: UUID | None = None

    @property
    def organizer(self) -> Attendee:
        return Attendee(self.address, self.name)


@dataclass(frozen=True)
class Snapshot:
    """What was sent, compared to decide whether a change is significant."""

    title: str
    start: datetime
    end: datetime
    location: str
    description: str
    cancelled: bool = False


@dataclass(frozen=True)
class InviteState:
    """The UID map entry of one activity: everything needed to plan the next round."""

    activity_id: UUID
    uid: str
    sequence: int
    organizer: Attendee
    sender_login: str
    sender_kind: SenderKind
    invited: tuple[Attendee, ...]
    snapshot: Snapshot
    last_sent_at: datetime
    cancelled: bool = False
    sender_user_id: UUID | None = None

    def invited_keys(self) -> frozenset[str]:
        return frozenset(a.key for a in self.invited)


class Method(enum.StrEnum):
    REQUEST = "REQUEST"
    CANCEL = "CANCEL"


@dataclass(frozen=True)
class PlannedMessage:
    """One iTIP message to build and send.

    ``recipients`` get the e-mail; ``attendees`` are the ATTENDEE lines of the calendar object
    (for a REQUEST everyone invited, for a CANCEL the people being cancelled).
    """

    method: Method
    sequence: int
    recipients: tuple[Attendee, ...]
    attendees: tuple[Attendee, ...]


@dataclass(frozen=True)
class Plan:
    """The planner's decision: messages to send and the state to record with them."""

    messages: tuple[PlannedMessage, ...]
    state: InviteState | None
    reasons: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.messages
