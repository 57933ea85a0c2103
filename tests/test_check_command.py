"""``connector check``: one line per finding, exit 0 when the deployment can send, 1 when not;
nothing is sent."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from connector import cli
from tests.support.cli import cli_env, run_cli, write_config
from tests.support.fake_graph import FakeGraph
from tests.support.graph_env import (
    CLIENT_ID,
    CLIENT_SECRET,
    FALLBACK,
    PERSONAL,
    graph_sections,
)
from tests.support.smtp_server import smtp_server
from tests.support.world import CrmDb, World, base_config

MAILBOXES = {"fallback": FALLBACK, "users": {"supervisor": PERSONAL}}


@pytest.fixture
def crm_file(world: World) -> CrmDb:
    """The manual's example CRM (SQLite file)."""
    return world.crm


def config(crm: CrmDb, tmp: Path, **sections: Any) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    return write_config(tmp / "config.yaml", base_config(crm, tmp, **sections))


def check(path: Path, lang: str = "en") -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--config", str(path), "--lang", lang, "check"], out=out, err=err)
    return code, out.getvalue() + err.getvalue()


def test_check_process_against_graph_reports_every_piece(
    crm_file: CrmDb, tmp_path: Path, fake_graph: FakeGraph
) -> None:
    path = config(crm_file, tmp_path, mailboxes=MAILBOXES, **graph_sections(fake_graph))
    done = run_cli("--config", str(path), "--lang", "en", "check")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"OK: the configuration {path} is valid (transport graph)"
    assert "OK: the CRM database is reachable" in lines
    assert "OK: the connector's state store is reachable" in lines
    assert f"OK: got a Microsoft Graph token (application {CLIENT_ID}, tenant " in done.stdout
    assert f"OK: mailbox {FALLBACK} (fallback mailbox) is known to Microsoft 365" in lines
    assert f"OK: mailbox {PERSONAL} (mailbox of supervisor) is known to Microsoft 365" in lines
    assert lines[-1] == "All checks passed."
    counters = fake_graph.stats()["counters"]
    assert counters["users_requests"] == 2 and "sendMail_requests" not in counters
    assert CLIENT_SECRET not in done.stdout + done.stderr


def test_unknown_mailbox_is_one_problem_line_and_exit_1(
    crm_file: CrmDb, tmp_path: Path, fake_graph: FakeGraph
) -> None:
    mailboxes = {"fallback": "shared@ivanov.ru", "users": {"supervisor": PERSONAL}}
    path = config(crm_file, tmp_path, mailboxes=mailboxes, **graph_sections(fake_graph))
    code, output = check(path, "ru")
    assert code == 1
    problems = [line for line in output.splitlines() if line.startswith("ОШИБКА:")]
    assert problems == [
        "ОШИБКА: почтовый ящик shared@ivanov.ru (почта для отправки приглашений) не найден в "
        "Microsoft 365 (Request_ResourceNotFound)"
    ]
    assert "Найдено проблем: 1." in output


def test_wrong_secret_is_reported_without_the_secret(
    crm_file: CrmDb, tmp_path: Path, fake_graph: FakeGraph
) -> None:
    secret = "Wrong~secret-value-0123456789"
    sections = graph_sections(fake_graph, client_secret="${GRAPH_SECRET}")
    path = config(crm_file, tmp_path, mailboxes=MAILBOXES, **sections)
    done = run_cli(
        "--config",
        str(path),
        "--lang",
        "en",
        "check",
        env=cli_env(GRAPH_SECRET=secret),
    )
    assert done.returncode == 1
    assert "PROBLEM: could not get a Microsoft Graph token: token: invalid_client" in done.stdout
    assert "AADSTS7000215" in done.stdout
    assert secret not in done.stdout + done.stderr


def test_missing_user_read_permission_is_named(
    crm_file: CrmDb, tmp_path: Path, fake_graph: FakeGraph
) -> None:
    fake_graph.setup(
        apps=[{"client_id": CLIENT_ID, "secret": CLIENT_SECRET, "roles": ["Mail.Send"]}]
    )
    path = config(crm_file, tmp_path, mailboxes=MAILBOXES, **graph_sections(fake_graph))
    code, output = check(path)
    assert code == 1
    assert (
        f"PROBLEM: not allowed to look up mailbox {FALLBACK} (fallback mailbox): the "
        "User.Read.All permission is needed (Authorization_RequestDenied)" in output
    )


def test_invalid_configuration_lists_every_problem(crm_file: CrmDb, tmp_path: Path) -> None:
    path = config(
        crm_file,
        tmp_path,
        transport="graph",
        graph={"tenant_id": "t", "client_id": "c", "base_url": "http://graph.local"},
        smtp={"host": "mail", "security": "none", "username": "u", "password": "p4ssw0rd!"},
    )
    code, output = check(path)
    assert code == 1
    problems = [line for line in output.splitlines() if line.startswith("PROBLEM:")]
    assert len(problems) == 2
    assert any(line.startswith("PROBLEM: configuration: graph:") for line in problems)
    assert any("starttls or ssl" in line for line in problems)
    assert "p4ssw0rd!" not in output


def test_smtp_check_connects_and_logs_in_without_sending(crm_file: CrmDb, tmp_path: Path) -> None:
    with smtp_server(tmp_path / "smtp") as server:
        path = config(crm_file, tmp_path, transport="smtp", smtp=server.section("starttls"))
        code, output = check(path)
        bad = config(
            crm_file,
            tmp_path / "bad",
            transport="smtp",
            smtp=server.section("starttls", password="wrong-password"),
        )
        bad_code, bad_output = check(bad)
        received = list(server.handler.received)
    assert code == 0, output
    assert (
        f"OK: the SMTP server 127.0.0.1:{server.port} accepted the connection "
        "(EHLO, STARTTLS, AUTH)" in output
    )
    assert received == []
    assert bad_code == 1 and "535" in bad_output and "wrong-password" not in bad_output


def test_delegated_check_reports_signed_in_users(
    crm_file: CrmDb, tmp_path: Path, fake_graph: FakeGraph
) -> None:
    sections = graph_sections(fake_graph, delegated=True)
    path = config(crm_file, tmp_path, mailboxes=MAILBOXES, **sections)
    code, output = check(path)
    assert code == 0, output
    assert "INFO: no user has signed in yet" in output

    fake_graph.configure(device_auto_approve=PERSONAL, device_pending_polls=0)
    login = cli.main(
        ["--config", str(path), "login", "--as", "Supervisor"], out=io.StringIO(), err=io.StringIO()
    )
    assert login == 0
    code, output = check(path)
    assert code == 0, output
    assert "OK: user 'supervisor': signed in, token acquired" in output
    assert f"OK: mailbox {FALLBACK} (fallback mailbox) is known to Microsoft 365" in output


def test_directory_transport_check(crm_file: CrmDb, tmp_path: Path) -> None:
    code, output = check(config(crm_file, tmp_path))
    assert code == 0, output
    assert f"OK: the folder {tmp_path / 'outbox'} is writable" in output
