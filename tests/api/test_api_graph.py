"""The API over the real Graph transport, against the fake Microsoft Graph on 127.0.0.1:
readiness needs a token, 429s show in the metrics, Exchange's Send As refusal and a missing
delegated sign-in answer like the refusals of figure 2.7."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from connector.api import create_api
from tests.api.helpers import AUTH, PARTICIPANTS, TOKEN
from tests.support.fake_graph import FakeGraph
from tests.support.graph_env import PERSONAL, graph_sections
from tests.support.world import CrmDb, World, make_world

API = {"tokens": [TOKEN]}


@pytest.fixture
def graph_api(
    sqlite_crm: CrmDb, tmp_path: Path, fake_graph: FakeGraph
) -> Iterator[tuple[World, TestClient]]:
    w = make_world(sqlite_crm, tmp_path, api=API, **graph_sections(fake_graph))
    with TestClient(create_api(w.app)) as client:
        yield w, client
    w.close()


@pytest.fixture
def delegated_api(
    sqlite_crm: CrmDb, tmp_path: Path, fake_graph: FakeGraph
) -> Iterator[tuple[World, TestClient]]:
    w = make_world(sqlite_crm, tmp_path, api=API, **graph_sections(fake_graph, delegated=True))
    with TestClient(create_api(w.app)) as client:
        yield w, client
    w.close()


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    raise AssertionError(f"no sample {name}{labels}")


def test_ready_needs_a_graph_token(
    graph_api: tuple[World, TestClient], fake_graph: FakeGraph
) -> None:
    _, client = graph_api
    fake_graph.fail({"target": "token", "status": 401, "code": "invalid_client"})
    refused = client.get("/readyz", headers={**AUTH, "Accept-Language": "en"})
    assert refused.status_code == 503
    transport = refused.json()["checks"]["transport"]
    assert transport["ok"] is False and "invalid_client" in transport["detail"]
    ready = client.get("/readyz", headers=AUTH)
    assert ready.status_code == 200
    assert ready.json()["checks"]["transport"] == {"ok": True, "detail": None}


def test_a_throttled_send_is_retried_and_counted(
    graph_api: tuple[World, TestClient], fake_graph: FakeGraph
) -> None:
    w, client = graph_api
    fake_graph.fail({"status": 429, "retry_after": 0, "code": "ApplicationThrottled"})
    sent = client.post(
        f"/activities/{w.ex.meeting}/invitation", json={"user": "Supervisor"}, headers=AUTH
    )
    assert sent.status_code == 200 and sent.json()["status"] == "sent"
    assert sorted(r["email"] for r in sent.json()["recipients"]) == sorted(PARTICIPANTS)
    assert len(fake_graph.inbox("dasha@ivanov.by")) == 1
    text = client.get("/metrics", headers=AUTH).text
    assert metric(text, "connector_graph_throttled_total") == 1
    assert metric(text, "connector_delivery_retries_total") == 1
    assert metric(text, "connector_transport_events_total", event="throttled") == 1
    assert metric(text, "connector_messages_sent_total", method="REQUEST") == 1
    assert metric(text, "connector_messages_failed_total", method="REQUEST") == 1


def test_send_as_denied_by_exchange_answers_like_figure_2_7(
    graph_api: tuple[World, TestClient], fake_graph: FakeGraph
) -> None:
    w, client = graph_api
    fake_graph.fail(
        {"status": 403, "code": "ErrorSendAsDenied", "message": "no Send As", "mailbox": PERSONAL}
    )
    answer = client.post(
        f"/activities/{w.ex.meeting}/invitation",
        json={"user": "Supervisor"},
        headers={**AUTH, "Accept-Language": "ru"},
    )
    assert answer.status_code == 403
    body = answer.json()
    assert body["code"] == "no_mailbox_rights"
    assert body["message"].startswith("Не удалось отправить приглашение: у пользователя")
    assert body["params"]["remote_code"] == "ErrorSendAsDenied"
    assert {r["status"] for r in body["result"]["recipients"]} == {"parked"}


def test_delegated_user_without_sign_in_is_refused_before_anything_is_recorded(
    delegated_api: tuple[World, TestClient], fake_graph: FakeGraph
) -> None:
    w, client = delegated_api
    answer = client.post(
        f"/activities/{w.ex.meeting}/invitation",
        json={"user": "Supervisor"},
        headers={**AUTH, "Accept-Language": "ru"},
    )
    assert (answer.status_code, answer.json()["code"]) == (403, "not_logged_in")
    assert "connector login --as Supervisor" in answer.json()["message"]
    assert w.app.store.messages(activity_id=w.ex.meeting) == []
    assert fake_graph.requests("sendMail") == []
    ready = client.get("/readyz", headers=AUTH)  # delegated mode: no token of its own
    assert ready.status_code == 200
