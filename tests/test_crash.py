"""Crashes lose nothing: a real ``connector run`` killed with SIGKILL at several points of a
cycle, then restarted; the recipients' calendars, as the fake Graph applies the messages by
UID and SEQUENCE, end in the right state."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.deployment import FAKE_SETUP, Deployment, make_deployment, wait_for
from tests.support.fake_graph import start_process

pytestmark = pytest.mark.slow


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    with start_process(tmp_path / "fake", FAKE_SETUP) as fake:
        d = make_deployment(tmp_path / "site", fake)
        first = d.cli("invite", str(d.ex.meeting), "--as", "Supervisor")
        assert first.returncode == 0, first.stderr
        yield d


def change_meeting(d: Deployment) -> None:
    """Move the meeting to another room and drop a participant: REQUEST seq 1 + CANCEL seq 1."""
    d.writer.update_activity(d.ex.meeting, location="Кабинет 505")
    d.writer.remove_participant(d.ex.meeting, d.ex.dasha)


def settled(d: Deployment) -> bool:
    cal = d.calendars()
    rooms = {who: [e["location"] for e in events.values()] for who, events in cal.items()}
    return (
        rooms.get("denis@ivanov.by") == ["Кабинет 505"]
        and rooms.get("liza@ivanov.by") == ["Кабинет 505"]
        and not rooms.get("dasha@ivanov.by")
    )


def assert_final_state(d: Deployment, *, duplicates_allowed: bool) -> None:
    cal = d.calendars()
    for who in ("denis@ivanov.by", "liza@ivanov.by"):
        (entry,) = cal[who].values()
        assert (entry["sequence"], entry["location"], entry["status"]) == (
            1,
            "Кабинет 505",
            "confirmed",
        )
    assert not cal.get("dasha@ivanov.by")
    counts = Counter(m["message_id"] for m in d.messages())
    assert len(counts) == 3  # the invitation, the update, the cancel
    if not duplicates_allowed:
        assert set(counts.values()) == {1}, counts
    else:
        assert max(counts.values()) <= 2, counts
    status = d.cli("status", "--json")
    assert '"pending": 0' in status.stdout and '"parked": 0' in status.stdout


@pytest.mark.parametrize(
    ("point", "duplicates_allowed"),
    [("after_record", False), ("before_send", False), ("after_send", True)],
)
def test_killed_at_a_crash_point_then_restarted(
    deployment: Deployment, point: str, duplicates_allowed: bool
) -> None:
    d = deployment
    change_meeting(d)
    crashed = d.start("crashed", CONNECTOR_CRASH_AT=point)
    assert crashed.wait(timeout=60) == -signal.SIGKILL
    assert not settled(d) or point == "after_send"
    again = d.start("restarted")
    wait_for(lambda: settled(d) and 'pending": 0' in d.cli("status", "--json").stdout, 60)
    assert Deployment.stop(again) == 0
    assert_final_state(d, duplicates_allowed=duplicates_allowed)


def test_killed_while_the_request_is_in_flight(deployment: Deployment) -> None:
    d = deployment
    d.fake.client.configure(latency=1.5)
    change_meeting(d)
    service = d.start("inflight")
    wait_for(lambda: sum(d.fake.client.stats()["in_flight"].values()) > 0, 60, 0.02)
    assert Deployment.stop(service, signal.SIGKILL) == -signal.SIGKILL
    d.fake.client.configure(latency=0)
    again = d.start("restarted")
    wait_for(lambda: settled(d) and 'pending": 0' in d.cli("status", "--json").stdout, 60)
    assert Deployment.stop(again) == 0
    # the fake accepted the in-flight request after the client died: that copy is the one
    # documented duplicate (same bytes, same Message-ID)
    assert_final_state(d, duplicates_allowed=True)


def test_sigterm_during_a_cycle_finishes_the_message_in_flight(deployment: Deployment) -> None:
    d = deployment
    d.fake.client.configure(latency=1.0)
    change_meeting(d)
    service = d.start("graceful")
    wait_for(lambda: sum(d.fake.client.stats()["in_flight"].values()) > 0, 60, 0.02)
    assert Deployment.stop(service, signal.SIGTERM) == 0
    status = d.cli("status", "--json").stdout
    assert '"sending"' not in status
    d.fake.client.configure(latency=0)
    again = d.start("restarted")
    wait_for(lambda: settled(d) and 'pending": 0' in d.cli("status", "--json").stdout, 60)
    assert Deployment.stop(again) == 0
    assert_final_state(d, duplicates_allowed=False)
