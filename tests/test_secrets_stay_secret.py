"""Secrets never reach logs or error texts: the client secret, the certificate passphrase, the
SMTP password, the token cache key and every token the identity platform issued are searched
for in everything a run wrote (logging at DEBUG through the connector's own handler, the raw log
records of the connector's loggers, and the texts of the errors)."""

from __future__ import annotations

import io
import json
import logging
import smtplib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from connector.graph_errors import from_response, from_token_result
from connector.logs import Scrubber, setup_logging
from connector.transports.smtp import map_smtp_error
from mapping.errors import ConfigError
from tests.support.fake_graph import AppCertificate, FakeGraph
from tests.support.graph_env import (
    CLIENT_SECRET,
    PERSONAL,
    TOKEN_CACHE_KEY,
    graph_sections,
    register_example,
)
from tests.support.smtp_server import PASSWORD, smtp_server
from tests.support.world import CrmDb, World, make_world

PASSPHRASE = "Cert-passphrase-never-logged-42"


class Raw(logging.Handler):
    """Keeps the messages of the connector's loggers as they were logged, before the log
    scrubber of the connector's own handler (further up, at the root) could mask anything."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        if record.exc_info:
            self.lines.append(logging.Formatter().formatException(record.exc_info))


@dataclass
class Captured:
    stream: io.StringIO
    raw: Raw

    def everything(self, texts: list[str]) -> str:
        return "\n".join([self.stream.getvalue(), *self.raw.lines, *texts])


@pytest.fixture
def captured() -> Iterator[Captured]:
    """The connector's log handler at DEBUG writing to a buffer, plus the raw records of the
    connector's loggers; logging is restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    raw = Raw()
    loggers = [logging.getLogger(name) for name in ("connector", "mapping")]
    for logger in loggers:
        logger.addHandler(raw)
    yield Captured(io.StringIO(), raw)
    for logger in loggers:
        logger.removeHandler(raw)
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def world_in(folder: Path, **sections: object) -> World:
    """A world with its own CRM file (each make_world writes the example anew)."""
    folder.mkdir(parents=True, exist_ok=True)
    return make_world(CrmDb(f"sqlite:///{folder / 'crm.db'}", None, "sqlite"), folder, **sections)


def errors_of(w: World) -> list[str]:
    texts = []
    for message in w.app.store.messages():
        texts += [message.last_error or "", message.error_code or ""]
    for attempt in w.app.store.attempts([m.id for m in w.app.store.messages()]):
        texts.append(attempt.detail or "")
    return texts


