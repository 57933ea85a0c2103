"""Every kind of configuration mistake: one clear message, exit code 2, nothing sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cli import run_cli, write_config
from tests.support.world import World, base_config


def graph_section(**extra: Any) -> dict[str, Any]:
    return {
        "tenant_id": "contoso",
        "client_id": "app",
        "authority_host": "https://127.0.0.1:9",
        "base_url": "https://127.0.0.1:9/v1.0",
        **extra,
    }


def variant(world: World, tmp: Path, name: str) -> tuple[Path, str]:
    """A broken config file and the text its message must contain."""
    good = base_config(world.crm, tmp)
    path = tmp / f"{name}.yaml"
    if name == "missing_file":
        return path, "file not found"
    if name == "bad_yaml":
        path.write_text("crm:\n  url: [unclosed\n", encoding="utf-8")
        return path, "line "
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "unknown_key": ({**good, "mailbox": {"fallback": "x@y.ru"}}, "mailbox: unknown key"),
        "unknown_nested_key": (
            {**good, "sync": {"intervall_seconds": 5}},
            "sync.intervall_seconds: unknown key",
        ),
        "bad_crm_url": (
            {**good, "crm": {"url": "bpmsoft database please"}},
            "crm.url: not a valid SQLAlchemy database URL",
        ),
        "http_graph_url": (
            {
                **good,
                "transport": "graph",
                "graph": graph_section(client_secret="s", base_url="http://graph.local/v1.0"),
            },
            "base_url must be an https:// URL",
        ),
        "missing_secret_variable": (
            {
                **good,
                "transport": "graph",
                "graph": graph_section(client_secret="${GRAPH_SECRET_NOT_SET}"),
            },
            "graph.client_secret: environment variable GRAPH_SECRET_NOT_SET is not set",
        ),
        "missing_certificate": (
            {
                **good,
                "transport": "graph",
                "graph": graph_section(certificate={"pfx_path": str(tmp / "nope.pfx")}),
            },
            "graph.certificate.pfx_path: cannot read",
        ),
        "garbage_certificate": (
            {
                **good,
                "transport": "graph",
                "graph": graph_section(
                    certificate={"pfx_path": str(tmp / "garbage.pfx"), "passphrase": "x"}
                ),
            },
            "not a usable certificate or key",
        ),
        "certificate_is_a_folder": (
            {
                **good,
                "transport": "graph",
                "graph": graph_section(
                    certificate={"pem_path": str(tmp), "public_certificate_path": str(tmp)}
                ),
            },
            "is a folder, not a file",
        ),
    }
    (tmp / "garbage.pfx").write_bytes(b"\x00not a pkcs12 file")
    data, expected = cases[name]
    write_config(path, data)
    return path, expected


CASES = [
    "missing_file",
    "bad_yaml",
    "unknown_key",
    "unknown_nested_key",
    "bad_crm_url",
    "http_graph_url",
    "missing_secret_variable",
    "missing_certificate",
    "garbage_certificate",
    "certificate_is_a_folder",
]


@pytest.mark.parametrize("name", CASES)
def test_config_mistake_is_one_clear_message_and_nothing_is_sent(
    world: World, tmp_path: Path, name: str
) -> None:
    config, expected = variant(world, tmp_path, name)
    done = run_cli(
        "--config",
        str(config),
        "--lang",
        "en",
        "invite",
        str(world.ex.meeting),
        "--as",
        "Supervisor",
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert expected in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert done.stderr.startswith(("The configuration has errors", "Invalid usage"))
    assert not (tmp_path / "outbox").exists()
    assert world.app.store.messages() == []


def test_messages_are_in_russian_by_default(world: World, tmp_path: Path) -> None:
    config, _ = variant(world, tmp_path, "unknown_key")
    done = run_cli("--config", str(config), "status")
    assert done.returncode == 2
    assert "Ошибки в конфигурации (1):" in done.stderr
    assert "mailbox: неизвестный ключ" in done.stderr


def test_every_problem_of_a_file_is_listed(world: World, tmp_path: Path) -> None:
    data = base_config(world.crm, tmp_path)
    data["crm"]["url"] = "nonsense"
    data["transport"] = "smtp"
    data["smtp"] = {"port": 99999}
    data["extra"] = True
    config = write_config(tmp_path / "many.yaml", data)
    done = run_cli("--config", str(config), "--lang", "en", "status")
    assert done.returncode == 2
    lines = [line.strip() for line in done.stderr.splitlines()[1:]]
    assert {line.split(":")[0] for line in lines} >= {"crm.url", "smtp.host", "smtp.port", "extra"}
    assert yaml.safe_load(config.read_text())["extra"] is True
