"""A BPMSoft-shaped CRM with the manual's example, a config and the wired connector."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import create_engine

from connector.app import App, build_app
from connector.config import Config, parse_config
from connector.crm.sample import CrmWriter, ManualExample, manual_example
from connector.ports import Envelope, Transport
from connector.service import Draft, InviteResult
from connector.sync import CycleReport, SyncService
from tests.support.checkers import ParsedInvitation, parse_message

#: a Monday morning; the example meeting is two days later
T0 = datetime(2030, 3, 4, 8, 0, tzinfo=UTC)


class Clock:
    """A clock the tests move by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class Recording:
    """A transport wrapper that keeps every envelope it handed over, in order (the real
    transport underneath does the work; ``stats``, ``check_sender`` and ``ready`` are passed
    through)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.name = f"recording({inner.name})"
        self.envelopes: list[Envelope] = []

    @property
    def stats(self) -> dict[str, int]:
        return dict(getattr(self.inner, "stats", {}))

    def check_sender(self, login: str, mailbox: str) -> None:
        check = getattr(self.inner, "check_sender", None)
        if check is not None:
            check(login, mailbox)

    def ready(self) -> None:
        ready = getattr(self.inner, "ready", None)
        if ready is not None:
            ready()

    def send(self, envelope: Envelope) -> str:
        receipt = self.inner.send(envelope)
        self.envelopes.append(envelope)
        return receipt

    def close(self) -> None:
        self.inner.close()


def _recording(app: App) -> Recording:
    assert isinstance(app.transport, Recording)
    return app.transport


@dataclass
class CrmDb:
    url: str
    schema: str | None
    kind: str


def base_config(crm: CrmDb, tmp: Path, /, **sections: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "crm": {"url": crm.url, **({"db_schema": crm.schema} if crm.schema else {})},
        "state": {"url": f"sqlite:///{tmp / 'state.db'}"},
        "transport": "directory",
        "directory": {"path": str(tmp / "outbox")},
        "invitations": {"uid_domain": "ivanov.ru"},
        "delivery": {"retry_max_seconds": 0},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


@dataclass
class World:
    crm: CrmDb
    tmp: Path
    writer: CrmWriter
    ex: ManualExample
    clock: Clock
    config: Config
    app: App
    transport: Recording
    apps: list[App] = field(default_factory=list)
    #: the config sections given to make_world; reconfigure() starts from them
    sections: dict[str, Any] = field(default_factory=dict)

    def ex_start(self) -> datetime:
        return T0 + timedelta(days=2, hours=2)

    @property
    def outbox(self) -> Path:
        return self.tmp / "outbox"

    def invite(
        self, login: str = "Supervisor", activity: UUID | None = None, **kwargs: Any
    ) -> InviteResult:
        return self.app.service.invite(activity or self.ex.meeting, login, **kwargs)

    def draft(self, login: str = "Supervisor", activity: UUID | None = None) -> Draft:
        return self.app.service.draft(activity or self.ex.meeting, login)

    def sync(self, *, full: bool = False) -> CycleReport:
        """One cycle of the sync service, as ``connector sync`` runs it."""
        return SyncService(self.app).cycle(full=full)

    def sent(self) -> list[ParsedInvitation]:
        return [parse_message(e.mime) for e in self.transport.envelopes]

    def envelopes(self) -> list[Envelope]:
        return list(self.transport.envelopes)

    def reconfigure(self, **sections: Any) -> None:
        """Rebuild the app with changed config sections (same databases); the sections given
        to make_world stay unless replaced."""
        self.config = parse_config(base_config(self.crm, self.tmp, **{**self.sections, **sections}))
        self.app.close()
        self.app = build_app(self.config, clock=self.clock, wrap_transport=Recording)
        self.transport = _recording(self.app)

    def close(self) -> None:
        self.app.close()
        self.writer.engine.dispose()


def make_world(crm: CrmDb, tmp: Path, *, setting_as_lookup: bool = True, **sections: Any) -> World:
    engine = create_engine(crm.url)
    clock = Clock()
    writer = CrmWriter(engine, schema=crm.schema, clock=clock)
    example = manual_example(
        writer, start=T0 + timedelta(days=2, hours=2), setting_as_lookup=setting_as_lookup
    )
    config = parse_config(base_config(crm, tmp, **sections))
    app = build_app(config, clock=clock, wrap_transport=Recording)
    return World(
        crm, tmp, writer, example, clock, config, app, _recording(app), sections=dict(sections)
    )
