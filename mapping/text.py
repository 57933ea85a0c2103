"""Cleaning CRM text before it reaches a header, a calendar property or an HTML page."""

from __future__ import annotations

import unicodedata

_DROP_CATEGORIES = {"Cc", "Cs", "Co", "Cn"}
_LINE_BREAKS = {"\r", "\n", "\x0b", "\x0c", "\x85", "\u2028", "\u2029", "\t"}


def clean_line(value: str | None, limit: int | None = None) -> str:
    """One line of text: line breaks and tabs become spaces, other control characters go.

    The result can never carry CR or LF, so it is safe in a mail header.
    """
    if not value:
        return ""
    out = []
    for ch in value:
        if ch in _LINE_BREAKS:
            out.append(" ")
        elif unicodedata.category(ch) in _DROP_CATEGORIES:
            continue
        else:
            out.append(ch)
    text = " ".join("".join(out).split())
    return shorten(text, limit) if limit else text


def clean_block(value: str | None) -> str:
    """Several lines of text: line breaks normalised to LF, other control characters removed."""
    if not value:
        return ""
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    kept = []
    for ch in text:
        if ch == "\n":
            kept.append(ch)
        elif ch == "\t":
            kept.append(" ")
        elif ch in _LINE_BREAKS or unicodedata.category(ch) in _DROP_CATEGORIES:
            continue
        else:
            kept.append(ch)
    return "\n".join(line.rstrip() for line in "".join(kept).split("\n")).strip("\n")


def shorten(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, marking the cut with an ellipsis."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + "…"


def display_name(value: str | None) -> str:
    """A person's name fit for CN= parameters and mail display names."""
    return clean_line(value, 200).replace('"', "'")
