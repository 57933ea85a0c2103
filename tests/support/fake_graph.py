"""A fake Microsoft identity platform and a fake Microsoft Graph, over HTTPS on 127.0.0.1.

Driven by the real ``msal`` and ``requests`` (nothing patched): clients point
``authority_host``/``base_url`` at it, trust its test CA (``trustme``), and pass
``instance_discovery=False``.

What it emulates
----------------
* OpenID discovery: ``{origin}/{tenant}/v2.0/.well-known/openid-configuration``; the endpoints
  in it are built from the request's ``Host``, so a client that reaches the fake through a TCP
  proxy (:mod:`tests.support.tcp_proxy`) keeps going through it for tokens.
* Token endpoint ``{origin}/{tenant}/oauth2/v2.0/token``: client credentials with a client
  secret or a certificate client assertion (a JWT whose signature is verified with the
  registered public certificate, found by its ``x5t#S256``/``x5t`` thumbprint; ``aud``, ``iss``,
  ``sub`` and ``exp`` checked); the device-code grant (``authorization_pending`` until the code
  is approved); the refresh-token grant. Errors come in the identity platform's shape
  (``error``, ``error_description`` with an AADSTS number).
* Device authorization endpoint ``{origin}/{tenant}/oauth2/v2.0/devicecode`` (public clients).
* ``POST /v1.0/users/{id}/sendMail`` (and ``/v1.0/me/sendMail``) with a base64 MIME body and
  ``Content-Type: text/plain``: checks the bearer token; app-only tokens need the ``Mail.Send``
  role and, when an application access policy is set, a mailbox inside it (else
  ``403 ErrorAccessDenied``); delegated tokens need ``Mail.Send`` for the user's own mailbox and
  ``Mail.Send.Shared`` plus a Send As grant for another one (else ``403 ErrorSendAsDenied``);
  unknown mailbox ``404 ErrorInvalidUser``; bad base64 ``400
  ErrorMimeContentInvalidBase64String``; request bodies over ``max_request_bytes`` (4 MB)
  ``413``. The MIME is parsed with the standard library and kept per recipient (To, Cc, Bcc).
  Answer: ``202`` with an empty body.
* ``GET /v1.0/users/{id}``: ``User.Read.All``/``Directory.Read.All`` (app) or
  ``User.ReadBasic.All``/``User.Read.All`` (delegated), else ``403 Authorization_RequestDenied``.
* Exchange Online limits per mailbox, when enabled: more than ``concurrency`` (4) requests in
  flight answer ``429 ApplicationThrottled`` ("MailboxConcurrency"); more than ``per_window``
  accepted messages per ``window_seconds`` (30 per 60 s; scale the window for benchmarks)
  answer 429 with ``Retry-After``.
* A calendar per recipient, built from the iTIP messages they received the way RFC 5546 says:
  per UID, a message with a lower SEQUENCE is out of date and ignored, at equal SEQUENCE an
  older DTSTAMP loses; REQUEST creates or updates the event, CANCEL removes it (remembered, so
  an out-of-date REQUEST cannot bring it back).

What it does not emulate
------------------------
Real token validation by Graph (tokens are opaque lookups here, JWT-shaped), conditional
access, consent, MFA, instance discovery, national clouds, tenant-wide throttling, ``$batch``,
JSON-bodied sendMail, Sent Items, mail routing and Exchange's own calendar processing (the
calendar view is the RFC 5546 rule above, nothing more). Codes prefixed ``Fake`` are this
fake's own. The message-rate 429 stands in for Exchange's sending limit, whose real behaviour
(delayed or rejected submissions) differs.

Test API (no authentication; loopback only)
-------------------------------------------
``GET /_test/messages``, ``GET /_test/inbox/{address}``, ``GET /_test/calendars[?all=1]``,
``GET /_test/stats``, ``GET /_test/requests``, ``GET /_test/tokens`` (every access, refresh and
ID token and device code issued); ``POST /_test/setup`` (apps, mailboxes,
send_as, app_access_policy), ``POST /_test/config`` (latency, limits, max_request_bytes,
token_lifetime, device_interval, device_pending_polls, device_auto_approve),
``POST /_test/faults`` (``{"faults": [...]}``: status, retry_after, code, message (Graph's
``error.message``, the identity platform's ``error_description``), body (a text/html answer
instead, like a gateway's error page), delay, reset, target
sendMail|token|users|discovery|any, mailbox, repeat), ``DELETE /_test/faults``,
``POST /_test/device/approve`` (``user_code``, ``upn`` or ``deny``), ``POST
/_test/tokens/expire`` (access tokens), ``POST /_test/tokens/revoke`` (a user's refresh
tokens), ``POST /_test/reset``.

In a test: ``with FakeGraph(tmp_path) as fake: ...`` (a thread). As a process:
``python -m tests.support.fake_graph --port-file F [--setup JSON]``, see :func:`start_process`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import datetime as dt
import email
import email.policy
import json
import math
import os
import secrets
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
import requests
import trustme
import vobject
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

TENANT = "8d5f2a1c-6b7e-4c3d-9a10-1f2e3d4c5b6a"
GRAPH_RESOURCE = "https://graph.microsoft.com"
DEFAULT_ROLES = ("Mail.Send", "User.Read.All")
MAX_REQUEST_BYTES = 4 * 1024 * 1024


# -- registrations ---------------------------------------------------------------------------
@dataclass
class AppRegistration:
    """An app registration: a confidential client (secret and/or certificates) or a public
    client (device code)."""

    client_id: str
    secret: str | None = None
    certificates: list[str] = field(default_factory=list)  # PEM public certificates
    roles: list[str] = field(default_factory=lambda: list(DEFAULT_ROLES))
    public: bool = False


@dataclass
class Mailbox:
    address: str
    oid: str = field(default_factory=lambda: str(uuid.uuid4()))
    display_name: str = ""


@dataclass
class Fault:
    """One injected answer, consumed by the next matching request."""

    status: int = 503
    retry_after: float | None = None
    code: str | None = None
    message: str | None = None
    delay: float = 0.0  # seconds to wait before answering (past a client timeout: a slow answer)
    reset: bool = False  # close the connection without an answer (TCP reset)
    body: str | None = None  # answer this text (text/html) instead of a JSON error: a gateway
    target: str = "sendMail"  # sendMail | token | users | any
    mailbox: str | None = None
    repeat: int = 1


@dataclass
class Limits:
    concurrency: int = 4
    per_window: int = 30
    window_seconds: float = 60.0
    concurrency_retry_after: float = 1.0


@dataclass
class Received:
    """One accepted sendMail: who sent it, to whom, and the MIME as received."""

    id: int
    mailbox: str
    recipients: list[str]
    raw: bytes
    at: float
    token_kind: str
    actor: str

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def summary(self, with_raw: bool = False) -> dict[str, Any]:
        msg = self.message
        itip = _itip(msg)
        data: dict[str, Any] = {
            "id": self.id,
            "mailbox": self.mailbox,
            "recipients": self.recipients,
            "subject": str(msg.get("Subject", "")),
            "from": str(msg.get("From", "")),
            "message_id": str(msg.get("Message-ID", "")),
            "size": len(self.raw),
            "at": self.at,
            "token_kind": self.token_kind,
            "actor": self.actor,
            "method": itip.get("method"),
            "uid": itip.get("uid"),
            "sequence": itip.get("sequence"),
        }
        if with_raw:
            data["raw_b64"] = base64.b64encode(self.raw).decode("ascii")
        return data


@dataclass
class CalendarEntry:
    uid: str
    sequence: int
    dtstamp: str
    status: str  # confirmed | cancelled
    summary: str
    location: str
    start: str
    end: str
    organizer: str
    attendees: list[str]
    message_id: int


@dataclass
class _Token:
    kind: str  # app | delegated
    client_id: str
    expires_at: float
    roles: list[str] = field(default_factory=list)
    scopes: list[str] = field(default_factory=list)
    upn: str | None = None
    valid: bool = True


@dataclass
class _DeviceCode:
    device_code: str
    user_code: str
    client_id: str
    scopes: list[str]
    expires_at: float
    upn: str | None = None
    denied: bool = False
    polls: int = 0


@dataclass
class _RefreshToken:
    upn: str
    client_id: str
    scopes: list[str]
    valid: bool = True


# -- certificates for app registrations -----------------------------------------------------
@dataclass(frozen=True)
class AppCertificate:
    """An RSA key and self-signed certificate for certificate credentials, in every form the
    connector accepts: PFX with passphrase, encrypted PEM key + PEM certificate."""

    pfx_path: Path
    key_path: Path
    cert_path: Path
    passphrase: str
    cert_pem: str

    @classmethod
    def create(cls, folder: Path, passphrase: str, name: str = "connector-app") -> AppCertificate:
        folder.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        secret = passphrase.encode("utf-8")
        pfx = pkcs12.serialize_key_and_certificates(
            name.encode(), key, cert, None, serialization.BestAvailableEncryption(secret)
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(secret),
        )
        paths = (folder / f"{name}.pfx", folder / f"{name}.key.pem", folder / f"{name}.crt.pem")
        paths[0].write_bytes(pfx)
        paths[1].write_bytes(key_pem)
        paths[2].write_text(cert_pem, encoding="ascii")
        return cls(paths[0], paths[1], paths[2], passphrase, cert_pem)


def _thumbprints(cert_pem: str) -> tuple[str, str, Any]:
    cert = x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
    s256 = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA256())).decode().rstrip("=")
    s1 = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA1())).decode().rstrip("=")
    return s256, s1, cert.public_key()


# -- iTIP reading ---------------------------------------------------------------------------
def _calendar_text(msg: EmailMessage) -> str | None:
    fallback = None
    for part in msg.walk():
        if part.get_content_type() in ("text/calendar", "application/ics"):
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                continue
            text = payload.decode(part.get_content_charset() or "utf-8", "replace")
            if part.get_content_type() == "text/calendar" and not part.is_attachment():
                return text
            fallback = fallback or text
    return fallback


def _itip(msg: EmailMessage) -> dict[str, Any]:
    text = _calendar_text(msg)
    if text is None:
        return {}
    try:
        cal = vobject.readOne(text)
        event = cal.vevent
    except Exception:
        return {"error": "unparsable calendar"}

    def value(name: str, default: Any = "") -> Any:
        prop = event.contents.get(name)
        return prop[0].value if prop else default

    def when(name: str) -> str:
        v = value(name, None)
        return v.isoformat() if hasattr(v, "isoformat") else str(v or "")

    return {
        "method": str(cal.method.value).upper() if "method" in cal.contents else None,
        "uid": str(value("uid")),
        "sequence": int(value("sequence", 0) or 0),
        "dtstamp": value("dtstamp", None),
        "summary": str(value("summary")),
        "location": str(value("location")),
        "start": when("dtstart"),
        "end": when("dtend"),
        "organizer": str(value("organizer")).lower().removeprefix("mailto:"),
        "attendees": [
            str(a.value).lower().removeprefix("mailto:") for a in event.contents.get("attendee", [])
        ],
    }


# -- the state -------------------------------------------------------------------------------
class FakeState:
    """Everything the fake knows; every method is thread-safe."""

    def __init__(self, origin: str = "", tenant: str = TENANT) -> None:
        self.origin = origin
        self.tenant = tenant
        self.lock = threading.RLock()
        self.stop = threading.Event()
        self.apps: dict[str, AppRegistration] = {}
        self.mailboxes: dict[str, Mailbox] = {}
        self.send_as: dict[str, set[str]] = {}
        self.app_access_policy: set[str] | None = None
        self.limits: Limits | None = None
        self.latency = 0.0
        self.max_request_bytes = MAX_REQUEST_BYTES
        self.token_lifetime = 3600
        self.device_interval = 1
        self.device_pending_polls = 1
        self.device_auto_approve: str | None = None
        self.faults: deque[Fault] = deque()
        self._signing_key = secrets.token_bytes(32)
        self.tokens: dict[str, _Token] = {}
        self.refresh_tokens: dict[str, _RefreshToken] = {}
        self.device_codes: dict[str, _DeviceCode] = {}
        self.id_tokens: list[str] = []
        self.spent_device_codes: list[str] = []
        self.received: list[Received] = []
        self.calendars: dict[str, dict[str, CalendarEntry]] = {}
        self.ignored: list[dict[str, Any]] = []
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        self.accepted_at: dict[str, deque[float]] = {}
        self.log: deque[dict[str, Any]] = deque(maxlen=20_000)
        self.counters: dict[str, int] = {}

    # -- setup --------------------------------------------------------------------------
    def setup(self, data: Mapping[str, Any]) -> None:
        with self.lock:
            for app in data.get("apps", []):
                reg = AppRegistration(**app)
                self.apps[reg.client_id] = reg
            for item in data.get("mailboxes", []):
                box = Mailbox(item) if isinstance(item, str) else Mailbox(**item)
                box.address = box.address.lower()
                self.mailboxes[box.address] = box
            for upn, targets in data.get("send_as", {}).items():
                self.send_as.setdefault(upn.lower(), set()).update(t.lower() for t in targets)
            if "app_access_policy" in data:
                policy = data["app_access_policy"]
                self.app_access_policy = None if policy is None else {p.lower() for p in policy}

    def configure(self, data: Mapping[str, Any]) -> None:
        with self.lock:
            if "limits" in data:
                limits = data["limits"]
                self.limits = None if limits is None else Limits(**limits)
            for key in (
                "latency",
                "max_request_bytes",
                "token_lifetime",
                "device_interval",
                "device_pending_polls",
                "device_auto_approve",
            ):
                if key in data:
                    setattr(self, key, data[key])

    def add_faults(self, faults: list[Mapping[str, Any]]) -> None:
        with self.lock:
            for item in faults:
                fault = Fault(**item)
                for _ in range(max(1, fault.repeat)):
                    self.faults.append(fault)

    def take_fault(self, target: str, mailbox: str | None, exact: bool = False) -> Fault | None:
        with self.lock:
            for fault in list(self.faults):
                if fault.target not in ((target,) if exact else (target, "any")):
                    continue
                if fault.mailbox and (mailbox or "").lower() != fault.mailbox.lower():
                    continue
                self.faults.remove(fault)
                return fault
        return None

    def count(self, key: str) -> None:
        with self.lock:
            self.counters[key] = self.counters.get(key, 0) + 1

    def record(self, route: str, status: int, **extra: Any) -> None:
        with self.lock:
            self.log.append({"t": time.time(), "route": route, "status": status, **extra})
            self.count(f"{route}_requests")
            if status == 429:
                self.count("throttled")

    # -- tokens -------------------------------------------------------------------------
    def issue(self, token: _Token) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": GRAPH_RESOURCE,
            "iss": f"https://sts.windows.net/{self.tenant}/",
            "iat": now,
            "nbf": now,
            "exp": int(token.expires_at),
            "tid": self.tenant,
            "appid": token.client_id,
            "jti": secrets.token_urlsafe(12),
        }
        if token.kind == "app":
            claims.update(roles=token.roles, idtyp="app")
        else:
            claims.update(scp=" ".join(token.scopes), upn=token.upn)
        value = self.sign(claims)
        with self.lock:
            self.tokens[value] = token
        return value

    def sign(self, claims: Mapping[str, Any]) -> str:
        return jwt.encode(dict(claims), self._signing_key, algorithm="HS256")

    def bearer(self, header: str | None) -> _Token | None:
        if not header or not header.lower().startswith("bearer "):
            return None
        with self.lock:
            token = self.tokens.get(header[7:].strip())
        if token is None or not token.valid or token.expires_at < time.time():
            return None
        return token

    def expire_tokens(self) -> int:
        with self.lock:
            for token in self.tokens.values():
                token.valid = False
            return len(self.tokens)

    def revoke_refresh(self, upn: str) -> None:
        with self.lock:
            for rt in self.refresh_tokens.values():
                if rt.upn == upn.lower():
                    rt.valid = False

    def approve(self, user_code: str, upn: str | None, deny: bool = False) -> bool:
        with self.lock:
            for code in self.device_codes.values():
                if code.user_code == user_code:
                    code.upn = upn.lower() if upn else None
                    code.denied = deny
                    return True
        return False

    def issued(self) -> list[str]:
        """Every credential this fake handed out: access, refresh and ID tokens, device codes
        (what must never show up in a client's logs or output)."""
        with self.lock:
            return [
                *self.tokens,
                *self.refresh_tokens,
                *self.id_tokens,
                *self.device_codes,
                *self.spent_device_codes,
            ]

    # -- mail ---------------------------------------------------------------------------
    def enter(self, mailbox: str) -> int:
        with self.lock:
            now = self.in_flight.get(mailbox, 0) + 1
            self.in_flight[mailbox] = now
            self.max_in_flight[mailbox] = max(self.max_in_flight.get(mailbox, 0), now)
            return now

    def leave(self, mailbox: str) -> None:
        with self.lock:
            self.in_flight[mailbox] -= 1

    def _rate_wait(self, mailbox: str) -> float | None:
        """Seconds until the mailbox may send again, or None when within the rate limit."""
        limits = self.limits
        if limits is None:
            return None
        window = self.accepted_at.setdefault(mailbox, deque())
        now = time.monotonic()
        while window and window[0] <= now - limits.window_seconds:
            window.popleft()
        if len(window) < limits.per_window:
            return None
        return max(0.0, window[0] + limits.window_seconds - now)

    def accept(
        self, mailbox: str, recipients: list[str], raw: bytes, token: _Token
    ) -> Received | float:
        """Keep the message (and apply it to calendars), or the seconds to wait (rate limit)."""
        with self.lock:
            wait = self._rate_wait(mailbox)
            if wait is not None:
                return wait
            item = Received(
                len(self.received) + 1,
                mailbox,
                recipients,
                raw,
                time.time(),
                token.kind,
                token.upn or token.client_id,
            )
            self.received.append(item)
            self.accepted_at.setdefault(mailbox, deque()).append(time.monotonic())
            self.count("accepted")
            itip = _itip(item.message)
            if itip.get("uid"):
                for rcpt in recipients:
                    self._apply(rcpt, itip, item.id)
            return item

    def _apply(self, recipient: str, itip: dict[str, Any], message_id: int) -> None:
        """RFC 5546 3.2 and 2.1.5: SEQUENCE first, then DTSTAMP, decide whether a message
        is out of date; REQUEST creates or updates, CANCEL removes."""
        calendar = self.calendars.setdefault(recipient, {})
        uid, seq, stamp = itip["uid"], itip["sequence"], itip["dtstamp"]
        old = calendar.get(uid)
        if old is not None:
            old_stamp = dt.datetime.fromisoformat(old.dtstamp) if old.dtstamp else None
            out_of_date = seq < old.sequence or (
                seq == old.sequence
                and stamp is not None
                and old_stamp is not None
                and stamp < old_stamp
            )
            if out_of_date:
                self.ignored.append(
                    {
                        "recipient": recipient,
                        "uid": uid,
                        "sequence": seq,
                        "message": message_id,
                        "kept_sequence": old.sequence,
                    }
                )
                return
        status = "cancelled" if itip["method"] == "CANCEL" else "confirmed"
        calendar[uid] = CalendarEntry(
            uid=uid,
            sequence=seq,
            dtstamp=stamp.isoformat() if stamp is not None else "",
            status=status,
            summary=itip["summary"],
            location=itip["location"],
            start=itip["start"],
            end=itip["end"],
            organizer=itip["organizer"],
            attendees=itip["attendees"],
            message_id=message_id,
        )

    # -- views --------------------------------------------------------------------------
    def inbox(self, address: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if address.lower() in r.recipients]

    def calendar_view(self, include_cancelled: bool = False) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {
                rcpt: {
                    uid: asdict(entry)
                    for uid, entry in events.items()
                    if include_cancelled or entry.status != "cancelled"
                }
                for rcpt, events in self.calendars.items()
            }

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "counters": dict(self.counters),
                "max_in_flight": dict(self.max_in_flight),
                "in_flight": dict(self.in_flight),
                "messages": len(self.received),
                "faults_left": len(self.faults),
                "tokens_issued": len(self.tokens),
            }

    def reset(self) -> None:
        with self.lock:
            self.received.clear()
            self.calendars.clear()
            self.ignored.clear()
            self.faults.clear()
            self.counters.clear()
            self.max_in_flight.clear()
            self.accepted_at.clear()
            self.log.clear()


