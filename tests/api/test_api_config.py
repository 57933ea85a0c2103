"""The api: section of the configuration and of config.example.yaml."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from connector.cli import main
from connector.config import parse_config
from mapping.errors import ConfigError
from tests.api.helpers import TOKEN
from tests.support.world import World, base_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"
ENV = {"CRM_DB_PASSWORD": "secret-password", "CONNECTOR_API_TOKEN": TOKEN}


def test_the_example_config_has_a_valid_api_section() -> None:
    config = parse_config(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")), environ=ENV)
    assert [t.get_secret_value() for t in config.api.tokens] == [TOKEN]
    assert config.api.public_url == "https://connector.example.com"
    assert TOKEN in config.secrets()


def test_without_the_variable_the_example_has_no_token() -> None:
    config = parse_config(
        yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")), environ={"CRM_DB_PASSWORD": "x"}
    )
    assert config.api.tokens == []


@pytest.mark.parametrize(
    ("api", "path"),
    [
        ({"listen": "8080"}, "api.listen"),
        ({"public_url": "ftp://x"}, "api.public_url"),
        ({"frame_ancestors": ["*; script-src *"]}, "api.frame_ancestors"),
        ({"link_secret": "short"}, "api.link_secret"),
        ({"failed_auth_limit": 0}, "api.failed_auth_limit"),
        ({"unknown": 1}, "api.unknown"),
    ],
)
def test_api_settings_are_checked(world: World, api: dict[str, object], path: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(base_config(world.crm, world.tmp, api=api))
    assert path in [p for p, _ in error.value.problems]


def test_serve_refuses_when_the_api_is_disabled(world: World) -> None:
    config = world.tmp / "config.yaml"
    data = base_config(world.crm, world.tmp, api={"enabled": False, "tokens": [TOKEN]})
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    err = io.StringIO()
    code = main(["--config", str(config), "--lang", "en", "serve"], out=io.StringIO(), err=err)
    assert code == 2
    assert "api.enabled: false" in err.getvalue()


def test_serve_refuses_a_malformed_listen_option(world: World) -> None:
    config = world.tmp / "config.yaml"
    data = base_config(world.crm, world.tmp, api={"tokens": [TOKEN]})
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    err = io.StringIO()
    code = main(
        ["--config", str(config), "--lang", "en", "serve", "--listen", "localhost"],
        out=io.StringIO(),
        err=err,
    )
    assert code == 2
    assert "--listen localhost: expected HOST:PORT" in err.getvalue()
