"""The SMTP transport: the same MIME bytes, for Exchange Server on premises and other servers.

One connection per message: connect (``security: ssl``) or connect and ``STARTTLS``
(``security: starttls``, refused when the server does not offer it), ``EHLO``, ``AUTH`` when a
username is configured, then ``MAIL FROM:<sender mailbox>`` / ``RCPT TO`` for every recipient /
``DATA``. Certificates are verified against the system store or ``smtp.ca_bundle``.

Failures are mapped here, at one boundary: reply codes 4xx, connection errors, timeouts and
TLS errors are transient; 5xx replies are permanent (``5.7.60``, Exchange's "no Send As
right", becomes the ``no_mailbox_rights`` refusal). When the server accepts some recipients and
refuses others, the message has left: it is reported as sent, and the refused recipients are
logged and named in the receipt (retrying would send a second copy to the others).
"""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from connector.config import SmtpConfig
from connector.logs import Scrubber
from connector.ports import Envelope
from mapping.errors import (
    DeliveryError,
    DeliveryRefused,
    PermanentDeliveryError,
    TransientDeliveryError,
)

log = logging.getLogger("connector.smtp")

STAT_KEYS = ("connections", "accepted", "transient", "permanent", "refused_recipients")


def _text(raw: bytes | str) -> str:
    """A server reply on one line, not cut yet: it is cut after scrubbing (see :func:`_cut`)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split())


def _cut(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _by_code(code: int, detail: str) -> DeliveryError:
    if 400 <= code < 500:
        return TransientDeliveryError(status=code, remote_code=str(code), detail=detail)
    if code >= 500:
        return PermanentDeliveryError(status=code, remote_code=str(code), detail=detail)
    return TransientDeliveryError(status=code, remote_code=str(code), detail=detail)


def map_smtp_error(
    error: BaseException, envelope: Envelope | None, scrub: Scrubber
) -> DeliveryError:
    """The one mapping of smtplib/socket/ssl failures into the connector's error tree."""
    if isinstance(error, DeliveryError):
        return error
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        refused = {addr: (code, _text(msg)) for addr, (code, msg) in error.recipients.items()}
        shown = "; ".join(f"{addr} {code} {msg}" for addr, (code, msg) in refused.items())
        detail = _cut(scrub(f"SMTP: every recipient refused: {shown}"), 1000)
        codes = [code for code, _ in refused.values()]
        if codes and all(code >= 500 for code in codes):
            return PermanentDeliveryError(
                status=min(codes), remote_code=str(min(codes)), detail=detail
            )
        return TransientDeliveryError(status=min(codes, default=None), detail=detail)
    if isinstance(error, smtplib.SMTPSenderRefused):
        message = _text(error.smtp_error)
        detail = _cut(scrub(f"SMTP: sender {error.sender!s} refused: {error.smtp_code} {message}"))
        if error.smtp_code >= 500 and "5.7.60" in message and envelope is not None:
            return DeliveryRefused(
                "no_mailbox_rights",
                login=envelope.sender_login,
                mailbox=envelope.sender,
                status=error.smtp_code,
                remote_code="5.7.60",
                detail=detail,
            )
        return _by_code(error.smtp_code, detail)
    if isinstance(error, smtplib.SMTPResponseException):
        step = "authentication" if isinstance(error, smtplib.SMTPAuthenticationError) else "reply"
        return _by_code(
            error.smtp_code,
            _cut(scrub(f"SMTP {step}: {error.smtp_code} {_text(error.smtp_error)}")),
        )
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return PermanentDeliveryError(
            remote_code="not_supported", detail=_cut(scrub(f"SMTP: {_text(str(error))}"))
        )
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return TransientDeliveryError(remote_code="disconnected", detail="SMTP: disconnected")
    if isinstance(error, ssl.SSLError):
        reason = getattr(error, "reason", None) or type(error).__name__
        return TransientDeliveryError(remote_code="tls", detail=f"SMTP: TLS error ({reason})")
    if isinstance(error, TimeoutError | socket.timeout):
        return TransientDeliveryError(remote_code="timeout", detail="SMTP: timed out")
    if isinstance(error, OSError):
        return TransientDeliveryError(
            remote_code="connection",
            detail=f"SMTP: connection failed ({type(error).__name__}: {error.strerror or ''})",
        )
    if isinstance(error, smtplib.SMTPException):
        return TransientDeliveryError(remote_code=type(error).__name__, detail="SMTP: error")
    return TransientDeliveryError(
        remote_code=type(error).__name__, detail=f"SMTP: unexpected {type(error).__name__}"
    )