# -- HTTP ------------------------------------------------------------------------------------
#: Graph's error texts, by code (codes starting with Fake are this fake's own)
GRAPH_TEXTS = {
    "InvalidAuthenticationToken": "Access token has expired or is not yet valid.",
    "ApplicationThrottled": "Application is over its MailboxConcurrency limit.",
    "RateLimited": "The mailbox is over its message rate limit.",
    "RequestEntityTooLarge": "The request body is over the size limit.",
    "ErrorInvalidUser": "The requested user '{mailbox}' is invalid.",
    "ErrorAccessDenied": "Access is denied. Check credentials and try again.",
    "ErrorSendAsDenied": "The user account which was used to submit this request does not have "
    "the right to send mail on behalf of the specified sending account.",
    "ErrorMimeContentInvalidBase64String": "Invalid base64 string for MIME content.",
    "ErrorInvalidRecipients": "At least one recipient is not valid.",
    "Authorization_RequestDenied": "Insufficient privileges to complete the operation.",
    "Request_ResourceNotFound": "Resource '{mailbox}' does not exist or one of its queried "
    "reference-property objects are not present.",
    "FakeFromMismatch": "The From address is not the mailbox {mailbox} of the request.",
    "FakeUnsupportedBody": "This fake accepts MIME (Content-Type: text/plain) only.",
    "FakeNotFound": "No such route in the fake.",
}

