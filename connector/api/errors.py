"""One mapping from the connector's error tree to HTTP status codes.

============================  ======  =====================================================
refusal ``code``              status  why
============================  ======  =====================================================
``not_found``                 404     the activity does not exist
``user_not_found``            404     the acting CRM user does not exist
``user_inactive``             403     the acting user is switched off in the CRM
``no_mailbox_rights``         403     no "Send emails" right on the mailbox (figure 2.7)
``not_logged_in``             403     delegated sending, but the user has not signed in
``no_mailbox``                409     no personal mailbox and no fallback (figure 2.8)
``category_not_enabled``      409     the category lacks "Invitation available"
``location_empty``            409     the place is empty: ask, then resend with
                                      ``send_without_location: true`` (figure 2.9)
``meeting_cancelled``         409     the meeting is cancelled
``invalid_time``              409     the activity has no valid start and end
``no_recipients``             422     nobody selected (or nobody with an address)
``unknown_recipient``         422     a recipient is not a participant of the activity
============================  ======  =====================================================

A delivery that the mail system refused for a reason the user can act on
(:class:`mapping.errors.DeliveryRefused`: Exchange denies Send As, ``no_mailbox_rights``; a
delegated sign-in is missing, ``not_logged_in``) answers like the refusal of the same code
(403), with the per-recipient result.

Other errors: a malformed request 422 (``invalid_request``, any usage error), a bad or missing
credential 401 (``unauthorized``, ``link_invalid``, ``link_expired``), too many failed
authentications 429
(``rate_limited``), a delivery failure 502 (``delivery_permanent``, ``delivery_transient``),
a CRM or state database that cannot be reached 503 (``crm_unavailable``,
``state_unavailable``). A refusal code added later defaults to 409.
"""

from __future__ import annotations

from typing import Any

from mapping.errors import ConnectorError, DeliveryError, DeliveryRefused, Refusal, UsageError

REFUSAL_STATUS: dict[str, int] = {
    "not_found": 404,
    "user_not_found": 404,
    "user_inactive": 403,
    "no_mailbox_rights": 403,
    "not_logged_in": 403,
    "no_mailbox": 409,
    "category_not_enabled": 409,
    "location_empty": 409,
    "meeting_cancelled": 409,
    "invalid_time": 409,
    "no_recipients": 422,
    "unknown_recipient": 422,
}
DEFAULT_REFUSAL_STATUS = 409
UNAVAILABLE_CODES = frozenset({"crm_unavailable", "state_unavailable"})


def status_of(error: ConnectorError) -> int:
    if isinstance(error, Refusal | DeliveryRefused):
        return REFUSAL_STATUS.get(error.code, DEFAULT_REFUSAL_STATUS)
    if isinstance(error, DeliveryError):
        return 502
    if error.code in UNAVAILABLE_CODES:
        return 503
    if isinstance(error, UsageError):
        return 422
    return 500


def public_params(error: ConnectorError) -> dict[str, Any]:
    """The error's parameters as JSON values (they never hold secrets, see mapping.errors)."""
    out: dict[str, Any] = {}
    for key, value in error.params.items():
        out[key] = (
            value if isinstance(value, str | int | float | bool) or value is None else str(value)
        )
    return out
