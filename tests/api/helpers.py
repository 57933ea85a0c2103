"""Small real pieces for the API tests: tokens, transports that fail, a service for delegated
sending, and the refusal scenarios of the manual built in the example CRM."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import delete

from connector.app import App, build_app
from connector.crm.sample import CANCELLED_STATUS
from connector.ports import Envelope
from mapping.errors import PermanentDeliveryError, TransientDeliveryError
from tests.support.world import World

TOKEN = "crm-server-token-0123456789abcdef"
SECOND_TOKEN = "second-caller-token-fedcba9876543210"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PARTICIPANTS = ["denis@ivanov.by", "dasha@ivanov.by", "liza@ivanov.by"]


class RefusingMailServer:
    """A transport whose mail system answers 403 for every message (e.g. SendAs denied)."""

    name = "refusing"

    def __init__(self) -> None:
        self.calls = 0

    def send(self, envelope: Envelope) -> str:
        self.calls += 1
        raise PermanentDeliveryError(
            status=403, remote_code="ErrorSendAsDenied", detail="SendAs denied for this mailbox"
        )

    def close(self) -> None:
        return None


class UnreachableMailServer:
    """A transport whose mail system cannot be reached (a transient failure)."""

    name = "unreachable"

    def send(self, envelope: Envelope) -> str:
        raise TransientDeliveryError(status=503, detail="mail server unreachable")

    def close(self) -> None:
        return None


class TokenlessGraph:
    """A transport that can tell whether it is ready, and is not: no token can be obtained."""

    name = "graph"

    def __init__(self) -> None:
        self.stats = {"throttled": 3, "token_refreshes": 2, "label": "not a number"}

    def ready(self) -> None:
        raise TransientDeliveryError(status=None, detail="token endpoint unreachable")

    def send(self, envelope: Envelope) -> str:
        return "ok"

    def close(self) -> None:
        return None


@contextmanager
def app_with(world: World, transport: Any) -> Iterator[App]:
    """A second App on the world's databases with another transport."""
    app = build_app(world.config, clock=world.clock, transport=transport)
    try:
        yield app
    finally:
        app.close()


# -- refusal scenarios: each returns (activity id, login) that the service refuses ------------
def _meeting(w: World) -> tuple[UUID, str]:
    return w.ex.meeting, "Supervisor"


def not_found(w: World) -> tuple[UUID, str]:
    return uuid4(), "Supervisor"


def user_not_found(w: World) -> tuple[UUID, str]:
    return w.ex.meeting, "Ghost"


def user_inactive(w: World) -> tuple[UUID, str]:
    w.writer.user("Sleepy", w.writer.contact("Спящий Семён", "sleepy@ivanov.ru"), active=False)
    return w.ex.meeting, "Sleepy"


def category_not_enabled(w: World) -> tuple[UUID, str]:
    start = w.clock.now + timedelta(days=1)
    activity = w.writer.activity(
        "Звонок клиенту",
        start,
        start + timedelta(minutes=15),
        category_id=w.ex.categories["Звонок"],
        location="Кабинет 404",
        participants=[w.ex.denis],
    )
    return activity, "Supervisor"


def no_mailbox(w: World) -> tuple[UUID, str]:
    with w.writer.engine.begin() as conn:
        conn.execute(delete(w.writer.t.sys_settings_value))
    w.writer.user("Lonely", w.writer.contact("Одинокий Олег", "oleg@ivanov.ru"))
    return w.ex.meeting, "Lonely"


def no_mailbox_rights(w: World) -> tuple[UUID, str]:
    w.writer.user("Nobody", w.writer.contact("Безправ Борис", "boris@ivanov.ru"))
    return w.ex.meeting, "Nobody"


def invalid_time(w: World) -> tuple[UUID, str]:
    start = w.clock.now + timedelta(days=1)
    activity = w.writer.activity(
        "Встреча наоборот",
        start,
        start - timedelta(hours=1),
        location="Кабинет 404",
        participants=[w.ex.denis],
    )
    return activity, "Supervisor"


def meeting_cancelled(w: World) -> tuple[UUID, str]:
    start = w.clock.now + timedelta(days=1)
    activity = w.writer.activity(
        "Отменённая встреча",
        start,
        start + timedelta(hours=1),
        location="Кабинет 404",
        status_id=CANCELLED_STATUS,
        participants=[w.ex.denis],
    )
    return activity, "Supervisor"


def location_empty(w: World) -> tuple[UUID, str]:
    w.writer.update_activity(w.ex.meeting, location="")
    return _meeting(w)


#: refusals of both the dialog (GET) and the send (POST), with the expected HTTP status
DIALOG_REFUSALS: dict[str, tuple[Callable[[World], tuple[UUID, str]], int]] = {
    "not_found": (not_found, 404),
    "user_not_found": (user_not_found, 404),
    "user_inactive": (user_inactive, 403),
    "category_not_enabled": (category_not_enabled, 409),
    "no_mailbox": (no_mailbox, 409),
    "no_mailbox_rights": (no_mailbox_rights, 403),
    "invalid_time": (invalid_time, 409),
    "meeting_cancelled": (meeting_cancelled, 409),
}


def recipients_of(envelopes: Sequence[Envelope]) -> list[list[str]]:
    return [sorted(e.recipients) for e in envelopes]
