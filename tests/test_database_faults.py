"""The databases failing under the connector: the CRM going away in the middle of a cycle and
coming back, the state store locked by another writer or full. The cycle fails cleanly, the
next one succeeds, nothing is lost and nothing is sent twice."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text

from connector.crm.adapter import CrmUnavailable
from connector.state.store import StateUnavailable
from tests.support.pg import temporary_database
from tests.support.world import CrmDb, World, make_world


@pytest.fixture
def pg_world(tmp_path: Path) -> Iterator[tuple[World, str]]:
    """The manual's example in a PostgreSQL database of its own (so it can be cut off)."""
    with temporary_database("crm_fault") as url:
        w = make_world(CrmDb(url, None, "postgres"), tmp_path)
        yield w, url
        w.close()


def cut_off(url: str, allow: bool) -> None:
    """Refuse (or allow again) connections to the database and drop the existing ones."""
    name = url.rsplit("/", 1)[1]
    admin = create_engine(url.rsplit("/", 1)[0] + "/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}'))
        if not allow:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": name},
            )
    admin.dispose()


def test_crm_going_away_during_a_cycle_and_coming_back(pg_world: tuple[World, str]) -> None:
    w, url = pg_world
    assert w.invite().delivered
    w.clock.advance(minutes=1)
    w.sync()
    w.clock.advance(minutes=1)
    w.writer.update_activity(w.ex.meeting, location="Кабинет 505")
    w.writer.engine.dispose()
    fired = threading.Event()

    def pull_the_plug(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not fired.is_set() and '"ActivityParticipant"' in statement:
            fired.set()  # after the activity page was read, before the participant pages
            cut_off(url, allow=False)

    event.listen(w.app.crm.engine, "after_cursor_execute", pull_the_plug)
    with pytest.raises(CrmUnavailable):
        w.sync()
    assert fired.is_set()
    before = len(w.envelopes())
    cut_off(url, allow=True)
    w.clock.advance(seconds=30)
    report = w.sync()
    assert report.messages == 1
    (update,) = w.sent()[before:]
    assert (update.sequence, update.vevent.location.value) == (1, "Кабинет 505")
    assert w.sync(full=True).messages == 0  # and only once


def test_state_store_locked_by_another_writer(world: World, tmp_path: Path) -> None:
    w = world
    w.reconfigure(state={"busy_timeout_seconds": 0.5})
    assert w.invite().delivered
    w.clock.advance(minutes=1)
    w.sync()
    w.writer.update_activity(w.ex.meeting, location="Кабинет 505")
    blocker = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StateUnavailable):
            w.sync()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    before = len(w.envelopes())
    w.clock.advance(seconds=10)
    assert w.sync().messages == 1
    assert [m.vevent.location.value for m in w.sent()[before:]] == ["Кабинет 505"]


def test_state_store_full(world: World, tmp_path: Path) -> None:
    w = world
    assert w.invite().delivered
    w.clock.advance(minutes=1)
    w.sync()
    store_engine = w.app.store.engine
    pages = sqlite3.connect(tmp_path / "state.db").execute("PRAGMA page_count").fetchone()[0]

    def tiny(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute(f"PRAGMA max_page_count={pages}")

    event.listen(store_engine, "connect", tiny)
    store_engine.dispose()
    w.writer.update_activity(w.ex.meeting, location="Кабинет 505", Notes="x" * 10)
    with pytest.raises(StateUnavailable):
        w.sync()
    assert len(w.envelopes()) == 1
    event.remove(store_engine, "connect", tiny)
    store_engine.dispose()
    w.clock.advance(seconds=10)
    assert w.sync().messages == 1
    assert w.sent()[-1].vevent.location.value == "Кабинет 505"
