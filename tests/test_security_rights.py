"""Nobody sends where they may not: every path checks the CRM's rights before anything is
recorded or sent, recipients can only be participants, configured names cannot reach SQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import parse_config
from mapping.errors import ConfigError, Refusal
from tests.support.cli import run_cli, write_config
from tests.support.world import World, base_config


def test_a_user_cannot_send_from_another_users_personal_mailbox(world: World) -> None:
    w = world
    assert w.invite("Supervisor").delivered  # the organizer is Supervisor's own mailbox
    w.writer.update_activity(w.ex.meeting, location="Кабинет 505")
    with pytest.raises(Refusal) as refused:
        w.invite("Stas")  # Stas may use the shared mailbox, not Supervisor's
    assert refused.value.code == "no_mailbox_rights"
    assert refused.value.params["mailbox"] == "ivanov@ivanov.ru"
    assert len(w.envelopes()) == 1
    state = w.app.store.get_state(w.ex.meeting)
    assert state is not None and state.sequence == 0  # nothing was recorded either


def test_a_delegated_right_on_that_mailbox_allows_the_update(world: World) -> None:
    w = world
    assert w.invite("Supervisor").delivered
    w.writer.grant(w.ex.personal_mailbox, w.ex.stas, level=1)
    w.writer.update_activity(w.ex.meeting, location="Кабинет 505")
    result = w.invite("Stas")
    assert result.delivered and result.sender == "ivanov@ivanov.ru"
    assert w.envelopes()[-1].sender_login == "Stas"


def test_the_cli_path_refuses_without_the_right_and_records_nothing(
    world: World, tmp_path: Path
) -> None:
    w = world
    w.writer.user("Boris", w.writer.contact("Борис", "boris@ivanov.ru"))
    cfg = write_config(tmp_path / "c.yaml", base_config(w.crm, tmp_path))
    for args in (["invite"], ["invite", "--dry-run"], ["draft"]):
        done = run_cli("--config", str(cfg), args[0], str(w.ex.meeting), "--as", "Boris", *args[1:])
        assert done.returncode == 3, done.stderr
        assert "нет прав на отправку писем" in done.stderr
    assert w.app.store.messages() == [] and w.app.store.get_state(w.ex.meeting) is None
    assert not (tmp_path / "outbox").exists()


def test_the_cli_cannot_add_a_non_participant(world: World, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", base_config(world.crm, tmp_path))
    done = run_cli(
        "--config",
        str(cfg),
        "invite",
        str(world.ex.meeting),
        "--as",
        "Supervisor",
        "--to",
        "dasha@ivanov.by",
        "--to",
        "spy@evil.example",
    )
    assert done.returncode == 3 and "spy@evil.example" in done.stderr
    assert not (tmp_path / "outbox").exists()


def test_the_yaml_fallback_does_not_bypass_crm_rights(world: World) -> None:
    world.reconfigure(mailboxes={"fallback": "somewhere@ivanov.ru"})
    with pytest.raises(Refusal) as refused:
        world.invite("Stas")  # no CRM mailbox record, so nobody can hold a right on it
    assert refused.value.code == "no_mailbox_rights"


@pytest.mark.parametrize(
    ("section", "value"),
    [
        ({"names": {"location": 'Location" ; DROP TABLE "Activity"; --'}}, "names"),
        ({"names": {"invitation_flag": "Usr Flag"}}, "names"),
        ({"names": {"location": "Ло\u0441ation"}}, "names"),
        ({"db_schema": "public; DROP SCHEMA public"}, "db_schema"),
    ],
)
def test_configured_identifiers_cannot_inject_sql(section: dict[str, object], value: str) -> None:
    with pytest.raises(ConfigError) as failed:
        parse_config({"crm": {"url": "sqlite://", **section}}, {})
    assert any(path.startswith(f"crm.{value}") for path, _ in failed.value.problems)


def test_setting_codes_are_data_not_sql(world: World) -> None:
    code = "UsrInvitationMailbox' OR '1'='1"
    world.reconfigure(crm={"names": {"invitation_mailbox_setting": code}})
    from sqlalchemy import delete

    with world.writer.engine.begin() as conn:
        conn.execute(delete(world.writer.t.sys_settings_value))
    with pytest.raises(Refusal) as refused:
        world.invite("Stas")
    assert refused.value.code == "no_mailbox"  # the quote matched nothing
