"""``connector demo``: the manual's scenario end to end on an embedded SQLite CRM, no network.

1. creates a BPMSoft-shaped CRM with the manual's example (figures 1.1-1.5, 2.1-2.2),
   a config and an outbox folder;
2. shows the recipient dialog and sends the invitation as Supervisor (personal mailbox);
3. moves the meeting to another room and time (figure 2.11) and sends again: an update with the
   same UID and a higher SEQUENCE;
4. sends an invitation as Stas, who has no mailbox of his own, from the shared mailbox on which
   he has the "Send emails" right (figures 1.3-1.4);
5. lists what was sent and where the files are.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine

from connector.cli import Context
from connector.commands.invite import report, run_draft
from connector.config import load_config
from connector.crm.sample import MEETING_CATEGORY, CrmWriter, manual_example

STEPS = {
    "ru": [
        "1. Демонстрационная CRM (пример из инструкции): {crm}",
        "2. Окно выбора получателей для «{title}» (пользователь Supervisor):",
        "3. Отправка приглашения:",
        "4. Место и время встречи изменены: «{place}», {when}. Повторная отправка:",
        "5. Stas без личной почты отправляет приглашение на «{title}» с общей почты:",
        "6. Отправленные письма ({count}) в папке {outbox}:",
        "Состояние: connector --config {config} status",
    ],
    "en": [
        "1. Demo CRM (the manual's example): {crm}",
        "2. Recipient dialog for '{title}' (user Supervisor):",
        "3. Sending the invitation:",
        "4. The meeting moved to '{place}', {when}. Sending again:",
        "5. Stas, who has no mailbox of his own, invites to '{title}' from the shared mailbox:",
        "6. Messages sent ({count}) in {outbox}:",
        "State: connector --config {config} status",
    ],
}


def register(commands: Any) -> None:
    demo = commands.add_parser("demo", help="run the manual's scenario on an embedded SQLite CRM")
    demo.add_argument(
        "--dir",
        type=Path,
        default=Path("demo-output"),
        help="working folder (default: ./demo-output)",
    )
    demo.set_defaults(handler=run_demo)


def _next_meeting_start(now: datetime) -> datetime:
    """Next week's Wednesday at 13:00 Moscow time (10:00 UTC)."""
    day = now + timedelta(days=7)
    day += timedelta(days=(2 - day.weekday()) % 7)
    return day.replace(hour=10, minute=0, second=0, microsecond=0)


def prepare(folder: Path, lang: str) -> tuple[Path, Any]:
    """Create the CRM database, the config and an empty outbox in ``folder``."""
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("crm.db", "state.db", "state.db-wal", "state.db-shm"):
        (folder / name).unlink(missing_ok=True)
    shutil.rmtree(folder / "outbox", ignore_errors=True)
    engine = create_engine(f"sqlite:///{folder / 'crm.db'}")
    writer = CrmWriter(engine)
    example = manual_example(writer, start=_next_meeting_start(datetime.now(UTC)))
    config = {
        "crm": {"url": f"sqlite:///{folder / 'crm.db'}"},
        "state": {"url": f"sqlite:///{folder / 'state.db'}"},
        "transport": "directory",
        "directory": {"path": str(folder / "outbox")},
        "invitations": {"language": lang, "uid_domain": "ivanov.ru"},
        "logging": {"level": "WARNING"},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path, (writer, example)


def run_demo(args: argparse.Namespace, ctx: Context) -> int:
    lang = ctx.lang
    steps = STEPS[lang]
    config_path, (writer, example) = prepare(args.dir, lang)
    ctx.use_config(load_config(config_path, language=lang))
    ctx.lang_option = lang
    app = ctx.app
    meeting = app.crm.meeting(example.meeting)
    assert meeting is not None

    ctx.print(steps[0].format(crm=args.dir.resolve() / "crm.db"))
    ctx.print()
    ctx.print(steps[1].format(title=meeting.title))
    run_draft(argparse.Namespace(activity=example.meeting, login="Supervisor", json=False), ctx)
    ctx.print()

    ctx.print(steps[2])
    code = report(app.service.invite(example.meeting, "Supervisor"), ctx, as_json=False)
    if code:
        return code
    ctx.print()

    assert meeting.start is not None
    new_start = meeting.start + timedelta(days=2, minutes=-30)
    writer.update_activity(
        example.meeting,
        location="Кабинет 505",
        StartDate=new_start,
        DueDate=new_start + timedelta(hours=1),
    )
    from mapping.body import format_when

    when = format_when(
        new_start,
        new_start + timedelta(hours=1),
        app.service.zone(app.service.user("Supervisor")),
        lang,
    )
    ctx.print(steps[3].format(place="Кабинет 505", when=when))
    code = report(app.service.invite(example.meeting, "Supervisor"), ctx, as_json=False)
    if code:
        return code
    ctx.print()

    planning = writer.activity(
        "Планёрка" if lang == "ru" else "Planning",
        new_start + timedelta(days=1),
        new_start + timedelta(days=1, minutes=45),
        category_id=MEETING_CATEGORY,
        location="Переговорная 2",
        owner_contact_id=example.stas_contact,
        participants=[example.stas_contact, example.denis, example.liza],
    )
    ctx.print(steps[4].format(title="Планёрка" if lang == "ru" else "Planning"))
    code = report(app.service.invite(planning, "Stas"), ctx, as_json=False)
    if code:
        return code
    ctx.print()

    outbox = Path(app.config.directory.path)
    files = sorted(outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    ctx.print(steps[5].format(count=len(files), outbox=outbox))
    for file in files:
        msg = email.message_from_bytes(file.read_bytes(), policy=email.policy.default)
        calendar = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
        method = calendar.get_param("method")
        ctx.print(f"  {file.name}")
        ctx.print(f"    {method}  From: {msg['From']}")
        ctx.print(f"    To: {msg['To']}")
        ctx.print(f"    Subject: {msg['Subject']}")
    update = next(f for f in files if "-0001-" in f.name)
    msg = email.message_from_bytes(update.read_bytes(), policy=email.policy.default)
    body = msg.get_body(preferencelist=("plain",))
    ctx.print()
    ctx.print(f"{update.name}:")
    ctx.print(body.get_content().rstrip() if body is not None else "")
    ctx.print()
    ctx.print(steps[6].format(config=config_path))
    return 0
