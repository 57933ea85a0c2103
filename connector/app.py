"""Wiring: build every piece from the config once, hand them to the commands."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from connector.config import Config
from connector.crm.adapter import SqlCrm
from connector.delivery import Deliverer
from connector.limits import MailboxLimiter
from connector.ports import Transport
from connector.service import InvitationService
from connector.state.store import StateStore
from connector.transports.factory import make_transport


def utcnow() -> datetime:
    return datetime.now(UTC)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class App:
    config: Config
    crm: SqlCrm
    store: StateStore
    transport: Transport
    limiter: MailboxLimiter
    deliverer: Deliverer
    service: InvitationService
    worker: str
    clock: Callable[[], datetime]

    def close(self) -> None:
        self.transport.close()
        self.store.close()
        self.crm.engine.dispose()


def build_app(
    config: Config,
    *,
    clock: Callable[[], datetime] = utcnow,
    transport: Transport | None = None,
    limiter: MailboxLimiter | None = None,
    wrap_transport: Callable[[Transport], Transport] | None = None,
) -> App:
    """Build every piece once. ``wrap_transport`` decorates the configured transport (tests
    record envelopes with it); the one limiter is shared by every path that sends."""
    crm = SqlCrm.from_url(
        config.crm.url,
        config.crm.names.to_names(),
        schema=config.crm.db_schema,
        cancelled_status_ids=config.crm.cancelled_status_ids,
        read_only=config.crm.read_only,
        batch_size=config.crm.batch_size,
    )
    store = StateStore.from_url(config.state.url, config.state.busy_timeout_seconds)
    transport = transport or make_transport(config, store)
    if wrap_transport is not None:
        transport = wrap_transport(transport)
    limiter = limiter or MailboxLimiter(
        config.mailboxes.rate_per_minute,
        config.mailboxes.max_concurrent,
        window_seconds=config.mailboxes.rate_window_seconds,
    )
    worker = worker_name()
    deliverer = Deliverer(store, transport, limiter, config.delivery, worker=worker, clock=clock)
    service = InvitationService(config, crm, store, deliverer, clock)
    return App(config, crm, store, transport, limiter, deliverer, service, worker, clock)
