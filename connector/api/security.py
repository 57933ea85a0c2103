"""Who may call the API: bearer tokens, signed dialog links, and a brake on guessing.

* Bearer tokens (``api.tokens``) are compared in constant time against every configured token
  (SHA-256 digests compared with :func:`secrets.compare_digest`, so neither the position of a
  match nor the length of a token leaks through timing).
* A dialog link carries ``exp`` (Unix seconds) and ``sig``, an HMAC-SHA256 over the activity
  id, the CRM login and ``exp``; it opens only that activity's dialog, for that user, until it
  expires.
* Every presented-but-wrong credential (a bad token, a bad signature) counts as a failure of the
  client address; after ``failed_auth_limit`` failures within ``failed_auth_window_seconds``
  the address gets 429 for everything but ``/healthz`` until the oldest failure leaves the
  window. A request without any credential is answered 401 without counting.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import math
import os
import re
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from connector.config import ApiConfig

log = logging.getLogger("connector.api.security")

#: paths answered without credentials
PUBLIC_PATHS = frozenset({"/healthz"})
#: the dialog page, the only place a signed link is accepted
DIALOG_PATH = re.compile(r"/ui/activities/(?P<activity>[^/]+)/invite")

Verdict = Literal["ok", "expired", "invalid"]


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


class TokenCheck:
    """Constant-time comparison of a presented token with every configured token."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self._digests = [_digest(t) for t in tokens if t]

    def __bool__(self) -> bool:
        return bool(self._digests)

    def valid(self, presented: str | None) -> bool:
        if presented is None:
            return False
        candidate = _digest(presented)
        matched = False
        for expected in self._digests:  # no early exit: every token is compared
            matched |= secrets.compare_digest(candidate, expected)
        return matched


def bearer_token(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, None for any other form."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class FailedAuthLimiter:
    """A sliding window of failed authentications per client address, in memory.

    At most ``max_clients`` addresses are remembered (the least recently failing are forgotten
    first), so a flood of spoofed sources cannot exhaust memory.
    """

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self.limit = limit
        self.window = window_seconds
        self.clock = clock
        self.max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float] | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        return failures

    def blocked_for(self, client: str) -> float:
        """Seconds until ``client`` may try again; 0 when it is not blocked."""
        with self._lock:
            now = self.clock()
            failures = self._recent(client, now)
            if failures is None or len(failures) < self.limit:
                return 0.0
            return max(failures[-self.limit] + self.window - now, 0.001)

    def failed(self, client: str) -> None:
        with self._lock:
            now = self.clock()
            failures = self._recent(client, now) or deque()
            failures.append(now)
            while len(failures) > self.limit:
                failures.popleft()
            self._failures[client] = failures
            self._failures.move_to_end(client)
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)


def link_key(config: ApiConfig) -> bytes:
    """The HMAC key of dialog links: ``api.link_secret``, else derived from the tokens (so every
    instance with the same config accepts the same links), else random for this process."""
    if config.link_secret is not None:
        return _digest(config.link_secret.get_secret_value())
    tokens = sorted(t.get_secret_value() for t in config.tokens)
    if tokens:
        return hmac.new(
            b"bpmsoft-connector dialog link v1", "\n".join(tokens).encode(), hashlib.sha256
        ).digest()
    return os.urandom(32)


@dataclass(frozen=True)
class SignedLink:
    exp: int
    sig: str


class LinkSigner:
    """Issues and checks the short-lived signature of a dialog link."""

    def __init__(self, key: bytes, ttl_seconds: int, clock: Callable[[], datetime]) -> None:
        self._key = key
        self.ttl = ttl_seconds
        self.clock = clock

    def _sign(self, activity_id: UUID, login: str, exp: int) -> str:
        message = f"dialog\n{activity_id}\n{login}\n{exp}".encode("utf-8", "surrogatepass")
        mac = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def issue(self, activity_id: UUID, login: str) -> SignedLink:
        exp = int(self.clock().timestamp()) + self.ttl
        return SignedLink(exp, self._sign(activity_id, login, exp))

    def verify(self, activity: str, login: str | None, exp: str | None, sig: str) -> Verdict:
        # ASCII digits only: str.isdigit() also accepts '²' and the like, which int() refuses
        if login is None or exp is None or not re.fullmatch(r"[0-9]{1,12}", exp):
            return "invalid"
        try:
            activity_id = UUID(activity)
        except ValueError:
            return "invalid"
        expected = self._sign(activity_id, login, int(exp)).encode()
        if not secrets.compare_digest(expected, sig.encode("utf-8", "surrogatepass")):
            return "invalid"
        if int(exp) < self.clock().timestamp():
            return "expired"
        return "ok"


@dataclass(frozen=True)
class Denial:
    """Why the gate refused a request; rendered as JSON or as the dialog's error page."""

    status: int
    code: str
    params: dict[str, Any] = field(default_factory=dict)
    retry_after: int | None = None


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def limit_key(client: str) -> str:
    """Whom the brake on failed attempts counts: the address, or for IPv6 its /64 network
    (one host usually holds a whole /64 and could otherwise rotate addresses without end)."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return client


class Guard:
    """The decision of the gate for one request: None (let it through) or a :class:`Denial`."""

    def __init__(self, tokens: TokenCheck, limiter: FailedAuthLimiter, links: LinkSigner) -> None:
        self.tokens = tokens
        self.limiter = limiter
        self.links = links

    def check(self, request: Request) -> Denial | None:
        path = request.url.path
        if path in PUBLIC_PATHS:
            return None
        client = client_address(request.scope)
        wait = self.limiter.blocked_for(limit_key(client))
        if wait > 0:
            seconds = math.ceil(wait)
            log.warning("event=auth_blocked client=%s retry_after=%d", client, seconds)
            return Denial(429, "rate_limited", {"seconds": seconds}, retry_after=seconds)
        header = request.headers.get("authorization")
        if header is not None:
            if self.tokens.valid(bearer_token(header)):
                request.scope.setdefault("state", {})["auth"] = "token"
                return None
            return self._failed(client, "unauthorized")
        dialog = DIALOG_PATH.fullmatch(path)
        sig = request.query_params.get("sig")
        if dialog is not None and sig is not None:
            verdict = self.links.verify(
                dialog["activity"],
                request.query_params.get("user"),
                request.query_params.get("exp"),
                sig,
            )
            if verdict == "ok":
                request.scope.setdefault("state", {})["auth"] = "link"
                return None
            if verdict == "expired":
                return Denial(401, "link_expired")
            return self._failed(client, "link_invalid")
        return Denial(401, "unauthorized")

    def _failed(self, client: str, code: str) -> Denial:
        self.limiter.failed(limit_key(client))
        log.warning("event=auth_failed client=%s code=%s", client, code)
        return Denial(401, code)


class AuthGate:
    """ASGI middleware: every request passes :class:`Guard` before routing and body parsing."""

    def __init__(
        self, app: ASGIApp, *, guard: Guard, deny: Callable[[Request, Denial], Response]
    ) -> None:
        self.app = app
        self.guard = guard
        self.deny = deny

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        denial = self.guard.check(request)
        if denial is None:
            await self.app(scope, receive, send)
            return
        response = self.deny(request, denial)
        if denial.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        if denial.retry_after is not None:
            response.headers["Retry-After"] = str(denial.retry_after)
        await response(scope, receive, send)
