"""A real SMTP server for the tests: ``aiosmtpd`` on 127.0.0.1 (ephemeral port), with STARTTLS
or implicit TLS from a ``trustme`` CA, AUTH (PLAIN/LOGIN) required after TLS, and recipients
or senders that can be refused with a chosen reply, the way a mail server does."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

USERNAME = "connector@ivanov.ru"
PASSWORD = "smtp-Pa55word-for-tests"


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    login: str | None
    tls: bool


@dataclass
class Handler:
    received: list[ReceivedMail] = field(default_factory=list)
    refuse_rcpt: dict[str, str] = field(default_factory=dict)  # address -> reply
    refuse_sender: dict[str, str] = field(default_factory=dict)
    logins: list[str] = field(default_factory=list)

    async def handle_MAIL(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.lower() in self.refuse_sender:
            return self.refuse_sender[address.lower()]
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.lower() in self.refuse_rcpt:
            return self.refuse_rcpt[address.lower()]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        login = session.auth_data.login.decode() if session.auth_data else None
        self.received.append(
            ReceivedMail(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                bytes(envelope.original_content or envelope.content),
                login,
                session.ssl is not None  # STARTTLS
                or server.transport.get_extra_info("ssl_object") is not None,  # implicit TLS
            )
        )
        return "250 Message accepted for delivery"


class Authenticator:
    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password
        self.attempts = 0

    def __call__(
        self, server: SMTP, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        self.attempts += 1
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.username
            and auth_data.password.decode() == self.password
        )
        if not ok:  # handled=False: aiosmtpd answers 535 itself
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=auth_data)


class _Controller(Controller):
    """aiosmtpd's controller on an ephemeral port (it connects to itself to start up)."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@dataclass
class SmtpServer:
    host: str
    port: int
    ca_bundle: Path
    handler: Handler
    authenticator: Authenticator

    def section(self, security: str, **overrides: Any) -> dict[str, Any]:
        """An ``smtp:`` config section for this server."""
        data: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "security": security,
            "username": USERNAME,
            "password": PASSWORD,
            "ca_bundle": str(self.ca_bundle),
            "timeout_seconds": 5,
        }
        data.update(overrides)
        return data


@contextlib.contextmanager
def smtp_server(folder: Path, *, security: str = "starttls") -> Iterator[SmtpServer]:
    """Serve SMTP with STARTTLS (``starttls``) or implicit TLS (``ssl``) and required AUTH."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    ca_bundle = folder / "smtp-ca.pem"
    ca.cert_pem.write_to_path(str(ca_bundle))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    handler = Handler()
    authenticator = Authenticator(USERNAME, PASSWORD)
    options: dict[str, Any] = {
        "authenticator": authenticator,
        "auth_required": True,
        "server_hostname": "mail.ivanov.ru",
    }
    if security == "ssl":
        # the whole connection is TLS; aiosmtpd only counts STARTTLS as TLS for AUTH
        options.update(ssl_context=context, auth_require_tls=False)
    else:
        options.update(tls_context=context, require_starttls=True)
    controller = _Controller(handler, hostname="127.0.0.1", port=0, **options)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", controller.port, ca_bundle, handler, authenticator)
    finally:
        controller.stop()
