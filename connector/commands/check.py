"""``connector check``: is this deployment able to send? One line per finding, exit 0 or 1.

Validates the configuration (every problem), the files it names, connects to the CRM and the
state databases, then asks the transport: Graph gets a token (app-only) or a token per signed-in
user (delegated) and looks every configured mailbox up with ``GET /users/{address}``; SMTP
connects, says EHLO, STARTTLS and logs in without sending; the folder transport must be
writable. Nothing is sent and nothing is written to the CRM.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.cli import Context
from connector.config import Config
from connector.crm.adapter import SqlCrm
from connector.state.store import StateStore
from mapping.errors import ConfigError, ConnectorError, DeliveryError


def register(commands: Any) -> None:
    check = commands.add_parser(
        "check", help="check the configuration, databases, credentials and mailboxes"
    )
    check.set_defaults(handler=run_check)


@dataclass
class Report:
    ctx: Context
    problems: int = 0

    def ok(self, code: str, **params: Any) -> None:
        self.ctx.print(self.ctx.t("check_ok", text=self.ctx.t(code, **params)))

    def problem(self, code: str, **params: Any) -> None:
        self.problems += 1
        self.ctx.print(self.ctx.t("check_problem", text=self.ctx.t(code, **params)))

    def info(self, code: str, **params: Any) -> None:
        self.ctx.print(self.ctx.t("check_info", text=self.ctx.t(code, **params)))


def _detail(error: BaseException) -> str:
    if isinstance(error, DeliveryError):
        return error.detail or error.code
    if isinstance(error, ConnectorError):
        return str(error.params.get("detail") or error.code)
    return type(error).__name__


def configured_mailboxes(config: Config, ctx: Context) -> list[tuple[str, str]]:
    """(address, role) of every mailbox named in the config, each once."""
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    if config.mailboxes.fallback:
        found.append((config.mailboxes.fallback, ctx.t("role_fallback")))
        seen.add(config.mailboxes.fallback)
    for login, address in sorted(config.mailboxes.users.items()):
        if address not in seen:
            found.append((address, ctx.t("role_user", login=login)))
            seen.add(address)
    return found


def run_check(args: argparse.Namespace, ctx: Context) -> int:
    report = Report(ctx)
    try:
        config = ctx.config
    except ConfigError as error:
        for path, text in error.problems:
            report.problem("check_config_problem", path=path or "-", text=text)
        ctx.print(ctx.t("check_failed", count=report.problems))
        return 1
    report.ok("check_config_ok", path=ctx.config_path, transport=config.transport)
    _check_crm(config, report)
    store = _check_state(config, report)
    if store is not None:
        try:
            _check_transport(config, store, report, ctx)
        finally:
            store.close()
    if report.problems:
        ctx.print(ctx.t("check_failed", count=report.problems))
        return 1
    ctx.print(ctx.t("check_passed"))
    return 0


def _check_crm(config: Config, report: Report) -> None:
    crm = SqlCrm.from_url(
        config.crm.url,
        config.crm.names.to_names(),
        schema=config.crm.db_schema,
        read_only=config.crm.read_only,
    )
    try:
        crm.ping()
        crm.setting(config.crm.names.invitation_mailbox_setting, None)
        report.ok("check_crm_ok")
    except Exception as error:
        report.problem("crm_unavailable", detail=_detail(error))
    finally:
        crm.engine.dispose()


def _check_state(config: Config, report: Report) -> StateStore | None:
    try:
        store = StateStore.from_url(config.state.url)
        store.ping()
    except Exception as error:
        report.problem("state_unavailable", detail=_detail(error))
        return None
    report.ok("check_state_ok")
    return store


def _check_transport(config: Config, store: StateStore, report: Report, ctx: Context) -> None:
    if config.transport == "graph":
        _check_graph(config, store, report, ctx)
    elif config.transport == "smtp":
        _check_smtp(config, report)
    else:
        _check_directory(config.directory.path, report)


def _check_graph(config: Config, store: StateStore, report: Report, ctx: Context) -> None:
    from connector.graph_auth import DelegatedTokens
    from connector.transports.graph import graph_transport

    graph = config.graph
    assert graph is not None
    transport = graph_transport(config, store)
    try:
        login_for_lookups = ""
        if isinstance(transport.tokens, DelegatedTokens):
            usable = []
            for login in transport.tokens.signed_in():
                try:
                    transport.token_for_check(login)
                except DeliveryError as error:
                    text = error.message(ctx.lang)
                    report.problem("check_login_failed", login=login, detail=text)
                    continue
                report.ok("check_login_ok", login=login)
                usable.append(login)
            if not usable:
                report.info("check_no_logins")
                return
            login_for_lookups = usable[0]
        else:
            try:
                transport.token_for_check("")
            except DeliveryError as error:
                report.problem("check_token_failed", detail=_detail(error))
                return
            report.ok("check_token_ok", client_id=graph.client_id, tenant=graph.tenant_id)
        mailboxes = configured_mailboxes(config, ctx)
        if not mailboxes:
            report.info("check_no_mailboxes")
        permission = "User.Read.All" if transport.mode == "app" else "User.ReadBasic.All"
        for address, role in mailboxes:
            found = transport.lookup_mailbox(address, login_for_lookups)
            if found.outcome == "found":
                report.ok("check_mailbox_ok", mailbox=address, role=role)
            elif found.outcome == "unknown":
                report.problem(
                    "check_mailbox_unknown", mailbox=address, role=role, detail=found.code or 404
                )
            elif found.outcome == "forbidden":
                report.problem(
                    "check_mailbox_forbidden",
                    mailbox=address,
                    role=role,
                    permission=permission,
                    detail=found.code or 403,
                )
            else:
                report.problem(
                    "check_mailbox_error", mailbox=address, role=role, detail=found.detail
                )
    finally:
        transport.close()


def _check_smtp(config: Config, report: Report) -> None:
    from connector.logs import Scrubber
    from connector.transports.smtp import SmtpTransport

    smtp = config.smtp
    assert smtp is not None
    transport = SmtpTransport(smtp, Scrubber(config.secrets()))
    try:
        steps = transport.probe()
    except DeliveryError as error:
        report.problem("check_smtp_failed", host=smtp.host, port=smtp.port, detail=_detail(error))
        return
    report.ok("check_smtp_ok", host=smtp.host, port=smtp.port, steps=", ".join(steps))


def _check_directory(path: Path, report: Report) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".check-"):
            pass
    except OSError as error:
        report.problem("check_directory_failed", path=path, detail=error.strerror or "")
        return
    report.ok("check_directory_ok", path=path)
