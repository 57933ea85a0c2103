"""The small protocols in front of every piece of I/O; services depend on these only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable
from uuid import UUID

from mapping.model import CrmUser, Mailbox, MailboxRight, Meeting


@dataclass(frozen=True)
class SettingValue:
    text: str | None
    guid: UUID | None


class CrmReader(Protocol):
    """Read-only access to the BPMSoft tables."""

    def meeting(self, activity_id: UUID) -> Meeting | None: ...

    def meetings(self, activity_ids: Sequence[UUID]) -> dict[UUID, Meeting]: ...

    def user_by_login(self, login: str) -> CrmUser | None: ...

    def user_by_id(self, user_id: UUID) -> CrmUser | None: ...

    def mailboxes_of(self, user_id: UUID) -> list[Mailbox]: ...

    def mailbox_by_address(self, address: str) -> Mailbox | None: ...

    def mailbox_by_id(self, mailbox_id: UUID) -> Mailbox | None: ...

    def send_rights(self, mailbox_id: UUID) -> list[MailboxRight]: ...

    def setting(self, code: str, user_id: UUID | None) -> SettingValue | None: ...

    def changed_activities(
        self, since: datetime, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[tuple[datetime, UUID, UUID]]: ...

    def changed_participants(
        self, since: datetime, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[tuple[datetime, UUID, UUID]]: ...

    def ping(self) -> None: ...


@dataclass(frozen=True)
class Envelope:
    """What a transport needs to deliver one message."""

    sender: str
    sender_login: str
    recipients: tuple[str, ...]
    mime: bytes
    message_id: str
    uid: str
    sequence: int
    method: str


class Transport(Protocol):
    """Hands a complete MIME message to a mail system.

    ``send`` returns a short receipt for the log, or raises
    :class:`mapping.errors.TransientDeliveryError` / :class:`mapping.errors.PermanentDeliveryError`.
    """

    name: str

    def send(self, envelope: Envelope) -> str: ...

    def close(self) -> None: ...


@runtime_checkable
class SenderCheck(Protocol):
    """Optional capability of a transport: refuse early when a user cannot send at all.

    Called by the service after the CRM rights check and before anything is recorded, e.g.
    delegated Graph refuses a user who never ran ``connector login`` (``Refusal``); no network.
    """

    def check_sender(self, login: str, mailbox: str) -> None: ...
