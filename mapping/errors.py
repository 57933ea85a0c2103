"""The connector's one error tree.

::

    ConnectorError                   every error the connector raises on purpose
    ├── UsageError                   bad command line or request                (exit 2)
    │   └── ConfigError              the configuration is invalid; lists every problem
    ├── Refusal                      a business rule says no; carries a stable code (exit 3)
    └── DeliveryError                the transport could not deliver              (exit 4)
        ├── TransientDeliveryError   worth retrying (429, 5xx, timeouts, resets)
        └── PermanentDeliveryError   retrying cannot help (400, 403, 404, 413, ...)
            └── DeliveryRefused      the mail system refused this user or mailbox for a reason
                                     the user can act on: no Send As right in Exchange
                                     (``no_mailbox_rights``), no stored sign-in in delegated
                                     mode (``not_logged_in``)                    (exit 3)

Lower-layer exceptions (requests, smtplib, SQLAlchemy, msal) are mapped into this tree at one
boundary each, so that tenacity has one retry predicate (``TransientDeliveryError``) and the CLI
and the HTTP API have one mapping to exit codes, status codes and messages. Every error carries
a stable ``code`` and keyword ``params``; the human text comes from :mod:`mapping.messages` in
the user's language. Params never hold secrets.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class ConnectorError(Exception):
    """Base of every error raised on purpose by the connector."""

    exit_code = 1
    code = "error"

    def __init__(self, code: str | None = None, /, **params: Any) -> None:
        if code is not None:
            self.code = code
        self.params: dict[str, Any] = dict(params)
        super().__init__(self.code, self.params)

    def message(self, language: str = "en") -> str:
        from mapping.messages import render

        return render(self.code, language, self.params)

    def __str__(self) -> str:
        return self.message("en")


class UsageError(ConnectorError):
    exit_code = 2
    code = "usage"


class ConfigError(UsageError):
    """Invalid configuration. ``problems`` holds every (path, message) pair found."""

    code = "config_invalid"

    def __init__(self, problems: Iterable[tuple[str, str]]) -> None:
        self.problems: list[tuple[str, str]] = list(problems)
        super().__init__(self.code, count=len(self.problems))

    def message(self, language: str = "en") -> str:
        from mapping.messages import render

        head = render(self.code, language, self.params)
        lines = [f"  {path}: {text}" if path else f"  {text}" for path, text in self.problems]
        return "\n".join([head, *lines])


class Refusal(ConnectorError):
    """A rule of the manual refuses the action. ``code`` is stable (API and tests use it)."""

    exit_code = 3
    code = "refused"


class DeliveryError(ConnectorError):
    """The transport failed to hand the message over."""

    exit_code = 4
    code = "delivery_failed"

    def __init__(
        self,
        code: str | None = None,
        /,
        *,
        status: int | None = None,
        remote_code: str | None = None,
        detail: str = "",
        retry_after: float | None = None,
        **params: Any,
    ) -> None:
        self.status = status
        self.remote_code = remote_code
        self.detail = detail
        self.retry_after = retry_after
        super().__init__(code, status=status, remote_code=remote_code, detail=detail, **params)


class TransientDeliveryError(DeliveryError):
    code = "delivery_transient"


class PermanentDeliveryError(DeliveryError):
    code = "delivery_permanent"


class DeliveryRefused(PermanentDeliveryError):
    """A permanent delivery error that reads like a :class:`Refusal` to the user.

    It stays a :class:`PermanentDeliveryError` so the outbox parks the message (not retried)
    and the message log keeps the remote status and code; its ``code`` is a refusal code of
    :mod:`mapping.messages` (``no_mailbox_rights``, ``not_logged_in``) and the CLI exits with 3,
    as for a refusal of the CRM rules. ``hint`` names an extra catalog text appended to the
    message (e.g. what an Exchange administrator has to do).
    """

    exit_code = 3
    code = "refused"

    def __init__(self, code: str, /, *, hint: str | None = None, **params: Any) -> None:
        self.hint = hint
        super().__init__(code, **params)

    def message(self, language: str = "en") -> str:
        text = super().message(language)
        if self.hint:
            from mapping.messages import render

            text += "\n" + render(self.hint, language, self.params)
        return text


def describe(error: BaseException, language: str) -> str:
    """The user-facing text of any error (unexpected ones get a generic text)."""
    if isinstance(error, ConnectorError):
        return error.message(language)
    from mapping.messages import render

    return render("unexpected", language, {"kind": type(error).__name__})
