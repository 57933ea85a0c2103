"""Configuration of the Graph and SMTP transports: the commented examples are valid, and every
problem is reported with its path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.config import parse_config
from mapping.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    "CRM_DB_PASSWORD": "x",
    "GRAPH_CLIENT_SECRET": "s",
    "SMTP_PASSWORD": "p",
    "CONNECTOR_TOKEN_CACHE_KEY": "k" * 40,
}


def example_with(section: str) -> dict[str, Any]:
    """config.example.yaml with the commented ``section:`` block switched on."""
    lines = (ROOT / "config.example.yaml").read_text(encoding="utf-8").splitlines()
    out, inside = [], False
    for line in lines:
        if line.startswith(f"# {section}:"):
            inside = True
        elif inside and not line.startswith("#"):
            inside = False
        out.append(line[2:] if inside else line)
    data = yaml.safe_load("\n".join(out))
    assert section in data
    data["transport"] = section
    return dict(data)


@pytest.mark.parametrize("section", ["graph", "smtp"])
def test_commented_example_sections_are_valid(section: str) -> None:
    config = parse_config(example_with(section), ENV)
    assert config.transport == section


def test_example_graph_section_in_delegated_mode_needs_the_token_key() -> None:
    data = example_with("graph")
    data["graph"]["mode"] = "delegated"
    with pytest.raises(ConfigError) as invalid:
        parse_config(data, ENV)
    assert "state.token_cache_key is required" in invalid.value.message("en")
    data["state"]["token_cache_key"] = "${CONNECTOR_TOKEN_CACHE_KEY}"
    assert parse_config(data, ENV).state.token_cache_key is not None


def problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as invalid:
        parse_config(data, ENV)
    return invalid.value.problems


def test_graph_credentials_and_urls_are_checked() -> None:
    base = example_with("graph")
    both = {**base, "graph": {**base["graph"], "certificate": {"pfx_path": "/x.pfx"}}}
    assert any("exactly one of client_secret or certificate" in t for _, t in problems(both))
    plain = {**base, "graph": {**base["graph"], "base_url": "http://graph.local/v1.0"}}
    assert any("base_url must be an https:// URL" in t for _, t in problems(plain))
    pem = {
        **base,
        "graph": {**base["graph"], "client_secret": None, "certificate": {"pem_path": "/k.pem"}},
    }
    assert any("public_certificate_path" in t for _, t in problems(pem))


def test_short_token_key_and_half_smtp_login_are_reported_together() -> None:
    data = example_with("smtp")
    data["state"]["token_cache_key"] = "short"
    data["smtp"]["password"] = None
    found = problems(data)
    paths = [path for path, _ in found]
    assert "state.token_cache_key" in paths
    assert any("username and password" in text for _, text in found)