#: the identity platform's errors: (error, AADSTS number, text)
IDP_ERRORS = {
    "unknown_tenant": ("invalid_tenant", 90002, "Tenant '{tenant}' not found."),
    "unknown_client": (
        "unauthorized_client",
        700016,
        "Application with identifier '{client_id}' was not found in the directory.",
    ),
    "bad_secret": ("invalid_client", 7000215, "Invalid client secret provided."),
    "no_credential": (
        "invalid_client",
        7000218,
        "The request body must contain 'client_assertion' or 'client_secret'.",
    ),
    "bad_jwt": ("invalid_client", 50027, "Invalid JWT token."),
    "unknown_key": (
        "invalid_client",
        700027,
        "Client assertion contains an invalid signature. [Reason - The key was not found.]",
    ),
    "bad_signature": ("invalid_client", 700027, "Client assertion failed signature validation."),
    "bad_issuer": (
        "invalid_client",
        700021,
        "Client assertion application identifier doesn't match 'client_id' parameter.",
    ),
    "bad_scope": (
        "invalid_scope",
        1002012,
        "The provided value for scope {scope} is not valid. "
        "Client credential flows must have a scope value with /.default suffixed.",
    ),
    "not_public": (
        "invalid_client",
        7000218,
        "Public client flows are not allowed for this application.",
    ),
    "pending": (
        "authorization_pending",
        70016,
        "OAuth 2.0 device flow error. Authorization is pending.",
    ),
    "declined": ("authorization_declined", 70019, "The user declined the sign-in."),
    "expired_code": ("expired_token", 70020, "The device code is not valid or expired."),
    "bad_refresh": ("invalid_grant", 700082, "The refresh token has expired or was revoked."),
    "bad_grant": ("unsupported_grant_type", 70003, "The grant type is not supported."),
    "injected": ("temporarily_unavailable", 50001, "Injected fault."),
}


