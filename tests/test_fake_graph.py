"""The fake Graph itself (other tests and benchmarks rely on it): the RFC 5546 calendar view,
the process mode with its HTTP test API, and fault injection."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import msal
import pytest
import requests

from tests.support.fake_graph import FakeGraph, start_process
from tests.support.graph_env import CLIENT_ID, CLIENT_SECRET, PERSONAL

UID = "activity-1@ivanov.ru"


def itip(method: str, sequence: int, stamp: datetime, location: str) -> bytes:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//tests//fake graph//EN",
        f"METHOD:{method}",
        "BEGIN:VEVENT",
        f"UID:{UID}",
        f"SEQUENCE:{sequence}",
        f"DTSTAMP:{stamp:%Y%m%dT%H%M%SZ}",
        "DTSTART:20300306T100000Z",
        "DTEND:20300306T103000Z",
        "SUMMARY:Встреча с клиентом",
        f"LOCATION:{location}",
        f"ORGANIZER:mailto:{PERSONAL}",
        "ATTENDEE:mailto:denis@ivanov.by",
        *(["STATUS:CANCELLED"] if method == "CANCEL" else []),
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
    msg = EmailMessage()
    msg["From"] = PERSONAL
    msg["To"] = "denis@ivanov.by"
    msg["Subject"] = "test"
    msg.set_content("see the calendar part")
    msg.add_alternative(
        "\r\n".join(lines).encode(),
        maintype="text",
        subtype="calendar",
        params={"method": method, "charset": "UTF-8"},
    )
    return msg.as_bytes()


def session(ca_bundle: Path) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.verify = str(ca_bundle)
    return s


def app_token(origin: str, tenant: str, http: requests.Session) -> str:
    app = msal.ConfidentialClientApplication(
        CLIENT_ID,
        client_credential=CLIENT_SECRET,
        authority=f"{origin}/{tenant}",
        http_client=http,
        instance_discovery=False,
    )
    result = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
    return str(result["access_token"])


def send(http: requests.Session, base_url: str, token: str, mime: bytes) -> int:
    response = http.post(
        f"{base_url}/users/{PERSONAL}/sendMail",
        data=base64.b64encode(mime),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
        timeout=10,
    )
    return response.status_code


def test_calendar_view_applies_rfc_5546_ordering(fake_graph: FakeGraph) -> None:
    http = session(fake_graph.ca_bundle)
    token = app_token(fake_graph.origin, fake_graph.tenant, http)
    t1, t2, t3 = (datetime(2030, 3, 4, 8, m, tzinfo=UTC) for m in (0, 10, 20))

    def denis() -> dict[str, object]:
        return fake_graph.calendars(include_cancelled=True)["denis@ivanov.by"][UID]

    assert send(http, fake_graph.base_url, token, itip("REQUEST", 1, t2, "Кабинет 505")) == 202
    assert send(http, fake_graph.base_url, token, itip("REQUEST", 0, t3, "old")) == 202
    assert denis()["location"] == "Кабинет 505"  # lower SEQUENCE: out of date
    assert send(http, fake_graph.base_url, token, itip("REQUEST", 1, t1, "older")) == 202
    assert denis()["location"] == "Кабинет 505"  # equal SEQUENCE, older DTSTAMP loses
    assert send(http, fake_graph.base_url, token, itip("REQUEST", 1, t3, "Кабинет 606")) == 202
    assert denis()["location"] == "Кабинет 606"  # equal SEQUENCE, newer DTSTAMP wins
    assert send(http, fake_graph.base_url, token, itip("CANCEL", 2, t3, "Кабинет 606")) == 202
    assert fake_graph.calendars()["denis@ivanov.by"] == {}
    assert send(http, fake_graph.base_url, token, itip("REQUEST", 1, t3, "back?")) == 202
    assert fake_graph.calendars()["denis@ivanov.by"] == {}  # the CANCEL is remembered
    assert len(fake_graph.state.ignored) == 3


def test_sendmail_rejects_bad_base64_and_a_foreign_from(fake_graph: FakeGraph) -> None:
    http = session(fake_graph.ca_bundle)
    token = app_token(fake_graph.origin, fake_graph.tenant, http)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/plain"}
    url = f"{fake_graph.base_url}/users/{PERSONAL}/sendMail"
    bad = http.post(url, data=b"not base64!", headers=headers, timeout=10)
    assert (bad.status_code, bad.json()["error"]["code"]) == (
        400,
        "ErrorMimeContentInvalidBase64String",
    )
    mime = itip("REQUEST", 0, datetime(2030, 1, 1, tzinfo=UTC), "x").replace(
        PERSONAL.encode(), b"someone@else.ru", 1
    )
    foreign = http.post(url, data=base64.b64encode(mime), headers=headers, timeout=10)
    assert foreign.status_code == 400
    no_token = http.post(url, data=b"", headers={"Content-Type": "text/plain"}, timeout=10)
    assert no_token.status_code == 401


def test_fake_runs_as_a_process_with_an_http_test_api(tmp_path: Path) -> None:
    with start_process(tmp_path / "fake") as fake:
        fake.client.setup(
            apps=[{"client_id": CLIENT_ID, "secret": CLIENT_SECRET}], mailboxes=[PERSONAL]
        )
        fake.client.fail({"status": 503, "retry_after": 2})
        http = session(fake.ca_bundle)
        token = app_token(fake.origin, fake.tenant, http)
        mime = itip("REQUEST", 0, datetime(2030, 1, 1, tzinfo=UTC), "Кабинет 404")
        assert send(http, fake.base_url, token, mime) == 503
        assert send(http, fake.base_url, token, mime) == 202
        (message,) = fake.client.messages(raw=True)
        assert message["recipients"] == ["denis@ivanov.by"]
        assert (message["method"], message["uid"], message["sequence"]) == ("REQUEST", UID, 0)
        assert base64.b64decode(message["raw_b64"]) == mime
        assert UID in fake.client.calendars()["denis@ivanov.by"]
        assert fake.client.stats()["counters"]["sendMail_requests"] == 2
        process = fake.process
    assert process.poll() is not None  # stopped with the context


def test_fault_resets_the_connection(fake_graph: FakeGraph) -> None:
    http = session(fake_graph.ca_bundle)
    token = app_token(fake_graph.origin, fake_graph.tenant, http)
    fake_graph.fail({"reset": True})
    with pytest.raises(requests.ConnectionError):
        send(http, fake_graph.base_url, token, b"irrelevant")
    assert fake_graph.stats()["counters"]["faults_applied"] == 1
