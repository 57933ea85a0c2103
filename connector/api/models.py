"""Request and response bodies of the HTTP API (published in ``/openapi.json``).

Response models forbid unknown fields and are filled from :mod:`connector.views`, the shapes the
CLI prints with ``--json``: a drift between the two fails the tests instead of the clients.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

#: CRM logins and recipient tokens: printable text, no control characters
LOGIN_PATTERN = r"^[^\x00-\x1f\x7f]+$"
Recipient = Annotated[str, Field(min_length=1, max_length=320)]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(_Out):
    """A refusal or an error: a stable ``code`` and a ``message`` in the caller's language."""

    code: str = Field(examples=["location_empty"])
    message: str
    params: dict[str, Any] = Field(default_factory=dict)


# -- the dialog's content -------------------------------------------------------------------
class SenderOut(_Out):
    address: str
    name: str
    kind: Literal["personal", "fallback"]


class ParticipantOut(_Out):
    contact_id: UUID
    name: str
    email: str | None
    selected: bool
    current_user: bool
    problem: Literal["no_email", "bad_email", "duplicate_email", "organizer"] | None


class WarningOut(_Out):
    code: str = Field(examples=["location_empty"])
    message: str


class DraftOut(_Out):
    """What the recipient dialog shows (figure 2.4)."""

    activity_id: UUID
    title: str
    start: datetime | None
    end: datetime | None
    location: str
    location_empty: bool
    sender: SenderOut
    participants: list[ParticipantOut]
    warnings: list[WarningOut]
    already_sent: bool
    sequence: int | None


# -- the send -------------------------------------------------------------------------------
class InviteIn(BaseModel):
    """The "Choose" button: who acts, whom to invite, and the answer to the empty-place question."""

    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=256, pattern=LOGIN_PATTERN, examples=["Supervisor"])
    recipients: list[Recipient] | None = Field(
        default=None,
        max_length=1000,
        description="contact ids or e-mail addresses of participants; null: the default "
        "selection (all but the current user)",
    )
    send_without_location: bool = Field(
        default=False, description="the user answered 'Yes' to the empty-place warning"
    )


class MessageOut(_Out):
    method: str
    sequence: int
    recipients: list[str]
    message_id: str
    subject: str


class DeliveryOut(_Out):
    method: str
    sequence: int
    recipients: list[str]
    status: Literal["sent", "failed", "parked", "lost"]
    error: str | None


class SkippedOut(_Out):
    contact_id: UUID
    name: str
    problem: str | None


class RecipientOut(_Out):
    """The result for one recipient."""

    email: str | None
    name: str | None
    contact_id: UUID | None
    method: str | None
    status: Literal["sent", "failed", "parked", "lost", "skipped"]
    problem: str | None
    error: str | None


class InviteResultOut(_Out):
    status: Literal["sent", "nothing", "queued", "failed", "dry_run"]
    message: str
    activity_id: UUID
    uid: str
    sequence: int
    sender: str
    reasons: list[str]
    recipients: list[RecipientOut]
    messages: list[MessageOut]
    deliveries: list[DeliveryOut]
    skipped: list[SkippedOut]


class DeliveryFailedOut(ErrorOut):
    """502: the transport's error, and what happened to every recipient."""

    result: InviteResultOut


# -- the dialog link ------------------------------------------------------------------------
class LinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=256, pattern=LOGIN_PATTERN, examples=["Supervisor"])
    lang: Literal["ru", "en"] | None = None


class LinkOut(_Out):
    url: str = Field(description="absolute when api.public_url is set, else from the request")
    path: str
    expires_at: datetime


# -- status ---------------------------------------------------------------------------------
class OrganizerOut(_Out):
    email: str
    name: str


class InvitedOut(_Out):
    email: str
    name: str


class MessageCountsOut(_Out):
    pending: int
    failed: int
    parked: int
    sent: int


class MeetingStatusOut(_Out):
    """The UID map entry of the activity."""

    activity_id: UUID
    uid: str
    sequence: int
    organizer: OrganizerOut
    sender_login: str
    sender_kind: Literal["personal", "fallback"]
    invited: list[InvitedOut]
    title: str
    start: datetime
    end: datetime
    location: str
    cancelled: bool
    last_sent_at: datetime
    messages: MessageCountsOut
    problem: str | None
    problem_at: datetime | None


class AttemptOut(_Out):
    worker: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    status_code: int | None
    error_code: str | None


class LoggedMessageOut(_Out):
    id: int
    method: str
    sequence: int
    sender: str
    sender_login: str
    recipients: list[str]
    message_id: str
    origin: str
    status: str
    attempts: int
    error: str | None
    error_code: str | None
    created_at: datetime
    sent_at: datetime | None
    attempt_log: list[AttemptOut]


class StatusOut(_Out):
    activity_id: UUID
    meeting: MeetingStatusOut | None
    messages: list[LoggedMessageOut]


# -- operations -----------------------------------------------------------------------------
class HealthOut(_Out):
    status: Literal["ok"]


class CheckOut(_Out):
    ok: bool
    detail: str | None = None


class ReadyOut(_Out):
    status: Literal["ready", "unavailable"]
    checks: dict[str, CheckOut]
