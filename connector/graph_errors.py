"""The one boundary where Microsoft Graph and identity-platform failures enter the error tree.

==========================================  ===========================================
what happened                               becomes
==========================================  ===========================================
HTTP 429, 5xx, 408                          :class:`TransientDeliveryError` (Retry-After)
timeout, connection error, reset, TLS       :class:`TransientDeliveryError`
identity platform ``temporarily_unavailable``,
``server_error``, HTTP 5xx                  :class:`TransientDeliveryError`
identity platform answer that is not JSON
(a gateway's or proxy's error page)         :class:`TransientDeliveryError`
HTTP 401 (after the one token refresh)      :class:`PermanentDeliveryError`
HTTP 403 ``ErrorSendAsDenied``              :class:`DeliveryRefused` ``no_mailbox_rights``
other 4xx (400, 403, 404, 413, ...)         :class:`PermanentDeliveryError` with Graph's code
identity platform ``invalid_grant`` and
``interaction_required`` (delegated)        :class:`DeliveryRefused` ``not_logged_in``
other identity platform errors
(``invalid_client``, unknown tenant, ...)   :class:`PermanentDeliveryError`
unreadable certificate, bad passphrase      :class:`PermanentDeliveryError`
==========================================  ===========================================

Details are built from Graph's error ``code`` and ``message`` and the identity platform's
``error`` and the first line of its ``error_description``; never from request headers or
bodies, so a token or a client secret cannot end up in a detail. Every detail passes a
scrubber anyway, before it is cut to length (cut first, a secret or token quoted at the cut
would be left half visible and no longer recognisable).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from msal.exceptions import MsalServiceError

from mapping.errors import (
    DeliveryError,
    DeliveryRefused,
    PermanentDeliveryError,
    TransientDeliveryError,
)

Scrub = Callable[[str], str]

#: identity-platform error codes worth retrying later
TRANSIENT_IDP_ERRORS = frozenset({"temporarily_unavailable", "server_error"})
#: identity-platform error codes that mean "this user has to sign in again"
SIGN_IN_AGAIN = frozenset({"invalid_grant", "interaction_required", "consent_required"})


def _plain(text: str) -> str:
    return text


def _short(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _detail(scrub: Scrub, text: str, limit: int = 400) -> str:
    """A detail for the error: scrubbed, then cut to ``limit`` (in this order)."""
    return _short(scrub(text), limit)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: a number of seconds or an HTTP date; None when absent."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def graph_error(response: requests.Response) -> tuple[str | None, str]:
    """Graph's ``error.code`` and ``error.message`` (None and the reason when not JSON), on one
    line but not cut: scrub it before shortening it."""
    try:
        data: Any = json.loads(response.text or "null")
    except ValueError:
        data = None
    if isinstance(data, Mapping) and isinstance(data.get("error"), Mapping):
        error = data["error"]
        code = error.get("code")
        return (str(code) if code else None), " ".join(str(error.get("message") or "").split())
    return None, " ".join((response.reason or "").split())


def from_response(
    response: requests.Response,
    *,
    login: str,
    mailbox: str,
    what: str = "sendMail",
    scrub: Scrub = _plain,
) -> DeliveryError:
    """The error for a Graph answer that is not a success."""
    status = response.status_code
    code, message = graph_error(response)
    coded = f" {code}" if code else ""
    detail = _detail(scrub, f"{what}: HTTP {status}{coded}: {message}")
    if status == 429 or status == 408 or status >= 500:
        return TransientDeliveryError(
            status=status,
            remote_code=code,
            detail=detail,
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
    if status == 403 and code == "ErrorSendAsDenied":
        return DeliveryRefused(
            "no_mailbox_rights",
            hint="no_send_as_right_hint",
            login=login,
            mailbox=mailbox,
            status=status,
            remote_code=code,
            detail=detail,
        )
    return PermanentDeliveryError(status=status, remote_code=code, detail=detail)


def from_exception(error: BaseException, *, what: str, scrub: Scrub = _plain) -> DeliveryError:
    """The error for an exception raised by requests, msal or the certificate loading."""
    if isinstance(error, DeliveryError):
        return error
    kind = type(error).__name__
    if isinstance(error, requests.Timeout):
        return TransientDeliveryError(remote_code="timeout", detail=scrub(f"{what}: timed out"))
    if isinstance(error, requests.exceptions.SSLError):
        return TransientDeliveryError(
            remote_code="tls", detail=scrub(f"{what}: TLS error ({_tls_reason(error)})")
        )
    if isinstance(error, requests.ConnectionError):
        return TransientDeliveryError(
            remote_code="connection", detail=scrub(f"{what}: connection failed ({kind})")
        )
    if isinstance(error, MsalServiceError):  # msal's "HTTP Error: 503" (a 5xx answer)
        return TransientDeliveryError(remote_code=kind, detail=_detail(scrub, f"{what}: {error}"))
    if isinstance(error, requests.RequestException):
        return TransientDeliveryError(remote_code=kind, detail=scrub(f"{what}: {kind}"))
    if isinstance(error, json.JSONDecodeError):
        # msal parses every token answer below 500 as JSON: an HTML page instead (a proxy's or
        # gateway's 429/502 page, a captive portal) is a broken answer, not a refusal
        return TransientDeliveryError(
            remote_code="invalid_response", detail=scrub(f"{what}: the answer is not JSON")
        )
    if isinstance(error, OSError):
        name = getattr(error, "filename", None) or "?"
        return PermanentDeliveryError(
            remote_code="file", detail=scrub(f"{what}: cannot read {name} ({error.strerror})")
        )
    if isinstance(error, ValueError) and "authority configuration" in str(error):
        # msal's words when the OpenID discovery document answers 4xx (a throttling 429, a
        # gateway's page); a wrong tenant looks the same and is reported by `connector check`
        return TransientDeliveryError(
            remote_code="discovery",
            detail=scrub(f"{what}: the OpenID configuration could not be read"),
        )
    if isinstance(error, ValueError):
        return PermanentDeliveryError(
            remote_code="invalid", detail=_detail(scrub, f"{what}: {error}", 250)
        )
    return TransientDeliveryError(remote_code=kind, detail=scrub(f"{what}: unexpected {kind}"))


def _tls_reason(error: BaseException) -> str:
    text = str(error)
    for marker in ("CERTIFICATE_VERIFY_FAILED", "WRONG_VERSION_NUMBER", "hostname mismatch"):
        if marker in text:
            return marker
    return type(error).__name__


def from_token_result(
    result: Mapping[str, Any] | None, *, login: str, what: str = "token", scrub: Scrub = _plain
) -> DeliveryError:
    """The error for an msal result without ``access_token`` (None: no usable sign-in)."""
    if result is None:
        return DeliveryRefused("not_logged_in", login=login, detail="no stored sign-in")
    error = str(result.get("error") or "unknown_error")
    description = str(result.get("error_description") or "").splitlines()
    first = f": {description[0]}" if description else ""
    detail = _detail(scrub, f"{what}: {error}{first}", 300)
    if error in SIGN_IN_AGAIN:
        return DeliveryRefused(
            "not_logged_in",
            hint="login_expired_hint",
            login=login,
            remote_code=error,
            detail=detail,
        )
    if error in TRANSIENT_IDP_ERRORS:
        return TransientDeliveryError(remote_code=error, detail=detail)
    return PermanentDeliveryError(remote_code=error, detail=detail)
