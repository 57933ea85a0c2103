"""The published contract shared by the routes: the bearer scheme, one value per query
parameter, and every documented response (each status a route can answer is in the schema)."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPBearer

from connector.api.models import DeliveryFailedOut, ErrorOut
from mapping.errors import UsageError

#: publishes the bearer scheme in the OpenAPI document; the AuthGate middleware enforces it
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="One of the tokens of api.tokens (the CRM server's credential).",
)


Responses = dict[int | str, dict[str, Any]]


def single_query_values(request: Request) -> None:
    """Refuse a query parameter given twice (``?user=a&user=b``): which one counts would be a
    guess, and for a dialog link a way to confuse the signature check."""
    keys = [key for key, _ in request.query_params.multi_items()]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise UsageError("invalid_request", detail=f"repeated query parameter: {repeated[0]}")


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


UNAUTHORIZED: Responses = {401: _error("No valid token (`unauthorized`)")}
RATE_LIMITED: Responses = {
    429: _error("Too many failed authentications from this address (`rate_limited`)")
}
INVALID: Responses = {
    422: _error("Malformed request (`invalid_request`), `no_recipients`, `unknown_recipient`")
}
UNAVAILABLE: Responses = {503: _error("The CRM or the state database is unreachable")}
NOT_FOUND: Responses = {404: _error("`not_found` (activity) or `user_not_found`")}
FORBIDDEN: Responses = {403: _error("`user_inactive`, `no_mailbox_rights`, `not_logged_in`")}
CONFLICT: Responses = {
    409: _error(
        "`location_empty`, `category_not_enabled`, `no_mailbox`, `meeting_cancelled`, "
        "`invalid_time`"
    )
}
REFUSED_DELIVERY: Responses = {
    403: {
        "model": ErrorOut | DeliveryFailedOut,
        "description": "`user_inactive`, `no_mailbox_rights`, `not_logged_in`; when the mail "
        "system refused the message (Exchange denies Send As), with the per-recipient result",
    }
}
DELIVERY_FAILED: Responses = {
    502: {"model": DeliveryFailedOut, "description": "The transport could not deliver"}
}

GUARDED: Responses = {**UNAUTHORIZED, **RATE_LIMITED, **INVALID}
RULES: Responses = {**NOT_FOUND, **FORBIDDEN, **CONFLICT, **UNAVAILABLE}

HTML = {"text/html": {"schema": {"type": "string"}}}


def html(description: str) -> dict[str, Any]:
    return {"description": description, "content": HTML}


HTML_RESPONSES: Responses = {
    200: html("The page"),
    401: html("No valid token or link (`unauthorized`, `link_invalid`, `link_expired`)"),
    403: html("Refused: `user_inactive`, `no_mailbox_rights` (figure 2.7), `not_logged_in`"),
    404: html("Refused: `not_found`, `user_not_found`"),
    409: html(
        "Refused: `no_mailbox` (figure 2.8), `category_not_enabled`, ...; or the "
        "empty-place question (figure 2.9)"
    ),
    422: html("Malformed request, `no_recipients`, `unknown_recipient`"),
    429: html("Too many failed authentications"),
    502: html("The transport could not deliver"),
    503: html("The CRM or the state database is unreachable"),
}


#: every route behind the gate: the bearer scheme in the schema, one value per query parameter
PROTECTED = [Security(bearer_scheme), Depends(single_query_values)]