def authenticate(smtp: smtplib.SMTP, username: str, password: str) -> None:
    """AUTH with one mechanism (PLAIN, else LOGIN): ``smtplib.login`` tries every mechanism in
    turn, so one wrong password counts as several failed logins against the account."""
    if not smtp.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
    offered = smtp.esmtp_features["auth"].upper().split()
    for name in ("PLAIN", "LOGIN"):
        if name in offered:
            smtp.user, smtp.password = username, password
            smtp.auth(name, getattr(smtp, f"auth_{name.lower()}"))
            return
    smtp.login(username, password)  # whatever else the server offers


class SmtpTransport:
    name = "smtp"

    def __init__(self, config: SmtpConfig, scrubber: Scrubber | None = None) -> None:
        self.config = config
        self.scrub = scrubber or Scrubber(
            [config.password.get_secret_value()] if config.password else []
        )
        self.stats: dict[str, int] = {key: 0 for key in STAT_KEYS}
        self._lock = threading.Lock()

    def _add(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self.stats[key] += amount

    def tls_context(self) -> ssl.SSLContext:
        ca = self.config.ca_bundle
        return ssl.create_default_context(cafile=str(ca) if ca else None)

    @contextmanager
    def session(self) -> Iterator[tuple[smtplib.SMTP, list[str]]]:
        """An authenticated connection and the steps it went through; closed afterwards."""
        cfg = self.config
        steps: list[str] = []
        self._add("connections")
        smtp: smtplib.SMTP
        if cfg.security == "ssl":
            smtp = smtplib.SMTP_SSL(
                cfg.host,
                cfg.port,
                local_hostname=cfg.local_hostname,
                timeout=cfg.timeout_seconds,
                context=self.tls_context(),
            )
            steps.append("TLS")
        else:
            smtp = smtplib.SMTP(
                cfg.host, cfg.port, local_hostname=cfg.local_hostname, timeout=cfg.timeout_seconds
            )
        try:
            smtp.ehlo()
            steps.append("EHLO")
            if cfg.security == "starttls":
                smtp.starttls(context=self.tls_context())
                smtp.ehlo()
                steps.append("STARTTLS")
            if cfg.username and cfg.password:
                authenticate(smtp, cfg.username, cfg.password.get_secret_value())
                steps.append("AUTH")
            yield smtp, steps
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    def send(self, envelope: Envelope) -> str:
        started = time.monotonic()
        try:
            with self.session() as (smtp, _):
                refused = smtp.sendmail(envelope.sender, list(envelope.recipients), envelope.mime)
        except Exception as exc:
            error = map_smtp_error(exc, envelope, self.scrub)
            self._add("transient" if isinstance(error, TransientDeliveryError) else "permanent")
            log.warning(
                "event=smtp_send_failed mailbox=%s status=%s code=%s ms=%d",
                envelope.sender,
                error.status,
                error.remote_code,
                (time.monotonic() - started) * 1000,
            )
            raise error from None
        self._add("accepted")
        receipt = f"smtp accepted={len(envelope.recipients) - len(refused)}"
        if refused:
            self._add("refused_recipients", len(refused))
            shown = ", ".join(f"{addr} {code}" for addr, (code, _msg) in refused.items())
            receipt += f" refused={len(refused)} ({shown})"
            log.warning(
                "event=smtp_recipients_refused mailbox=%s refused=%d", envelope.sender, len(refused)
            )
        log.info(
            "event=smtp_send mailbox=%s recipients=%d bytes=%d ms=%d",
            envelope.sender,
            len(envelope.recipients),
            len(envelope.mime),
            (time.monotonic() - started) * 1000,
        )
        return receipt

    def probe(self) -> list[str]:
        """Connect, EHLO, STARTTLS, AUTH and NOOP without sending; the steps passed.

        Raises DeliveryError (for ``connector check``)."""
        try:
            with self.session() as (smtp, steps):
                smtp.noop()
                return steps
        except Exception as exc:
            raise map_smtp_error(exc, None, self.scrub) from None

    def close(self) -> None:
        return None
