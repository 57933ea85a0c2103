"""Identifiers that must never change: the meeting UID and the e-mail Message-ID."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from uuid import UUID, uuid5

# A fixed namespace for this connector's UIDs (uuid5 of its name in the URL namespace).
_NAMESPACE = uuid5(UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8"), "urn:bpmsoft-invite-connector")


def meeting_uid(activity_id: UUID, uid_domain: str) -> str:
    """The iCalendar UID of an activity: the same for the life of the meeting.

    Derived, not stored-only: if the state store were lost, the next send would still update the
    recipients' existing calendar entries instead of duplicating them. The CRM's activity id is
    hashed (uuid5) so it is not shown to external recipients.
    """
    return f"{uuid5(_NAMESPACE, f'{uid_domain}/{activity_id}')}@{uid_domain}"


def message_id(uid: str, sequence: int, method: str, recipients: Iterable[str], domain: str) -> str:
    """A deterministic Message-ID per (UID, SEQUENCE, METHOD, recipients).

    A retried copy carries the same id, so Exchange's duplicate detection can drop it.
    """
    keys = "\n".join(sorted(r.lower() for r in recipients))
    digest = hashlib.sha256(f"{uid}\n{sequence}\n{method}\n{keys}".encode()).hexdigest()
    return f"<{digest[:40]}@{domain}>"
