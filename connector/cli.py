"""The ``connector`` command line: parsing, the error-to-exit-code mapping, and dispatch.

Exit codes: 0 done, 1 unexpected, 2 usage or configuration error, 3 refused by a rule,
4 delivery failed. Messages go to the user in Russian or English (``--lang``, else
``CONNECTOR_LANG``, else ``invitations.language`` of the config, else Russian).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from connector import __version__
from connector.app import App, build_app
from connector.config import Config, load_config
from connector.logs import setup_logging
from mapping.errors import ConnectorError, UsageError, describe
from mapping.messages import normalise_language, render

log = logging.getLogger("connector.cli")

Handler = Callable[[argparse.Namespace, "Context"], int]


@dataclass
class Context:
    """What a command handler gets: the language, output streams, lazily loaded config/app."""

    config_path: Path
    lang_option: str | None
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    err: IO[str] = field(default_factory=lambda: sys.stderr)
    log_level: str | None = None
    _config: Config | None = None
    _app: App | None = None

    @property
    def lang(self) -> str:
        if self.lang_option:
            return self.lang_option
        if self._config is not None:
            return self._config.invitations.language
        return normalise_language(os.environ.get("CONNECTOR_LANG"), "ru")

    def t(self, code: str, **params: Any) -> str:
        return render(code, self.lang, params)

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path, language=self.lang)
            setup_logging(
                self.log_level or self._config.logging.level,
                self._config.logging.format,
                self._config.secrets(),
            )
        return self._config

    def use_config(self, config: Config) -> None:
        self._config = config
        setup_logging(
            self.log_level or config.logging.level, config.logging.format, config.secrets()
        )

    @property
    def app(self) -> App:
        if self._app is None:
            self._app = build_app(self.config)
        return self._app

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
            self._app = None


def _registrars() -> list[Callable[[Any], None]]:
    from connector.commands import check, demo, invite, login, serve, service, status

    return [
        demo.register,
        invite.register,
        status.register,
        service.register,
        serve.register,
        login.register,
        check.register,
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="connector",
        description="Outlook meeting invitations for BPMSoft activities (Graph, SMTP, folder).",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=Path(os.environ.get("CONNECTOR_CONFIG", "config.yaml")),
        help="YAML configuration file (default: $CONNECTOR_CONFIG or ./config.yaml)",
    )
    parser.add_argument("--lang", choices=["ru", "en"], help="language of messages")
    parser.add_argument(
        "--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level"
    )
    parser.add_argument("--version", action="version", version=f"connector {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _registrars():
        register(commands)
    return parser


def main(
    argv: Sequence[str] | None = None, *, out: IO[str] | None = None, err: IO[str] | None = None
) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its message
        return int(exc.code or 0) if exc.code in (0, None) else 2
    ctx = Context(
        config_path=args.config,
        lang_option=args.lang,
        out=out or sys.stdout,
        err=err or sys.stderr,
        log_level=args.log_level,
    )
    if not args.command:
        parser.print_help(ctx.out)
        return 2
    setup_logging(args.log_level or "WARNING")
    handler: Handler = args.handler
    try:
        return handler(args, ctx)
    except ConnectorError as error:
        ctx.err.write(error.message(ctx.lang) + "\n")
        log.info("event=command_refused command=%s code=%s", args.command, error.code)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        log.exception("event=command_crashed command=%s", args.command)
        ctx.err.write(describe(error, ctx.lang) + "\n")
        return 1
    finally:
        ctx.close()


def parse_uuid(value: str) -> Any:
    """argparse type for activity ids."""
    import uuid

    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an activity id (UUID): {value[:60]!r}") from None


__all__ = ["Context", "UsageError", "main", "parse_uuid"]
