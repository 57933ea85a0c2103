"""``connector draft`` (the dialog of figure 2.4) and ``connector invite`` (the button)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from connector.cli import Context, parse_uuid
from connector.service import InviteResult
from connector.views import draft_as_dict, result_as_dict
from mapping.body import format_when
from mapping.errors import Refusal
from mapping.model import SenderKind


def register(commands: Any) -> None:
    draft = commands.add_parser("draft", help="show the recipient dialog of an activity")
    draft.add_argument("activity", type=parse_uuid, metavar="ACTIVITY_ID")
    draft.add_argument("--as", dest="login", required=True, metavar="LOGIN", help="CRM login")
    draft.add_argument("--json", action="store_true", help="machine-readable output")
    draft.set_defaults(handler=run_draft)

    invite = commands.add_parser(
        "invite", help="send the invitation (the 'Send invitation' button)"
    )
    invite.add_argument("activity", type=parse_uuid, metavar="ACTIVITY_ID")
    invite.add_argument("--as", dest="login", required=True, metavar="LOGIN", help="CRM login")
    invite.add_argument(
        "--to",
        action="append",
        metavar="CONTACT_ID_OR_EMAIL",
        help="invite only these participants (repeatable); default: all but you",
    )
    invite.add_argument(
        "--without-location", action="store_true", help="send even if the place is empty"
    )
    invite.add_argument("--dry-run", action="store_true", help="plan and build, send nothing")
    invite.add_argument("--json", action="store_true", help="machine-readable output")
    invite.set_defaults(handler=run_invite)


def run_draft(args: argparse.Namespace, ctx: Context) -> int:
    app = ctx.app
    draft = app.service.draft(args.activity, args.login)
    if args.json:
        ctx.print(json.dumps(draft_as_dict(draft, ctx.lang), ensure_ascii=False, indent=2))
        return 0
    m = draft.meeting
    zone = app.service.zone(draft.user)
    ctx.print(f"{m.title}")
    if m.start and m.end:
        ctx.print(f"{ctx.t('label_time')}: {format_when(m.start, m.end, zone, ctx.lang)}")
    ctx.print(f"{ctx.t('label_place')}: {m.location or ctx.t('label_empty')}")
    kind = "label_personal" if draft.sender.kind is SenderKind.PERSONAL else "label_fallback"
    ctx.print(f"{ctx.t('label_sender')}: {draft.sender.address} ({ctx.t(kind)})")
    ctx.print(f"{ctx.t('label_participants')}:")
    for c in draft.candidates:
        mark = "[x]" if c.selected else "[ ]"
        who = f"{c.name} <{c.email}>" if c.email else c.name
        notes = []
        if c.is_current_user:
            notes.append(ctx.t("label_you"))
        if c.problem:
            notes.append(ctx.t(f"problem_{c.problem.value}"))
        extra = f" ({', '.join(notes)})" if notes else ""
        ctx.print(f"  {mark} {who}{extra}  {c.contact_id}")
    if draft.notices:
        ctx.print(f"{ctx.t('label_warnings')}:")
        for n in draft.notices:
            ctx.print(f"  - {ctx.t(n.code, **n.params)}")
    return 0


def _ask_yes_no(ctx: Context, question: str) -> bool:
    ctx.out.write(f"{question} {ctx.t('label_yes_no')} ")
    ctx.out.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes", "д", "да")


def run_invite(args: argparse.Namespace, ctx: Context) -> int:
    app = ctx.app
    without_location = args.without_location
    try:
        result = app.service.invite(
            args.activity,
            args.login,
            args.to,
            without_location=without_location,
            dry_run=args.dry_run,
        )
    except Refusal as refusal:
        interactive = sys.stdin.isatty() and not args.json
        if refusal.code != "location_empty" or not interactive:
            raise
        if not _ask_yes_no(ctx, refusal.message(ctx.lang)):
            ctx.print(ctx.t("label_not_sent"))
            return refusal.exit_code
        result = app.service.invite(
            args.activity, args.login, args.to, without_location=True, dry_run=args.dry_run
        )
    return report(result, ctx, as_json=args.json)


def report(result: InviteResult, ctx: Context, *, as_json: bool) -> int:
    failed = [d for d in result.deliveries if d.status != "sent"]
    # a delivery refused for a reason the user can act on (DeliveryRefused) exits like a
    # refusal (3); any other failed delivery with 4
    code = (failed[0].error.exit_code if failed[0].error else 4) if failed else 0
    if as_json:
        ctx.print(json.dumps(result_as_dict(result, ctx.lang), ensure_ascii=False, indent=2))
        return code
    if result.dry_run:
        ctx.print(ctx.t("dry_run"))
        for o in result.outgoing:
            ctx.print(f"  {o.method.value} SEQUENCE={o.sequence} -> {', '.join(o.recipients)}")
        return 0
    if result.nothing_to_send:
        ctx.print(ctx.t("nothing_to_send"))
        return 0
    sent = result.recipients_sent()
    if sent:
        ctx.print(ctx.t("sent", count=len(sent)))
    for d in result.deliveries:
        outcome = ctx.t(f"outcome_{d.status}")
        ctx.print(f"  {d.method} SEQUENCE={d.sequence} {', '.join(d.recipients)}: {outcome}")
    for c in result.skipped:
        problem = ctx.t(f"problem_{c.problem.value}") if c.problem else ""
        ctx.print(f"  {ctx.t('label_skipped')}: {c.name} ({problem})")
    for d in failed:
        if d.error is not None:
            ctx.err.write(d.error.message(ctx.lang) + "\n")
    return code
