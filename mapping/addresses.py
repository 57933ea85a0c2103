"""E-mail address checks: what the connector is willing to put in To: and ATTENDEE."""

from __future__ import annotations

import re

_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def normalise_email(raw: str | None) -> str | None:
    """The address in a canonical form, or None when it is not usable.

    Accepted: an ASCII dot-atom local part (at most 64 characters) and a domain of at least two
    labels; an internationalised domain is converted to its ASCII (IDNA) form. Refused: anything
    with spaces, control characters, quotes, angle brackets or several '@', and non-ASCII local
    parts (they need SMTPUTF8, which Exchange Online does not accept for every recipient).
    """
    if raw is None:
        return None
    text = raw.strip()
    if not text or len(text) > 254 or text.count("@") != 1:
        return None
    local, domain = text.split("@")
    if not _LOCAL.match(local) or len(local) > 64:
        return None
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except (UnicodeError, ValueError):
        return None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or len(ascii_domain) > 253:
        return None
    if not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        return None
    return f"{local}@{ascii_domain}"


def same_address(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and str(a).strip().lower() == str(b).strip().lower()