def test_graph_app_only_and_delegated_runs_keep_secrets_out_of_logs(
    sqlite_crm: CrmDb,
    tmp_path: Path,
    fake_graph: FakeGraph,
    captured: Captured,
) -> None:
    texts: list[str] = []
    # app-only with a client secret: a send, a rejected token (401), a 403 and a 503
    w = make_world(sqlite_crm, tmp_path, **graph_sections(fake_graph))
    setup_logging("DEBUG", "kv", w.config.secrets(), stream=captured.stream)
    w.app.deliverer.sleep = lambda seconds: None
    assert w.invite().delivered
    fake_graph.state.expire_tokens()  # the next send gets 401 and a fresh token
    w.clock.advance(hours=1)
    w.writer.update_activity(w.ex.meeting, location="Кабинет 505")
    assert w.invite().delivered
    fake_graph.fail({"status": 503}, {"status": 403, "code": "ErrorAccessDenied"})
    w.clock.advance(hours=1)
    w.writer.update_activity(w.ex.meeting, location="Кабинет 606")
    result = w.invite()
    texts += [d.error.message(lang) for d in result.deliveries if d.error for lang in ("ru", "en")]
    texts += errors_of(w)
    w.close()

    # a wrong certificate passphrase, then delegated sign-in and send
    cert = AppCertificate.create(tmp_path / "cert", PASSPHRASE)
    register_example(fake_graph, certificates=[cert.cert_pem])
    wrong = {"pfx_path": str(cert.pfx_path), "passphrase": PASSPHRASE + "x"}
    sections = graph_sections(fake_graph, certificate=wrong)
    del sections["graph"]["client_secret"]
    setup_logging("DEBUG", "kv", [PASSPHRASE, PASSPHRASE + "x"], stream=captured.stream)
    with pytest.raises(ConfigError) as refused:  # found when the config is loaded
        world_in(tmp_path / "cert-world", **sections)
    texts += [refused.value.message("en"), refused.value.message("ru"), repr(refused.value)]

    w = world_in(tmp_path / "delegated", **graph_sections(fake_graph, delegated=True))
    setup_logging("DEBUG", "kv", w.config.secrets(), stream=captured.stream)
    fake_graph.configure(device_auto_approve=PERSONAL, device_pending_polls=0)
    tokens = getattr(w.transport.inner, "tokens")  # noqa: B009
    tokens.login("Supervisor", lambda flow: None, timeout_seconds=20)
    assert w.invite().delivered
    w.close()

    out = captured.everything(texts)
    assert "event=message_sent" in out and "event=graph_send" in out  # the logs are there
    assert "ErrorAccessDenied" in out and "not a usable certificate or key" in out
    assert fake_graph.stats()["counters"]["tokens_client_credentials"] == 2
    assert [r["status"] for r in fake_graph.requests("sendMail")][:4] == [202, 401, 202, 503]
    secrets = [CLIENT_SECRET, PASSPHRASE, TOKEN_CACHE_KEY, *fake_graph.issued_tokens()]
    assert len(secrets) > 5
    for secret in secrets:
        assert secret not in out


def test_smtp_password_stays_out_of_logs_and_errors(
    sqlite_crm: CrmDb,
    tmp_path: Path,
    captured: Captured,
) -> None:
    with smtp_server(tmp_path / "smtp") as server:
        texts: list[str] = []
        w = make_world(sqlite_crm, tmp_path, transport="smtp", smtp=server.section("starttls"))
        setup_logging("DEBUG", "kv", w.config.secrets(), stream=captured.stream)
        assert w.invite().delivered
        w.close()
        bad = server.section("starttls", password=PASSWORD + "-wrong")
        w = world_in(tmp_path / "bad", transport="smtp", smtp=bad)
        texts += [d.error.message("en") for d in w.invite().deliveries if d.error]
        texts += errors_of(w)
        w.close()
    out = captured.everything(texts)
    assert "event=smtp_send" in out and "535" in out
    assert PASSWORD not in out


def test_a_secret_or_token_quoted_where_a_detail_is_cut_is_masked_not_cut_in_half() -> None:
    """Error details are cut to length; a secret or token straddling the cut must be masked
    first (cut first, what is left of it is no longer recognisable and stays visible)."""
    token = (
        "eyJhbGciOiJIUzI1NiJ9."
        + "eyJqdGkiOiJhYmNkZWYxMjM0NTYifQ" * 4
        + ".c2lnbmF0dXJlLXBhcnQtb2YtdGhlLXRva2Vu"
    )
    scrub = Scrubber([CLIENT_SECRET, PASSWORD])
    response = requests.Response()
    response.status_code = 403
    text = "x" * 280 + f" {CLIENT_SECRET} {token}"
    response._content = json.dumps(
        {"error": {"code": "ErrorAccessDenied", "message": text}}
    ).encode()
    details = [
        from_response(response, login="Supervisor", mailbox=PERSONAL, scrub=scrub).detail,
        from_token_result(
            {"error": "invalid_client", "error_description": "y" * 270 + f" {CLIENT_SECRET}"},
            login="Supervisor",
            scrub=scrub,
        ).detail,
        map_smtp_error(
            smtplib.SMTPAuthenticationError(535, ("5.7.8 " + "z" * 290 + PASSWORD).encode()),
            None,
            scrub,
        ).detail,
        Scrubber()(f"Bearer-less and cut short: {token[:60]}"),
    ]
    for detail in details:
        assert "***" in detail
        assert CLIENT_SECRET[:8] not in detail and PASSWORD[:8] not in detail
        assert "eyJ" not in detail
