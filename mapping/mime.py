"""The e-mail that carries an iTIP message (RFC 6047), in the structure Exchange itself emits.

::

    multipart/mixed
    ├── multipart/alternative
    │   ├── text/plain; charset=utf-8
    │   ├── text/html; charset=utf-8
    │   └── text/calendar; method=REQUEST; charset=UTF-8
    └── application/ics; name="invite.ics"   (attachment)

Headers come from the standard ``email`` package: display names and the subject are RFC 2047
encoded by it, and nothing from the CRM can carry CR or LF (see :mod:`mapping.text`).
The MIME boundaries are derived from the Message-ID, so the same message builds to the same
bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP
from email.utils import format_datetime

from mapping.model import Attendee, Method
from mapping.text import clean_line, display_name

#: up to this many recipients the To: header names them; beyond, it lists addresses only (the
#: calendar object's ATTENDEE lines still name everybody). Folding hundreds of encoded names
#: was 90% of the cost of building a large invitation.
NAMED_RECIPIENTS = 50


def _address(person: Attendee) -> Address:
    local, _, domain = person.email.partition("@")
    return Address(display_name=display_name(person.name), username=local, domain=domain)


def _boundary(message_id: str, part: str) -> str:
    return "=_" + hashlib.sha256(f"{message_id}/{part}".encode()).hexdigest()[:32]


def build_mime(
    *,
    sender: Attendee,
    recipients: Sequence[Attendee],
    subject: str,
    text: str,
    html: str,
    ics: bytes,
    method: Method,
    message_id: str,
    date: datetime,
) -> bytes:
    """The whole RFC 5322 message as bytes with CRLF line endings."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = _address(sender)
    named = len(recipients) <= NAMED_RECIPIENTS
    msg["To"] = [_address(r) if named else _address(Attendee(r.email, "")) for r in recipients]
    msg["Subject"] = clean_line(subject, 255)
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    msg["MIME-Version"] = "1.0"
    msg["Content-Class"] = "urn:content-classes:calendarmessage"
    msg["X-Mailer"] = "BPMSoft Invite Connector"

    alternative = MIMEPart(policy=SMTP)
    # base64 rather than quoted-printable: Cyrillic text is a third of the size
    alternative.set_content(text, subtype="plain", charset="utf-8", cte="base64")
    alternative.add_alternative(html, subtype="html", charset="utf-8", cte="base64")
    alternative.add_alternative(
        ics,
        maintype="text",
        subtype="calendar",
        cte="base64",
        params={"method": method.value, "charset": "UTF-8"},
    )
    alternative.set_boundary(_boundary(message_id, "alternative"))
    attachment = MIMEPart(policy=SMTP)
    attachment.set_content(
        ics,
        maintype="application",
        subtype="ics",
        cte="base64",
        disposition="attachment",
        filename="invite.ics",
        params={"method": method.value, "name": "invite.ics"},
    )
    msg["Content-Type"] = "multipart/mixed"
    msg.set_boundary(_boundary(message_id, "mixed"))
    msg.attach(alternative)  # type: ignore[arg-type]
    msg.attach(attachment)  # type: ignore[arg-type]
    return msg.as_bytes(policy=SMTP)
