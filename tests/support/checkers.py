"""Parsers we did not write, used to judge what our builders produce.

* ``email`` (the standard library's parser) for the MIME structure and headers;
* ``vobject`` (``readOne(validate=True)``);
* libical through ``python3-gi`` (``check_restrictions()`` checks iTIP rules per METHOD),
  run in Debian's own Python because the bindings are built for it.
"""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from functools import lru_cache
from pathlib import Path

import vobject

from tests.support.deps import missing

SYSTEM_PYTHON = "/usr/bin/python3"
LIBICAL_SCRIPT = Path(__file__).with_name("libical_check.py")


@dataclass
class ParsedInvitation:
    message: EmailMessage
    method: str  # the method= parameter of the text/calendar part
    calendar_text: str
    attachment_text: str | None
    vevent: vobject.base.Component
    vcalendar: vobject.base.Component

    @property
    def uid(self) -> str:
        return str(self.vevent.uid.value)

    @property
    def sequence(self) -> int:
        return int(self.vevent.sequence.value)

    @property
    def attendees(self) -> list[str]:
        return [
            str(a.value).lower().removeprefix("mailto:")
            for a in self.vevent.contents.get("attendee", [])
        ]

    @property
    def text_body(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())

    @property
    def html_body(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        assert part is not None
        return str(part.get_content())


def parse_message(raw: bytes) -> ParsedInvitation:
    """Parse an invitation e-mail with the stdlib and its calendar with vobject (validating)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message.get_content_type() == "multipart/mixed"
    calendar_part = None
    attachment = None
    for part in message.walk():
        if part.get_content_type() == "text/calendar" and not part.is_attachment():
            calendar_part = part
        elif part.is_attachment() and part.get_filename() == "invite.ics":
            attachment = part
    assert calendar_part is not None, "no text/calendar alternative"
    assert calendar_part.get_content_charset() is not None, "text/calendar without charset"
    text = calendar_part.get_content()
    attachment_text = None
    if attachment is not None:
        attachment_text = attachment.get_content()
        if isinstance(attachment_text, bytes):
            attachment_text = attachment_text.decode("utf-8")
    vcal = vobject.readOne(text, validate=True)
    method = str(calendar_part.get_param("method"))
    assert str(vcal.method.value) == method, "method= parameter differs from METHOD"
    return ParsedInvitation(message, method, text, attachment_text, vcal.vevent, vcal)


def parse_eml(path: Path) -> ParsedInvitation:
    return parse_message(path.read_bytes())


@lru_cache(maxsize=1)
def _libical_available() -> str | None:
    if shutil.which(SYSTEM_PYTHON) is None:
        return f"{SYSTEM_PYTHON} not found"
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('ICalGLib', '3.0')"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return "python3-gi with gir1.2-ical-3.0 is not installed"
    return None


def libical_verdicts(texts: Sequence[str]) -> list[dict[str, object]]:
    """libical's parse and iTIP-restriction errors for each calendar text."""
    problem = _libical_available()
    if problem:
        missing("libical", problem)
    done = subprocess.run(
        [SYSTEM_PYTHON, str(LIBICAL_SCRIPT)],
        input=json.dumps(list(texts)),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return list(json.loads(done.stdout))


def assert_libical_accepts(texts: Sequence[str], *, empty_allowed: Sequence[str] = ()) -> None:
    """libical parses every text and finds no iTIP restriction broken.

    ``empty_allowed`` names properties sent with an empty value on purpose (an empty LOCATION
    is valid RFC 5545 text and clears the place in an update, but libical drops it with a
    complaint): exactly that complaint is accepted for them, nothing else.
    """
    tolerated = {
        f"No value for {name} property. Removing entire property:" for name in empty_allowed
    }
    for text, verdict in zip(texts, libical_verdicts(texts), strict=True):
        assert verdict["parsed"], text
        errors = [e for e in verdict["errors"] if str(e).strip() not in tolerated]  # type: ignore[union-attr]
        assert errors == [], (verdict["errors"], text)


#: the elements our HTML body template uses; CRM text must never add one
# The top-level headers our invitations carry, no more, no less.
MESSAGE_HEADERS = frozenset(
    {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-class",
        "x-mailer",
        "content-type",
    }
)
TEMPLATE_TAGS = {"html", "head", "meta", "title", "body", "p", "strong", "table", "tr", "td", "br"}


def html_tags(html: str) -> set[str]:
    """Every element name in the HTML, as the standard library's parser sees it."""
    from html.parser import HTMLParser

    found: set[str] = set()

    class Collector(HTMLParser):
        def handle_starttag(self, tag: str, attrs: object) -> None:
            found.add(tag)

    Collector().feed(html)
    return found
