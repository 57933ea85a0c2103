"""Two ``connector run`` processes against one PostgreSQL state store share the work and never
send the same message twice (counted by the fake Graph)."""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from connector.state.store import StateStore
from tests.support.deployment import FAKE_SETUP, Deployment, make_deployment, wait_for
from tests.support.fake_graph import start_process

pytestmark = pytest.mark.slow


def test_two_instances_deliver_every_message_exactly_once(
    tmp_path: Path, pg_schema_url: tuple[str, str]
) -> None:
    _, state_url = pg_schema_url
    rng = random.Random(4)
    with start_process(tmp_path / "fake", FAKE_SETUP) as fake:
        d = make_deployment(tmp_path / "site", fake, state_url=state_url)
        ex = d.ex
        start = d.writer.now() + timedelta(days=3)
        meetings = [ex.meeting] + [
            d.writer.activity(
                f"Встреча {i}",
                start + timedelta(hours=i),
                start + timedelta(hours=i, minutes=30),
                location="Кабинет 404",
                participants=[ex.denis, ex.dasha, ex.liza],
            )
            for i in range(5)
        ]
        for m in meetings[:4]:
            assert d.cli("invite", str(m), "--as", "Supervisor").returncode == 0
        # a little latency makes a backlog, so that both instances have work to take
        fake.client.configure(latency=0.3)
        first, second = d.start("one"), d.start("two")
        try:
            deadline = time.monotonic() + 12
            step = 0
            while time.monotonic() < deadline:
                step += 1
                for m in rng.sample(meetings, 3):
                    d.writer.update_activity(m, location=f"Кабинет {500 + step}")
                if step % 5 == 0:  # the button, pressed while both services run
                    d.cli("invite", str(rng.choice(meetings)), "--as", "Supervisor")
                time.sleep(0.4)

            def idle() -> bool:
                status = d.cli("status", "--json").stdout
                return '"pending": 0' in status and '"pending": 1' not in status

            wait_for(lambda: idle() and idle(), 90, 0.5)
            time.sleep(1.0)
        finally:
            assert Deployment.stop(first) == 0
            assert Deployment.stop(second) == 0
        messages = d.messages()
        counts = Counter(m["message_id"] for m in messages)
        assert len(messages) > 10
        assert set(counts.values()) == {1}, [k for k, v in counts.items() if v > 1]
        logs = [(tmp_path / "site" / f"{name}.log").read_text() for name in ("one", "two")]
        assert all("event=message_sent" in log for log in logs), "both instances deliver"
        assert sum("event=sync_update" in log for log in logs) >= 1
        # every recipient's calendar shows each tracked meeting as the CRM shows it now
        cal = d.calendars()
        store = StateStore.from_url(state_url)
        try:
            states = store.states(meetings)
        finally:
            store.close()
        activity = d.writer.t.activity
        with d.writer.engine.connect() as conn:
            places = dict(conn.execute(select(activity.c.Id, activity.c.Location)).all())
        assert len(states) >= 3
        for activity_id, state in states.items():
            for person in state.invited:
                entry = cal[person.email][state.uid]
                assert (entry["sequence"], entry["location"]) == (
                    state.sequence,
                    places[activity_id],
                )
