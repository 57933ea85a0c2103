"""``connector serve``: the HTTP API and the dialog, without the scheduler."""

from __future__ import annotations

import argparse
from typing import Any

from connector.cli import Context
from mapping.errors import UsageError


def register(commands: Any) -> None:
    serve = commands.add_parser(
        "serve", help="serve the HTTP API and the invitation dialog (no scheduler)"
    )
    serve.add_argument(
        "--listen", metavar="HOST:PORT", help="override api.listen (port 0: any free port)"
    )
    serve.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace, ctx: Context) -> int:
    from connector.api import server_for
    from connector.config import ApiConfig
    from connector.runner import wait_for_signal

    if not ctx.config.api.enabled:
        raise UsageError(detail="the HTTP API is disabled (api.enabled: false)")
    listen = None
    if args.listen:
        try:
            listen = ApiConfig.model_validate({"listen": args.listen}).listen
        except ValueError:
            raise UsageError(detail=f"--listen {args.listen[:60]}: expected HOST:PORT") from None
    server = server_for(ctx.app, listen)
    server.start()
    ctx.print(ctx.t("serving", url=server.base_url))
    wait_for_signal(server.stop, extra=server.finished)
    if server.failed:
        ctx.err.write(ctx.t("server_died") + "\n")
        return 1
    ctx.print(ctx.t("stopped"))
    return 0
