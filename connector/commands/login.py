"""``connector login --as LOGIN``: sign a CRM user in to Microsoft 365 (delegated mode).

Runs msal's device-code flow: prints the verification address and the code, waits until the
person has signed in (or the code expires, or ``--timeout``), then stores that user's msal token
cache encrypted in the state store. Later sends as this CRM user take their tokens from it.
"""

from __future__ import annotations

import argparse
from typing import Any

from connector.cli import Context
from connector.graph_auth import DelegatedTokens
from mapping.errors import DeliveryError, UsageError


def register(commands: Any) -> None:
    login = commands.add_parser(
        "login", help="sign a CRM user in to Microsoft 365 (graph.mode: delegated)"
    )
    login.add_argument("--as", dest="login", required=True, metavar="LOGIN", help="CRM login")
    login.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="stop waiting after SECONDS (default: until the code expires)",
    )
    login.set_defaults(handler=run_login)


def run_login(args: argparse.Namespace, ctx: Context) -> int:
    config = ctx.config
    graph = config.graph
    if config.transport != "graph" or graph is None or graph.mode != "delegated":
        raise UsageError(
            "login_not_delegated",
            transport=config.transport,
            mode=graph.mode if graph is not None else "-",
        )
    app = ctx.app
    user = app.service.user(args.login)  # unknown or inactive CRM users are refused
    tokens = getattr(app.transport, "tokens", None)
    if not isinstance(tokens, DelegatedTokens):
        raise UsageError("login_not_delegated", transport=app.transport.name, mode=graph.mode)

    def show(flow: dict[str, Any]) -> None:
        minutes = max(1, round(int(flow.get("expires_in", 900)) / 60))
        ctx.print(
            ctx.t(
                "login_instructions",
                login=user.login,
                url=flow.get("verification_uri") or flow.get("verification_url", "?"),
                user_code=flow["user_code"],
                minutes=minutes,
            )
        )

    try:
        account = tokens.login(user.login, show, timeout_seconds=args.timeout)
    except DeliveryError as error:
        ctx.err.write(ctx.t("login_failed", detail=error.detail or error.code) + "\n")
        return 1
    ctx.print(ctx.t("login_done", account=account, login=user.login))
    return 0
