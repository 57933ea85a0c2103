"""Delegated mode (``graph.mode: delegated``): ``connector login`` runs the device-code flow,
the user's msal token cache is stored encrypted in the state store, and sends as that CRM user
use it; Exchange's Send As refusal and a missing sign-in read as refusals (exit 3)."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from connector import cli
from connector.config import parse_config
from connector.graph_auth import DelegatedTokens
from connector.token_vault import TokenVault, VaultError
from mapping.errors import ConfigError, DeliveryRefused, Refusal
from tests.support.cli import ROOT, cli_env, write_config
from tests.support.fake_graph import FakeGraph
from tests.support.graph_env import (
    FALLBACK,
    PERSONAL,
    STAS,
    TOKEN_CACHE_KEY,
    graph_sections,
)
from tests.support.world import CrmDb, Recording, World, base_config, make_world

CODE = re.compile(r"(?:code|код) ([A-Z0-9]{9})")


@pytest.fixture
def delegated(sqlite_crm: CrmDb, tmp_path: Path, fake_graph: FakeGraph) -> Iterator[World]:
    w = make_world(sqlite_crm, tmp_path, **graph_sections(fake_graph, delegated=True))
    yield w
    w.close()


def config_file(w: World) -> Path:
    return write_config(w.tmp / "config.yaml", base_config(w.crm, w.tmp, **w.sections))


def tokens_of(w: World) -> DelegatedTokens:
    assert isinstance(w.transport, Recording)
    tokens = getattr(w.transport.inner, "tokens", None)
    assert isinstance(tokens, DelegatedTokens)
    return tokens


def sign_in(w: World, fake: FakeGraph, login: str, upn: str) -> str:
    """Sign ``login`` in (the device-code flow, approved at the fake as ``upn``)."""
    fake.configure(device_auto_approve=upn, device_pending_polls=0)
    try:
        return tokens_of(w).login(login, lambda flow: None, timeout_seconds=20)
    finally:
        fake.configure(device_auto_approve=None)


def database_bytes(w: World) -> bytes:
    """Everything SQLite holds on disk for the state store (the WAL too)."""
    files = sorted(w.tmp.glob("state.db*"))
    assert files
    return b"".join(f.read_bytes() for f in files)


def test_login_prints_the_address_and_code_then_stores_the_sign_in(
    delegated: World, fake_graph: FakeGraph
) -> None:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "connector", "--config", str(config_file(delegated)), "login", "--as", "Supervisor"],
        cwd=str(ROOT),
        env=cli_env(),
        encoding="utf-8",
        timeout=30,
    )
    try:
        child.expect(CODE)
        line = str(child.before) + str(child.after)
        user_code = child.match.group(1)
        assert f"{fake_graph.origin}/devicelogin" in line
        assert fake_graph.state.approve(user_code, PERSONAL)
        child.expect(pexpect.EOF)
        output = str(child.before)
    finally:
        child.close()
    assert child.exitstatus == 0, output
    assert "Вход выполнен: ivanov@ivanov.ru" in output
    vault = TokenVault(delegated.app.store, TOKEN_CACHE_KEY)
    assert vault.logins() == ["supervisor"]
    cache = vault.load("Supervisor")
    assert cache is not None and '"RefreshToken"' in cache


def test_token_cache_is_stored_encrypted(delegated: World, fake_graph: FakeGraph) -> None:
    sign_in(delegated, fake_graph, "Supervisor", PERSONAL)
    assert delegated.invite().delivered
    on_disk = database_bytes(delegated)
    issued = fake_graph.issued_tokens()
    assert len(issued) >= 2  # an access token and a refresh token
    for token in issued:
        assert token.encode() not in on_disk
        assert token.split(".")[-1].encode() not in on_disk  # not even a JWT's signature
    blob = delegated.app.store.get_token_cache("Supervisor")
    assert blob is not None and b"RefreshToken" not in blob
    # and what is sealed there is the real cache: it holds the issued tokens
    plain = TokenVault(delegated.app.store, TOKEN_CACHE_KEY).load("Supervisor")
    assert plain is not None and any(token in plain for token in issued)


def test_send_uses_the_sign_in_of_the_user_who_pressed_the_button(
    delegated: World, fake_graph: FakeGraph
) -> None:
    sign_in(delegated, fake_graph, "Supervisor", PERSONAL)
    assert delegated.invite().delivered
    (received,) = fake_graph.messages()
    assert (received.token_kind, received.actor, received.mailbox) == (
        "delegated",
        PERSONAL,
        PERSONAL,
    )
    assert len(fake_graph.inbox("liza@ivanov.by")) == 1
    assert fake_graph.stats()["counters"].get("tokens_client_credentials", 0) == 0


def test_user_without_a_stored_sign_in_is_refused_before_anything_is_recorded(
    delegated: World, fake_graph: FakeGraph
) -> None:
    with pytest.raises(Refusal) as refused:
        delegated.invite()
    assert refused.value.code == "not_logged_in"
    assert "connector login --as Supervisor" in refused.value.message("ru")
    assert delegated.app.store.get_state(delegated.ex.meeting) is None
    assert delegated.app.store.messages(activity_id=delegated.ex.meeting) == []
    assert fake_graph.requests("sendMail") == []


def test_cli_exits_3_with_the_login_hint(delegated: World, fake_graph: FakeGraph) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(
        [
            "--config",
            str(config_file(delegated)),
            "--lang",
            "en",
            "invite",
            str(delegated.ex.meeting),
            "--as",
            "Supervisor",
        ],
        out=out,
        err=err,
    )
    assert code == 3
    assert "has not signed in" in err.getvalue()
    assert "connector login --as Supervisor" in err.getvalue()


def test_the_crm_rights_check_still_comes_first(delegated: World) -> None:
    delegated.writer.user("Nobody", delegated.writer.contact("Безправ Борис", "b@ivanov.ru"))
    with pytest.raises(Refusal) as refused:
        delegated.invite("Nobody")
    assert refused.value.code == "no_mailbox_rights"  # not not_logged_in


def test_shared_mailbox_without_send_as_is_the_no_rights_refusal(
    delegated: World, fake_graph: FakeGraph
) -> None:
    sign_in(delegated, fake_graph, "Stas", STAS)
    (delivery,) = delegated.invite("Stas").deliveries
    assert delivery.status == "parked"
    error = delivery.error
    assert isinstance(error, DeliveryRefused) and error.exit_code == 3
    assert (error.code, error.status, error.remote_code) == (
        "no_mailbox_rights",
        403,
        "ErrorSendAsDenied",
    )
    text = error.message("ru")
    assert "нет прав на отправку писем с почтового ящика invitations@ivanov.ru" in text
    assert "Send As" in text
    (message,) = delegated.app.store.messages(activity_id=delegated.ex.meeting)
    assert (message.status, message.error_code) == ("parked", "ErrorSendAsDenied")


def test_cli_reports_the_send_as_refusal_with_exit_3(
    delegated: World, fake_graph: FakeGraph
) -> None:
    sign_in(delegated, fake_graph, "Stas", STAS)
    err = io.StringIO()
    code = cli.main(
        [
            "--config",
            str(config_file(delegated)),
            "invite",
            str(delegated.ex.meeting),
            "--as",
            "Stas",
        ],
        out=io.StringIO(),
        err=err,
    )
    assert code == 3
    assert "ErrorSendAsDenied" in err.getvalue()


def test_shared_mailbox_with_send_as_delivers(delegated: World, fake_graph: FakeGraph) -> None:
    fake_graph.setup(send_as={STAS: [FALLBACK]})
    sign_in(delegated, fake_graph, "Stas", STAS)
    assert delegated.invite("Stas").delivered
    (received,) = fake_graph.messages()
    assert (received.actor, received.mailbox) == (STAS, FALLBACK)


def test_rejected_access_token_is_refreshed_and_stored_back(
    delegated: World, fake_graph: FakeGraph
) -> None:
    sign_in(delegated, fake_graph, "Supervisor", PERSONAL)
    before = delegated.app.store.get_token_cache("Supervisor")
    fake_graph.state.expire_tokens()
    assert delegated.invite().delivered
    assert [r["status"] for r in fake_graph.requests("sendMail")] == [401, 202]
    assert fake_graph.stats()["counters"]["tokens_refresh"] == 1
    after = delegated.app.store.get_token_cache("Supervisor")
    assert after is not None and after != before


def test_revoked_sign_in_asks_to_sign_in_again(delegated: World, fake_graph: FakeGraph) -> None:
    sign_in(delegated, fake_graph, "Supervisor", PERSONAL)
    fake_graph.state.expire_tokens()
    fake_graph.state.revoke_refresh(PERSONAL)
    (delivery,) = delegated.invite().deliveries
    assert delivery.status == "parked"
    assert isinstance(delivery.error, DeliveryRefused)
    assert delivery.error.code == "not_logged_in"
    assert "invalid_grant" in delivery.error.message("en")


def test_sync_update_for_a_user_without_sign_in_is_a_recorded_problem(
    delegated: World, fake_graph: FakeGraph
) -> None:
    sign_in(delegated, fake_graph, "Supervisor", PERSONAL)
    assert delegated.invite().delivered
    assert TokenVault(delegated.app.store, TOKEN_CACHE_KEY).forget("Supervisor")
    delegated.clock.advance(hours=1)
    delegated.writer.update_activity(delegated.ex.meeting, location="Кабинет 505")
    report = delegated.sync(full=True)
    assert report.problems == 1 and report.messages == 0
    (overview,) = delegated.app.store.overview(delegated.ex.meeting)
    assert overview.last_problem is not None
    assert overview.last_problem.startswith("not_logged_in:")
    assert len(fake_graph.messages()) == 1  # only the first send


def test_login_is_only_for_delegated_mode(graph_world: World) -> None:
    path = write_config(
        graph_world.tmp / "app.yaml",
        base_config(graph_world.crm, graph_world.tmp, **graph_world.sections),
    )
    err = io.StringIO()
    code = cli.main(
        ["--config", str(path), "--lang", "en", "login", "--as", "Supervisor"],
        out=io.StringIO(),
        err=err,
    )
    assert code == 2
    assert "graph.mode: delegated" in err.getvalue()


def test_login_for_an_unknown_crm_user_is_refused(delegated: World) -> None:
    err = io.StringIO()
    code = cli.main(
        ["--config", str(config_file(delegated)), "login", "--as", "Ghost"],
        out=io.StringIO(),
        err=err,
    )
    assert code == 3
    assert "Ghost" in err.getvalue()


def test_delegated_mode_requires_a_token_cache_key(
    sqlite_crm: CrmDb, tmp_path: Path, fake_graph: FakeGraph
) -> None:
    sections = graph_sections(fake_graph, delegated=True)
    del sections["state"]
    with pytest.raises(ConfigError) as invalid:
        parse_config(base_config(sqlite_crm, tmp_path, **sections))
    assert "state.token_cache_key" in invalid.value.message("en")


def test_a_token_cache_copied_onto_another_login_does_not_decrypt(delegated: World) -> None:
    vault = TokenVault(delegated.app.store, TOKEN_CACHE_KEY)
    blob = vault.save("Supervisor", '{"RefreshToken": {}}')
    delegated.app.store.put_token_cache("Stas", blob, delegated.clock.now)
    with pytest.raises(VaultError):
        vault.load("Stas")
    assert vault.load("SUPERVISOR") == '{"RefreshToken": {}}'
    other_key = TokenVault(delegated.app.store, "another-token-cache-key-0123456789abcdef")
    with pytest.raises(VaultError):
        other_key.load("Supervisor")
