"""Structured logging: one event per line (key=value or JSON), secrets scrubbed.

Every record passes a filter that replaces any configured secret (client secret, passphrases,
SMTP password, API tokens, database passwords) and anything shaped like a bearer token or a JWT
(also one cut short) with ``***`` before it is formatted, so a secret can never reach a log
line, whatever logs it. Texts that are cut to length must be scrubbed before they are cut.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO

_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
#: a JWT, or what is left of one cut short (header and part of the payload)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}(?:\.[A-Za-z0-9_-]*)?")


class Scrubber:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        for s in secrets:
            if s and len(s) >= 4 and s not in self.secrets:
                self.secrets.append(s)
        self.secrets.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        text = _BEARER.sub(r"\1***", text)
        return _JWT.sub("***", text)


SCRUBBER = Scrubber()


#: what may not appear inside a logged value: it would end the line or start another field
_UNSAFE = re.compile(r'[\x00-\x20\x7f="%]')


def field_value(value: object) -> object:
    """A value logged into ``key=%s``, made one safe token: whitespace, control characters,
    ``=``, ``"`` and ``%`` are percent-encoded, so text from a request or the CRM cannot add a
    field or a line (a forged log record). Numbers pass as they are."""
    if isinstance(value, int | float) or value is None:
        return value
    return _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", SCRUBBER(str(value)))


class ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            # scrubbed before encoding, so an encoded secret cannot slip past the scrubber
            record.args = tuple(field_value(arg) for arg in record.args)
        message = record.getMessage()
        record.msg = SCRUBBER(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = SCRUBBER(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line = f"ts={stamp} level={record.levelname.lower()} logger={record.name} {record.msg}"
        if record.exc_text:
            line += " exc=" + json.dumps(record.exc_text)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        text = str(record.msg)
        fields = re.findall(r"(\w+)=(\S+)", text)
        for key, value in fields:  # the first of a repeated key; never ts, level or logger
            data.setdefault(key, value)
        if not fields:
            data["msg"] = text
        if record.exc_text:
            data["exc"] = record.exc_text
        return json.dumps(data, ensure_ascii=False)


def setup_logging(
    level: str = "INFO", fmt: str = "kv", secrets: Iterable[str] = (), stream: IO[str] | None = None
) -> None:
    SCRUBBER.add(secrets)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_connector", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._connector = True  # type: ignore[attr-defined]
    handler.addFilter(ScrubFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("urllib3", "msal", "apscheduler", "uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
