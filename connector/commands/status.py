"""``connector status``: the UID map and the message log."""

from __future__ import annotations

import argparse
import json
from typing import Any

from connector.cli import Context, parse_uuid
from connector.state.store import StateStore
from connector.views import message_log, overview_as_dict


def register(commands: Any) -> None:
    status = commands.add_parser("status", help="show the UID map and the message log")
    status.add_argument("activity", nargs="?", type=parse_uuid, metavar="ACTIVITY_ID")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=run_status)


def run_status(args: argparse.Namespace, ctx: Context) -> int:
    store = StateStore.from_url(ctx.config.state.url)
    try:
        items = store.overview(args.activity)
        log = message_log(store, args.activity) if args.activity else []
    finally:
        store.close()
    if args.json:
        data: dict[str, Any] = {"meetings": [overview_as_dict(i) for i in items]}
        if args.activity:
            data["messages"] = log
        ctx.print(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    if not items:
        ctx.print(ctx.t("label_no_meetings"))
        return 0
    for item in items:
        s = item.state
        flag = " CANCELLED" if s.cancelled else ""
        ctx.print(f"{s.activity_id}  {s.snapshot.title}{flag}")
        ctx.print(f"  UID={s.uid} SEQUENCE={s.sequence}")
        ctx.print(f"  organizer={s.organizer.name} <{s.organizer.email}> login={s.sender_login}")
        ctx.print(f"  invited={', '.join(a.email for a in s.invited)}")
        ctx.print(
            f"  last_sent={s.last_sent_at:%Y-%m-%d %H:%M:%S}Z sent={item.sent} "
            f"pending={item.pending} failed={item.failed} parked={item.parked}"
        )
        if item.last_problem:
            ctx.print(f"  problem={item.last_problem}")
    for entry in log:
        ctx.print(
            f"  #{entry['id']} {entry['method']} SEQUENCE={entry['sequence']} "
            f"{entry['status']} attempts={entry['attempts']} "
            f"to={','.join(entry['recipients'])}"
            + (f" error={entry['error_code']}: {entry['error']}" if entry["error"] else "")
        )
    return 0