def _graph_error(code: str, **params: Any) -> dict[str, Any]:
    text = GRAPH_TEXTS.get(code, "Injected fault.").format(**params)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    inner = {"request-id": str(uuid.uuid4()), "date": stamp}
    return {"error": {"code": code, "message": text, "innerError": inner}}


def _idp_error(kind: str, **params: Any) -> tuple[int, dict[str, Any]]:
    error, number, text = IDP_ERRORS[kind]
    stamp = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%SZ}"
    trace = str(uuid.uuid4())
    description = f"AADSTS{number}: {text.format(**params)}\r\nTrace ID: {trace}\r\n"
    description += f"Timestamp: {stamp}"
    status = 401 if error == "invalid_client" else 400
    return status, {
        "error": error,
        "error_description": description,
        "error_codes": [number],
        "timestamp": stamp,
        "trace_id": trace,
    }


class _Reset(Exception):
    """Abort the request with a TCP reset."""


class _Refused(Exception):
    """A Graph error answer."""

    def __init__(self, status: int, code: str, retry_after: float | None = None, **params: Any):
        super().__init__(code)
        self.status, self.code = status, code
        self.payload = _graph_error(code, **params)
        self.headers = {} if retry_after is None else {"Retry-After": _secs(retry_after)}


#: status, JSON body (or None), headers
Answer = tuple[int, Any, dict[str, str]]


