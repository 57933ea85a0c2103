"""Delivery over SMTP (Exchange Server on premises, other mail servers) to a real aiosmtpd
server on loopback: STARTTLS or implicit TLS, AUTH, the sender mailbox as envelope sender, the
same MIME bytes, and reply codes mapped to transient (4xx) and permanent (5xx)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from connector.config import parse_config
from mapping.errors import ConfigError
from tests.support.checkers import assert_libical_accepts, parse_message
from tests.support.smtp_server import PASSWORD, USERNAME, SmtpServer, smtp_server
from tests.support.world import CrmDb, World, base_config, make_world

PARTICIPANTS = ["denis@ivanov.by", "dasha@ivanov.by", "liza@ivanov.by"]

# aiosmtpd warns about AUTH without STARTTLS on the implicit-TLS server (where it is TLS)
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path / "smtp") as s:
        yield s


def smtp_world(crm: CrmDb, tmp: Path, server: SmtpServer, security: str, **smtp: object) -> World:
    return make_world(crm, tmp, transport="smtp", smtp=server.section(security, **smtp))


def test_starttls_with_authentication_delivers_the_same_invitation(
    sqlite_crm: CrmDb, tmp_path: Path, server: SmtpServer
) -> None:
    w = smtp_world(sqlite_crm, tmp_path, server, "starttls")
    try:
        assert w.invite().delivered
        (envelope,) = w.envelopes()
    finally:
        w.close()
    (mail,) = server.handler.received
    assert mail.mail_from == "ivanov@ivanov.ru"  # the sender mailbox is the envelope sender
    assert sorted(mail.rcpt_tos) == sorted(PARTICIPANTS)
    assert mail.tls and mail.login == USERNAME
    assert mail.data.rstrip(b"\r\n") == envelope.mime.rstrip(b"\r\n")
    message = parse_message(mail.data)
    assert message.method == "REQUEST" and message.vevent.location.value == "Кабинет 404"
    assert_libical_accepts([message.calendar_text])


def test_implicit_tls_delivers(sqlite_crm: CrmDb, tmp_path: Path) -> None:
    with smtp_server(tmp_path / "smtps", security="ssl") as server:
        w = smtp_world(sqlite_crm, tmp_path, server, "ssl")
        try:
            assert w.invite("Stas").delivered
        finally:
            w.close()
        (mail,) = server.handler.received
    assert mail.mail_from == "invitations@ivanov.ru" and mail.tls
    assert parse_message(mail.data).vevent.organizer.value.lower() == "mailto:invitations@ivanov.ru"


def test_wrong_password_is_a_permanent_authentication_error(
    sqlite_crm: CrmDb, tmp_path: Path, server: SmtpServer
) -> None:
    w = smtp_world(sqlite_crm, tmp_path, server, "starttls", password="not-the-password")
    try:
        (delivery,) = w.invite().deliveries
    finally:
        w.close()
    assert delivery.status == "parked"
    assert delivery.error is not None and delivery.error.status == 535
    assert "not-the-password" not in delivery.error.message("en")
    assert server.handler.received == []
    assert server.authenticator.attempts == 1  # one AUTH, not one per mechanism


@pytest.mark.parametrize(
    ("reply", "status", "code"),
    [("550 5.1.1 User unknown", "parked", 550), ("450 4.2.1 Mailbox busy", "failed", 450)],
)
def test_recipients_refused_by_reply_class(
    sqlite_crm: CrmDb, tmp_path: Path, server: SmtpServer, reply: str, status: str, code: int
) -> None:
    server.handler.refuse_rcpt.update({address: reply for address in PARTICIPANTS})
    w = smtp_world(sqlite_crm, tmp_path, server, "starttls")
    try:
        (delivery,) = w.invite().deliveries
    finally:
        w.close()
    assert delivery.status == status
    assert delivery.error is not None and delivery.error.status == code
    assert "denis@ivanov.by" in delivery.error.detail


def test_some_recipients_refused_is_sent_and_named_in_the_receipt(
    sqlite_crm: CrmDb, tmp_path: Path, server: SmtpServer
) -> None:
    server.handler.refuse_rcpt["liza@ivanov.by"] = "550 5.1.1 User unknown"
    w = smtp_world(sqlite_crm, tmp_path, server, "starttls")
    try:
        assert w.invite().delivered  # the others got it: retrying would duplicate theirs
        messages = w.app.store.messages(activity_id=w.ex.meeting)
        (attempt,) = w.app.store.attempts([m.id for m in messages])
        stats = w.transport.stats
    finally:
        w.close()
    assert "refused=1 (liza@ivanov.by 550)" in (attempt.detail or "")
    assert stats["refused_recipients"] == 1
    (mail,) = server.handler.received
    assert sorted(mail.rcpt_tos) == ["dasha@ivanov.by", "denis@ivanov.by"]


def test_exchange_send_as_refusal_over_smtp_is_the_no_rights_refusal(
    sqlite_crm: CrmDb, tmp_path: Path, server: SmtpServer
) -> None:
    server.handler.refuse_sender["invitations@ivanov.ru"] = (
        "550 5.7.60 SMTP; Client does not have permissions to send as this sender"
    )
    w = smtp_world(sqlite_crm, tmp_path, server, "starttls")
    try:
        (delivery,) = w.invite("Stas").deliveries
    finally:
        w.close()
    assert delivery.status == "parked"
    assert delivery.error is not None and delivery.error.code == "no_mailbox_rights"
    assert delivery.error.exit_code == 3


def test_untrusted_server_certificate_is_transient(
    sqlite_crm: CrmDb, tmp_path: Path, server: SmtpServer
) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    w = smtp_world(sqlite_crm, tmp_path, server, "starttls", ca_bundle=str(other))
    try:
        (delivery,) = w.invite().deliveries
    finally:
        w.close()
    assert delivery.status == "failed"
    assert delivery.error is not None and delivery.error.remote_code == "tls"


def test_connection_refused_is_transient(
    sqlite_crm: CrmDb, tmp_path: Path, server: SmtpServer
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    w = smtp_world(sqlite_crm, tmp_path, server, "starttls", port=closed_port)
    try:
        (delivery,) = w.invite().deliveries
    finally:
        w.close()
    assert delivery.status == "failed"
    assert delivery.error is not None and delivery.error.remote_code == "connection"


def test_a_password_is_never_sent_without_tls(sqlite_crm: CrmDb, tmp_path: Path) -> None:
    smtp = {"host": "127.0.0.1", "security": "none", "username": USERNAME, "password": PASSWORD}
    with pytest.raises(ConfigError) as invalid:
        parse_config(base_config(sqlite_crm, tmp_path, transport="smtp", smtp=smtp))
    assert "starttls or ssl" in invalid.value.message("en")
    assert PASSWORD not in invalid.value.message("en")
