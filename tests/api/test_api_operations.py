"""Liveness, readiness and the Prometheus metrics."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from connector.api import create_api
from connector.app import build_app
from connector.config import parse_config
from tests.api.helpers import AUTH, TOKEN, RefusingMailServer, TokenlessGraph, app_with
from tests.support.world import CrmDb, World, base_config


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, parsed by prometheus_client's own parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = client.get("/metrics", headers=AUTH)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return samples(answer.text)


def test_ready_when_crm_and_state_answer(client: TestClient) -> None:
    answer = client.get("/readyz", headers=AUTH)
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ready"
    assert body["checks"]["crm"] == {"ok": True, "detail": None}
    assert body["checks"]["state"] == {"ok": True, "detail": None}
    assert body["checks"]["transport"]["ok"] is True


def test_not_ready_when_the_transport_cannot_get_a_token(api_world: World) -> None:
    with app_with(api_world, TokenlessGraph()) as app, TestClient(create_api(app)) as client:
        answer = client.get("/readyz", headers={**AUTH, "Accept-Language": "en"})
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["transport"] == {
        "ok": False,
        "detail": "Temporary delivery error: token endpoint unreachable",
    }
    assert body["checks"]["crm"]["ok"] and body["checks"]["state"]["ok"]


def test_not_ready_when_the_crm_database_is_unreachable(tmp_path: Path) -> None:
    crm = CrmDb(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'crm.db'}", None, "sqlite")
    config = parse_config(base_config(crm, tmp_path, api={"tokens": [TOKEN]}))
    app = build_app(config)
    try:
        with TestClient(create_api(app)) as client:
            answer = client.get("/readyz", headers={**AUTH, "Accept-Language": "en"})
    finally:
        app.close()
    assert answer.status_code == 503
    crm_check = answer.json()["checks"]["crm"]
    assert crm_check["ok"] is False
    assert crm_check["detail"].startswith("The CRM database is unavailable")
    assert answer.json()["checks"]["state"]["ok"] is True


def test_crm_outage_during_a_request_is_503(tmp_path: Path) -> None:
    crm = CrmDb(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'crm.db'}", None, "sqlite")
    config = parse_config(base_config(crm, tmp_path, api={"tokens": [TOKEN]}))
    app = build_app(config)
    try:
        with TestClient(create_api(app)) as client:
            answer = client.get(
                "/activities/00000000-0000-0000-0000-000000000001/invitation",
                params={"user": "Supervisor"},
                headers=AUTH,
            )
    finally:
        app.close()
    assert (answer.status_code, answer.json()["code"]) == (503, "crm_unavailable")


def test_metrics_count_sent_messages_by_method_and_the_queue(
    client: TestClient, api_world: World
) -> None:
    before = scrape(client)
    assert before[("connector_messages_sent_total", (("method", "REQUEST"),))] == 0
    client.post(
        f"/activities/{api_world.ex.meeting}/invitation", json={"user": "Supervisor"}, headers=AUTH
    )
    api_world.writer.remove_participant(api_world.ex.meeting, api_world.ex.liza)
    client.post(
        f"/activities/{api_world.ex.meeting}/invitation", json={"user": "Supervisor"}, headers=AUTH
    )
    after = scrape(client)
    # the first send is one REQUEST; removing Liza cancels her invitation with one CANCEL
    assert after[("connector_messages_sent_total", (("method", "REQUEST"),))] == 1
    assert after[("connector_messages_sent_total", (("method", "CANCEL"),))] == 1
    assert after[("connector_queue_depth", (("status", "sent"),))] == 2
    assert after[("connector_queue_depth", (("status", "pending"),))] == 0
    assert after[("connector_deliveries_total", (("outcome", "sent"),))] == 2
    assert after[("connector_info", (("transport", "directory"), ("version", "0.1.0")))] == 1
    assert after[("connector_state_store_up", ())] == 1


def test_metrics_count_failures_and_parked_messages(api_world: World) -> None:
    with app_with(api_world, RefusingMailServer()) as app, TestClient(create_api(app)) as client:
        client.post(
            f"/activities/{api_world.ex.meeting}/invitation",
            json={"user": "Supervisor"},
            headers=AUTH,
        )
        metrics = scrape(client)
    assert metrics[("connector_messages_failed_total", (("method", "REQUEST"),))] == 1
    assert metrics[("connector_messages_sent_total", (("method", "REQUEST"),))] == 0
    assert metrics[("connector_queue_depth", (("status", "parked"),))] == 1
    assert metrics[("connector_deliveries_total", (("outcome", "parked"),))] == 1


def test_metrics_show_the_last_sync_cycle_only_once_there_was_one(
    client: TestClient, api_world: World
) -> None:
    names = {name for name, _ in scrape(client)}
    assert "connector_sync_last_cycle_timestamp_seconds" not in names
    assert "connector_sync_last_cycle_duration_seconds" not in names
    api_world.app.store.put("sync.last_cycle_at", "2030-03-04T08:00:00+00:00")
    api_world.app.store.put("sync.last_cycle_seconds", "1.25")
    metrics = scrape(client)
    assert metrics[("connector_sync_last_cycle_timestamp_seconds", ())] == 1898841600.0
    assert metrics[("connector_sync_last_cycle_duration_seconds", ())] == 1.25


def test_metrics_show_retries_and_graph_throttling(api_world: World) -> None:
    graph = TokenlessGraph()
    with app_with(api_world, graph) as app, TestClient(create_api(app)) as client:
        app.deliverer.stats["retries"] = 4
        metrics = scrape(client)
    assert metrics[("connector_delivery_retries_total", ())] == 4
    assert metrics[("connector_graph_throttled_total", ())] == 3
    assert metrics[("connector_transport_events_total", (("event", "token_refreshes"),))] == 2
    assert ("connector_transport_events_total", (("event", "label"),)) not in metrics