def _form(body: bytes) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(body.decode()).items()}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeGraph/1"
    timeout = 30
    state: FakeState  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:
        return None

    # -- plumbing -----------------------------------------------------------------------
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self, status: int, payload: Any = None, headers: Mapping[str, str] | None = None
    ) -> None:
        if isinstance(payload, bytes | str):
            body = payload.encode() if isinstance(payload, str) else payload
            ctype: str | None = "text/plain; charset=utf-8"
        elif payload is None:
            body, ctype = b"", None
        else:
            body, ctype = json.dumps(payload).encode(), "application/json"
        self.send_response(status)
        if ctype and "Content-Type" not in (headers or {}):
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("request-id", str(uuid.uuid4()))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _origin(self) -> str:
        """The origin the client used (a TCP proxy in front of the fake has its own port), so
        that the endpoints in the OpenID configuration lead back the way the client came."""
        host = self.headers.get("Host") or ""
        return f"https://{host}" if host else self.state.origin

    def _idp(self, route: str, kind: str, **params: Any) -> None:
        status, payload = _idp_error(kind, **params)
        self.state.record(route, status, error=payload["error"])
        self._send(status, payload)

    def _reset(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.connection.close()
        self.close_connection = True
        raise _Reset()

    def _fault(self, target: str, mailbox: str | None) -> Answer | None:
        """The answer of an injected fault for this request, if one is queued (after its
        delay; a reset fault resets the connection and never answers). Faults for the OpenID
        discovery document must name the target ``discovery`` ("any" leaves it alone)."""
        fault = self.state.take_fault(target, mailbox, exact=target == "discovery")
        if fault is None:
            return None
        self.state.count("faults_applied")
        if fault.delay:
            self.state.stop.wait(fault.delay)
        if fault.reset:
            self.state.record(target, 0, mailbox=mailbox, fault="reset")
            self._reset()
        headers = {}
        if fault.retry_after is not None:
            value = float(fault.retry_after)
            headers["Retry-After"] = str(int(value)) if value.is_integer() else str(value)
        payload: Any
        if fault.body is not None:
            headers["Content-Type"] = "text/html; charset=utf-8"
            payload = fault.body
        elif target == "token":
            _, payload = _idp_error("injected")
            if fault.code:
                payload["error"] = fault.code
            if fault.message:
                payload["error_description"] = fault.message
        else:
            code = fault.code or HTTPStatus(fault.status).phrase.replace(" ", "")
            payload = _graph_error(code)
            if fault.message:
                payload["error"]["message"] = fault.message
        self.state.record(target, fault.status, mailbox=mailbox, fault=True)
        return fault.status, payload, headers

    def _dispatch(self, method: str) -> None:
        try:
            self._route(method, urlsplit(self.path))
        except _Reset:
            return
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _route(self, method: str, url: Any) -> None:
        parts = [unquote(p) for p in url.path.split("/") if p]
        if parts[:1] == ["_test"]:
            self._test_api(method, parts[1:], parse_qs(url.query))
        elif parts[:1] == ["v1.0"]:
            self._graph(method, parts[1:])
        elif parts == ["devicelogin"]:
            self._send(200, "Fake device login: approve codes with POST /_test/device/approve")
        elif len(parts) >= 2:
            self._identity(method, parts[0], parts[1:])
        else:
            self._send(404, _graph_error("FakeNotFound"))

    # -- identity platform --------------------------------------------------------------
    def _identity(self, method: str, tenant: str, rest: list[str]) -> None:
        state = self.state
        body = self._body()
        if tenant != state.tenant:
            self._idp("discovery", "unknown_tenant", tenant=tenant)
            return
        base = f"{self._origin()}/{tenant}"
        if method == "GET" and rest == ["v2.0", ".well-known", "openid-configuration"]:
            injected = self._fault("discovery", None)
            if injected is not None:
                state.record("discovery", injected[0])
                self._send(*injected)
                return
            state.record("discovery", 200)
            self._send(
                200,
                {
                    "issuer": f"{base}/v2.0",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                    "jwks_uri": f"{base}/discovery/v2.0/keys",
                    "response_types_supported": ["code", "id_token", "code id_token"],
                    "subject_types_supported": ["pairwise"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "token_endpoint_auth_methods_supported": [
                        "client_secret_post",
                        "private_key_jwt",
                    ],
                    "scopes_supported": ["openid", "profile", "email", "offline_access"],
                },
            )
        elif method == "POST" and rest == ["oauth2", "v2.0", "token"]:
            injected = self._fault("token", None)
            if injected is not None:
                self._send(*injected)
            else:
                self._token(_form(body), f"{base}/oauth2/v2.0/token")
        elif method == "POST" and rest == ["oauth2", "v2.0", "devicecode"]:
            self._device_code(_form(body))
        else:
            self._send(404, _graph_error("FakeNotFound"))

    def _client_problem(self, form: Mapping[str, str], token_url: str) -> str | None:
        """None when the confidential client authenticated, else the IDP_ERRORS kind."""
        app = self.state.apps.get(form.get("client_id", ""))
        if app is None:
            return "unknown_client"
        if "client_secret" in form:
            ok = app.secret is not None and secrets.compare_digest(
                form["client_secret"], app.secret
            )
            return None if ok else "bad_secret"
        assertion = form.get("client_assertion")
        if not assertion or not form.get("client_assertion_type", "").endswith("jwt-bearer"):
            return "no_credential"
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return "bad_jwt"
        wanted_s256 = str(header.get("x5t#S256") or "").rstrip("=")  # padded or not
        wanted_s1 = str(header.get("x5t") or "").rstrip("=")
        for pem in app.certificates:
            s256, s1, public_key = _thumbprints(pem)
            if (wanted_s256 and wanted_s256 == s256) or (not wanted_s256 and wanted_s1 == s1):
                break
        else:
            return "unknown_key"
        try:
            claims = jwt.decode(
                assertion,
                public_key,
                algorithms=["PS256", "RS256"],
                audience=token_url,
                options={"require": ["exp", "iss", "sub", "aud"]},
            )
        except jwt.PyJWTError:
            return "bad_signature"
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            return "bad_issuer"
        self.state.count("client_assertions_verified")
        return None

    def _token(self, form: Mapping[str, str], token_url: str) -> None:
        state = self.state
        grant = form.get("grant_type", "")
        lifetime = int(state.token_lifetime)
        if grant == "client_credentials":
            problem = self._client_problem(form, token_url)
            scope = form.get("scope", "")
            if problem is None and not scope.endswith("/.default"):
                problem = "bad_scope"
            if problem is not None:
                self._idp("token", problem, client_id=form.get("client_id"), scope=scope)
                return
            app = state.apps[form["client_id"]]
            token = state.issue(_Token("app", app.client_id, time.time() + lifetime, app.roles))
            state.record("token", 200, grant=grant)
            state.count("tokens_client_credentials")
            self._send(
                200,
                {
                    "token_type": "Bearer",
                    "expires_in": lifetime,
                    "ext_expires_in": lifetime,
                    "access_token": token,
                },
            )
        elif grant in ("urn:ietf:params:oauth:grant-type:device_code", "device_code"):
            self._device_token(form, lifetime)
        elif grant == "refresh_token":
            rt = state.refresh_tokens.get(form.get("refresh_token", ""))
            if rt is None or not rt.valid or rt.client_id != form.get("client_id"):
                self._idp("token", "bad_refresh")
                return
            state.record("token", 200, grant=grant)
            state.count("tokens_refresh")
            self._send(200, self._user_tokens(rt.upn, rt.client_id, rt.scopes, lifetime))
        else:
            self._idp("token", "bad_grant")

    def _device_code(self, form: Mapping[str, str]) -> None:
        state = self.state
        app = state.apps.get(form.get("client_id", ""))
        if app is None or not app.public:
            self._idp("devicecode", "not_public")
            return
        user_code = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(9))
        code = _DeviceCode(
            device_code=secrets.token_urlsafe(32),
            user_code=user_code,
            client_id=app.client_id,
            scopes=form.get("scope", "").split(),
            expires_at=time.time() + 900,
        )
        with state.lock:
            state.device_codes[code.device_code] = code
        state.record("devicecode", 200)
        url = f"{self._origin()}/devicelogin"
        self._send(
            200,
            {
                "user_code": user_code,
                "device_code": code.device_code,
                "verification_uri": url,
                "expires_in": 900,
                "interval": state.device_interval,
                "message": f"To sign in, use a web browser to open the page {url} and enter the "
                f"code {user_code} to authenticate.",
            },
        )

    def _device_token(self, form: Mapping[str, str], lifetime: int) -> None:
        state = self.state
        with state.lock:
            code = state.device_codes.get(form.get("device_code", ""))
            if code is not None and code.upn is None and not code.denied:
                code.polls += 1
                if state.device_auto_approve and code.polls > state.device_pending_polls:
                    code.upn = state.device_auto_approve.lower()
        if code is None or code.expires_at < time.time():
            self._idp("token", "expired_code")
        elif code.denied:
            self._idp("token", "declined")
        elif code.upn is None:
            self._idp("token", "pending")
        else:
            with state.lock:
                state.device_codes.pop(code.device_code, None)
                state.spent_device_codes.append(code.device_code)
            state.record("token", 200, grant="device_code")
            state.count("tokens_device_code")
            self._send(200, self._user_tokens(code.upn, code.client_id, code.scopes, lifetime))

    def _user_tokens(
        self, upn: str, client_id: str, scopes: list[str], lifetime: int
    ) -> dict[str, Any]:
        state = self.state
        box = state.mailboxes.get(upn) or Mailbox(upn)
        granted = [s for s in scopes if s not in ("offline_access", "openid", "profile")]
        expires = time.time() + lifetime
        token = state.issue(_Token("delegated", client_id, expires, scopes=granted, upn=upn))
        refresh = secrets.token_urlsafe(48)
        with state.lock:
            state.refresh_tokens[refresh] = _RefreshToken(upn, client_id, scopes)
        now = int(time.time())
        id_claims = {
            "aud": client_id,
            "iss": f"{state.origin}/{state.tenant}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "name": box.display_name or upn,
            "oid": box.oid,
            "preferred_username": upn,
            "sub": box.oid,
            "tid": state.tenant,
            "ver": "2.0",
        }
        info = json.dumps({"uid": box.oid, "utid": state.tenant}).encode()
        id_token = state.sign(id_claims)
        with state.lock:
            state.id_tokens.append(id_token)
        return {
            "token_type": "Bearer",
            "scope": " ".join([*granted, "openid", "profile"]),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
            "refresh_token": refresh,
            "id_token": id_token,
            "client_info": base64.urlsafe_b64encode(info).decode().rstrip("="),
        }

    # -- Graph --------------------------------------------------------------------------
    def _graph(self, method: str, parts: list[str]) -> None:
        body = self._body()
        token = self.state.bearer(self.headers.get("Authorization"))
        if parts[:1] == ["me"] and token is not None and token.upn:
            parts = ["users", token.upn, *parts[1:]]
        if method == "POST" and len(parts) == 3 and parts[0] == "users" and parts[2] == "sendMail":
            self._send_mail(parts[1].lower(), body, token)
        elif method == "GET" and len(parts) == 2 and parts[0] == "users":
            self._get_user(parts[1].lower(), token)
        else:
            self._send(404, _graph_error("FakeNotFound"))

    def _get_user(self, user: str, token: _Token | None) -> None:
        injected = self._fault("users", user)
        if injected is not None:
            self._send(*injected)
            return
        try:
            if token is None:
                raise _Refused(401, "InvalidAuthenticationToken")
            allowed = (
                {"User.Read.All", "Directory.Read.All", "User.ReadWrite.All"} & set(token.roles)
                if token.kind == "app"
                else {"User.ReadBasic.All", "User.Read.All"} & set(token.scopes)
            )
            if not allowed:
                raise _Refused(403, "Authorization_RequestDenied")
            box = self.state.mailboxes.get(user)
            if box is None:
                raise _Refused(404, "Request_ResourceNotFound", mailbox=user)
        except _Refused as refused:
            self.state.record("users", refused.status, mailbox=user, code=refused.code)
            self._send(refused.status, refused.payload, refused.headers)
            return
        self.state.record("users", 200, mailbox=user)
        self._send(
            200,
            {
                "id": box.oid,
                "userPrincipalName": box.address,
                "mail": box.address,
                "displayName": box.display_name,
            },
        )

    def _send_mail(self, mailbox: str, body: bytes, token: _Token | None) -> None:
        state = self.state
        answer: Answer
        state.enter(mailbox)
        try:  # in flight from here until the answer is ready (it leaves before it is sent)
            if state.latency:
                state.stop.wait(state.latency)
            injected = self._fault("sendMail", mailbox)
            if injected is not None:
                answer = injected
            else:
                try:
                    self._accept(mailbox, body, token)
                    client_id = self.headers.get("client-request-id", "")
                    answer = 202, None, {"client-request-id": client_id}
                except _Refused as refused:
                    answer = refused.status, refused.payload, refused.headers
                state.record(
                    "sendMail",
                    answer[0],
                    mailbox=mailbox,
                    code=(answer[1] or {}).get("error", {}).get("code"),
                )
        finally:
            state.leave(mailbox)
        self._send(*answer)

    def _accept(self, mailbox: str, body: bytes, token: _Token | None) -> None:
        """Check a sendMail like Graph would and keep the message; raise _Refused if not."""
        state = self.state
        if token is None:
            raise _Refused(401, "InvalidAuthenticationToken")
        limits = state.limits
        if limits is not None and state.in_flight.get(mailbox, 0) > limits.concurrency:
            raise _Refused(429, "ApplicationThrottled", limits.concurrency_retry_after)
        if len(body) > state.max_request_bytes:
            raise _Refused(413, "RequestEntityTooLarge")
        if mailbox not in state.mailboxes:
            raise _Refused(404, "ErrorInvalidUser", mailbox=mailbox)
        if token.kind == "app":
            policy = state.app_access_policy
            if "Mail.Send" not in token.roles or (policy is not None and mailbox not in policy):
                raise _Refused(403, "ErrorAccessDenied")
        else:
            own = token.upn == mailbox
            needed = "Mail.Send" if own else "Mail.Send.Shared"
            granted = own or mailbox in state.send_as.get(token.upn or "", set())
            if needed not in token.scopes or not granted:
                raise _Refused(403, "ErrorSendAsDenied")
        if not (self.headers.get("Content-Type") or "").startswith("text/plain"):
            raise _Refused(400, "FakeUnsupportedBody")
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise _Refused(400, "ErrorMimeContentInvalidBase64String") from None
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        senders = [a.addr_spec.lower() for a in getattr(msg.get("From"), "addresses", ())]
        if senders != [mailbox]:
            raise _Refused(400, "FakeFromMismatch", mailbox=mailbox)
        recipients: list[str] = []
        for header in ("To", "Cc", "Bcc"):
            for address in getattr(msg.get(header), "addresses", ()):
                spec = address.addr_spec.lower()
                if spec and spec not in recipients:
                    recipients.append(spec)
        if not recipients:
            raise _Refused(400, "ErrorInvalidRecipients")
        kept = state.accept(mailbox, recipients, raw, token)
        if not isinstance(kept, Received):
            raise _Refused(429, "RateLimited", kept)

    # -- test API -----------------------------------------------------------------------
    def _test_api(self, method: str, parts: list[str], query: Mapping[str, list[str]]) -> None:
        state = self.state
        body = self._body()
        data: Any = json.loads(body) if body.strip() else {}
        flag = {name: values[0] == "1" for name, values in query.items()}
        route = (method, "/".join(parts[:1]), "/".join(parts[1:]))
        answer: Any
        if route[:2] == ("GET", "messages"):
            with state.lock:
                answer = [r.summary(flag.get("raw", False)) for r in state.received]
        elif route[:2] == ("GET", "inbox"):
            answer = [r.summary(flag.get("raw", False)) for r in state.inbox(route[2])]
        elif route[:2] == ("GET", "calendars"):
            answer = state.calendar_view(flag.get("all", False))
        elif route[:2] == ("GET", "stats"):
            answer = state.stats()
        elif route[:2] == ("GET", "tokens"):
            answer = state.issued()
        elif route[:2] == ("GET", "requests"):
            with state.lock:
                answer = list(state.log)
        elif route[:2] == ("POST", "setup"):
            state.setup(data)
            answer = {"ok": True}
        elif route[:2] == ("POST", "config"):
            state.configure(data)
            answer = {"ok": True}
        elif route[:2] == ("POST", "faults"):
            state.add_faults(data.get("faults", []))
            answer = {"queued": len(state.faults)}
        elif route[:2] == ("DELETE", "faults"):
            with state.lock:
                state.faults.clear()
            answer = {"queued": 0}
        elif route == ("POST", "device", "approve"):
            done = state.approve(data["user_code"], data.get("upn"), bool(data.get("deny")))
            self._send(200 if done else 404, {"ok": done})
            return
        elif route == ("POST", "tokens", "expire"):
            answer = {"expired": state.expire_tokens()}
        elif route == ("POST", "tokens", "revoke"):
            state.revoke_refresh(data["upn"])
            answer = {"ok": True}
        elif route[:2] == ("POST", "reset"):
            state.reset()
            answer = {"ok": True}
        else:
            self._send(404, {"error": f"no test route {method} {'/'.join(parts)}"})
            return
        self._send(200, answer)


def _secs(value: float) -> str:
    return str(max(1, math.ceil(value)))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # a client that went away mid-answer is not the fake's problem


# -- running it ------------------------------------------------------------------------------
class FakeGraph:
    """The fake, served from a thread of this process. Use as a context manager."""

    def __init__(self, folder: Path, *, tenant: str = TENANT, port: int = 0) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ca = trustme.CA()
        self.ca_bundle = self.folder / "fake-graph-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_bundle))
        self.state = FakeState(tenant=tenant)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.server = _Server(("127.0.0.1", port), handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self.server.socket = context.wrap_socket(
            self.server.socket, server_side=True, do_handshake_on_connect=False
        )
        self.port = int(self.server.server_address[1])
        self.state.origin = f"https://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    # addresses for a connector config
    @property
    def origin(self) -> str:
        return self.state.origin

    @property
    def authority_host(self) -> str:
        return self.origin

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1.0"

    @property
    def tenant(self) -> str:
        return self.state.tenant

    def graph_section(self, **overrides: Any) -> dict[str, Any]:
        """A ``graph:`` config section pointing at this fake."""
        section: dict[str, Any] = {
            "tenant_id": self.tenant,
            "authority_host": self.authority_host,
            "base_url": self.base_url,
            "ca_bundle": str(self.ca_bundle),
            "timeout_seconds": 5,
        }
        section.update(overrides)
        return section

    def start(self) -> FakeGraph:
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.state.stop.set()
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeGraph:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # the Python face of the test API
    def setup(self, **data: Any) -> None:
        self.state.setup(data)

    def configure(self, **data: Any) -> None:
        self.state.configure(data)

    def fail(self, *faults: Mapping[str, Any]) -> None:
        self.state.add_faults(list(faults))

    def messages(self) -> list[Received]:
        with self.state.lock:
            return list(self.state.received)

    def inbox(self, address: str) -> list[Received]:
        return self.state.inbox(address)

    def calendars(self, include_cancelled: bool = False) -> dict[str, dict[str, Any]]:
        return self.state.calendar_view(include_cancelled)

    def stats(self) -> dict[str, Any]:
        return self.state.stats()

    def requests(self, route: str | None = None) -> list[dict[str, Any]]:
        with self.state.lock:
            return [r for r in self.state.log if route is None or r["route"] == route]

    def issued_tokens(self) -> list[str]:
        """Access, refresh and ID tokens and device codes issued so far."""
        return self.state.issued()


class FakeGraphClient:
    """The test API over HTTP, for a fake running in another process."""

    def __init__(self, origin: str, ca_bundle: Path) -> None:
        self.origin = origin
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = str(ca_bundle)

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        response = self.session.request(
            method, f"{self.origin}/_test/{path}", json=payload, timeout=10
        )
        response.raise_for_status()
        return response.json()

    def setup(self, **data: Any) -> Any:
        return self._call("POST", "setup", data)

    def configure(self, **data: Any) -> Any:
        return self._call("POST", "config", data)

    def fail(self, *faults: Mapping[str, Any]) -> Any:
        return self._call("POST", "faults", {"faults": list(faults)})

    def messages(self, raw: bool = False) -> list[dict[str, Any]]:
        return list(self._call("GET", "messages?raw=1" if raw else "messages"))

    def calendars(self, include_cancelled: bool = False) -> dict[str, Any]:
        return dict(self._call("GET", "calendars?all=1" if include_cancelled else "calendars"))

    def stats(self) -> dict[str, Any]:
        return dict(self._call("GET", "stats"))

    def issued_tokens(self) -> list[str]:
        """Access, refresh and ID tokens and device codes issued so far."""
        return list(self._call("GET", "tokens"))

    def requests(self, route: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self._call("GET", "requests") if route is None or r["route"] == route]

    def expire_tokens(self) -> Any:
        return self._call("POST", "tokens/expire")

    def clear_faults(self) -> Any:
        return self._call("DELETE", "faults")

    def revoke(self, upn: str) -> Any:
        """Revoke the user's refresh tokens (a sign-in Microsoft no longer accepts)."""
        return self._call("POST", "tokens/revoke", {"upn": upn})

    def approve(self, user_code: str, upn: str) -> Any:
        return self._call("POST", "device/approve", {"user_code": user_code, "upn": upn})

    def close(self) -> None:
        self.session.close()


@dataclass
class FakeGraphProcess:
    process: subprocess.Popen[bytes]
    origin: str
    ca_bundle: Path
    tenant: str
    client: FakeGraphClient

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1.0"

    def graph_section(self, **overrides: Any) -> dict[str, Any]:
        section: dict[str, Any] = {
            "tenant_id": self.tenant,
            "authority_host": self.origin,
            "base_url": self.base_url,
            "ca_bundle": str(self.ca_bundle),
            "timeout_seconds": 5,
        }
        section.update(overrides)
        return section


@contextlib.contextmanager
def start_process(
    folder: Path, setup: Mapping[str, Any] | None = None, startup_seconds: float = 20.0
) -> Iterator[FakeGraphProcess]:
    """Run the fake as a separate process (for tests that run and kill connector processes)."""
    folder.mkdir(parents=True, exist_ok=True)
    port_file = folder / "fake-graph.json"
    port_file.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "tests.support.fake_graph",
        "--port-file",
        str(port_file),
        "--dir",
        str(folder),
    ]
    if setup is not None:
        setup_file = folder / "fake-graph-setup.json"
        setup_file.write_text(json.dumps(setup), encoding="utf-8")
        command += ["--setup", str(setup_file)]
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    process = subprocess.Popen(command, cwd=root, env=env)
    try:
        deadline = time.monotonic() + startup_seconds
        while not port_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"fake Graph did not start (exit {process.poll()})")
            time.sleep(0.05)
        info = json.loads(port_file.read_text(encoding="utf-8"))
        client = FakeGraphClient(info["origin"], Path(info["ca_bundle"]))
        yield FakeGraphProcess(
            process, info["origin"], Path(info["ca_bundle"]), info["tenant"], client
        )
        client.close()
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.fake_graph")
    parser.add_argument(
        "--port-file",
        type=Path,
        required=True,
        help="written (JSON: origin, port, tenant, ca_bundle) once listening",
    )
    parser.add_argument("--dir", type=Path, help="where the CA certificate goes")
    parser.add_argument("--setup", type=Path, help="JSON for POST /_test/setup (and config)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    folder = args.dir or args.port_file.parent
    fake = FakeGraph(folder, port=args.port)
    if args.setup:
        data = json.loads(args.setup.read_text(encoding="utf-8"))
        fake.state.setup(data)
        fake.state.configure(data.get("config", {}))
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    fake.start()
    temp = args.port_file.with_suffix(".tmp")
    temp.write_text(
        json.dumps(
            {
                "origin": fake.origin,
                "port": fake.port,
                "tenant": fake.tenant,
                "ca_bundle": str(fake.ca_bundle),
                "pid": os.getpid(),
            }
        )
    )
    temp.replace(args.port_file)
    while not stopping.wait(0.5):
        pass
    fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
