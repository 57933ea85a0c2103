"""Configuration: validated at start, every problem reported at once with its path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from connector.config import load_config, parse_config
from mapping.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def problems(
    raw: object, env: dict[str, str] | None = None, lang: str = "en"
) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as failed:
        parse_config(raw, env or {}, lang)
    return failed.value.problems


def test_minimal_config_gets_documented_defaults() -> None:
    c = parse_config({"crm": {"url": "sqlite:///crm.db"}}, {})
    assert c.transport == "directory"
    assert c.crm.names.invitation_flag == "UsrInvitationAvailable"
    assert c.crm.names.location == "Location"
    assert c.crm.names.invitation_mailbox_setting == "UsrInvitationMailbox"
    assert c.invitations.language == "ru" and c.invitations.default_timezone == "Europe/Moscow"
    assert c.mailboxes.max_recipients_per_message == 500 and c.mailboxes.rate_per_minute == 30


def test_missing_crm_url_is_reported_with_its_path() -> None:
    assert ("crm.url", "field required") in problems({"crm": {}})


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        {
            "crm": {"url": "not a url", "names": {"location": "Location; DROP TABLE x"}},
            "transport": "pigeon",
            "mailboxes": {"fallback": "nobody", "users": {"Stas": "bad address"}},
            "invitations": {"default_timezone": "Mars/Olympus", "language": "de"},
            "surprise": 1,
        }
    )
    paths = [path for path, _ in found]
    for expected in (
        "crm.url",
        "crm.names",
        "transport",
        "mailboxes.fallback",
        "mailboxes.users",
        "invitations.default_timezone",
        "invitations.language",
        "surprise",
    ):
        assert expected in paths, (expected, found)


def test_environment_variables_are_expanded_and_missing_ones_reported() -> None:
    c = parse_config(
        {
            "crm": {"url": "postgresql+psycopg://u:${DB_PASS}@h/db"},
            "mailboxes": {"fallback": "${FALLBACK:-inv@x.ru}"},
        },
        {"DB_PASS": "s3cret"},
    )
    assert "s3cret" in c.crm.url and c.mailboxes.fallback == "inv@x.ru"
    assert "s3cret" in c.secrets()
    found = problems({"crm": {"url": "${NOPE}"}, "api": {"tokens": ["${TOKEN}"]}})
    assert ("crm.url", "environment variable NOPE is not set") in found
    assert ("api.tokens[0]", "environment variable TOKEN is not set") in found


def test_messages_in_russian() -> None:
    found = problems({"crm": {}, "extra": 1}, lang="ru")
    assert ("crm.url", "обязательное поле не задано") in found
    assert ("extra", "неизвестный ключ") in found


def test_graph_transport_needs_its_section() -> None:
    found = problems({"crm": {"url": "sqlite://"}, "transport": "graph"})
    assert any("graph section is missing" in text for _, text in found)


def test_file_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as missing:
        load_config(tmp_path / "nope.yaml")
    assert "file not found" in missing.value.message("en")
    bad = tmp_path / "bad.yaml"
    bad.write_text("crm: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError) as broken:
        load_config(bad)
    assert "line 2" in broken.value.message("en") or "line 1" in broken.value.message("en")
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        load_config(listy)


def test_example_config_is_valid() -> None:
    c = load_config(ROOT / "config.example.yaml", {"CRM_DB_PASSWORD": "x"})
    assert c.crm.db_schema == "public"


def test_cli_reports_config_errors_with_exit_code_2(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("crm: {}\nbogus: 1\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "connector", "--config", str(config), "--lang", "en", "status"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "crm.url: field required" in done.stderr
    assert "bogus: unknown key" in done.stderr
    assert "Traceback" not in done.stderr
