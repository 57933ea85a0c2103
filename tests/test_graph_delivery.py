"""Delivery through Microsoft Graph (app-only), against the fake identity platform and Graph
over HTTPS, driven by the real msal and requests: credentials, the token cache, and every
failure class mapped into the error tree and retried (or not) by the deliverer."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest
import trustme

from connector.graph_errors import retry_after_seconds
from connector.state.store import Attempt
from tests.support.fake_graph import AppCertificate, FakeGraph
from tests.support.graph_env import PERSONAL, graph_sections, register_example
from tests.support.world import CrmDb, World, make_world

PARTICIPANTS = ["denis@ivanov.by", "dasha@ivanov.by", "liza@ivanov.by"]


def attempts(w: World, activity: UUID | None = None) -> list[Attempt]:
    messages = w.app.store.messages(activity_id=activity or w.ex.meeting)
    return w.app.store.attempts([m.id for m in messages])


def send_times(fake: FakeGraph) -> list[float]:
    return [r["t"] for r in fake.requests("sendMail")]


def more_meetings(w: World, count: int) -> list[UUID]:
    start = w.ex_start()
    return [
        w.writer.activity(
            f"Встреча {i}",
            start + timedelta(hours=i),
            start + timedelta(hours=i, minutes=30),
            location="Кабинет 404",
            owner_contact_id=w.ex.supervisor_contact,
            participants=[w.ex.supervisor_contact, w.ex.denis],
        )
        for i in range(count)
    ]


class RecordedSleep:
    """The deliverer's sleep, recording the waits it was asked for instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


# -- credentials and the token cache ----------------------------------------------------------
def test_client_secret_credential_delivers_to_every_recipient(
    graph_world: World, fake_graph: FakeGraph
) -> None:
    result = graph_world.invite()
    assert result.delivered
    (received,) = fake_graph.messages()
    assert received.mailbox == PERSONAL and received.token_kind == "app"
    assert received.raw == graph_world.envelopes()[0].mime  # base64 decoded = the same bytes
    for address in PARTICIPANTS:
        (got,) = fake_graph.inbox(address)
        assert got.message["Subject"] == "Встреча с клиентом"
    assert graph_world.transport.stats["accepted"] == 1
    (attempt,) = attempts(graph_world)
    assert attempt.outcome == "sent" and "graph 202" in (attempt.detail or "")


@pytest.mark.parametrize("form", ["pfx", "pem"])
def test_certificate_credential_is_verified_by_the_identity_platform(
    sqlite_crm: CrmDb, tmp_path: Path, fake_graph: FakeGraph, form: str
) -> None:
    cert = AppCertificate.create(tmp_path / "cert", "pfx-passphrase-42")
    register_example(fake_graph, secret=None, certificates=[cert.cert_pem])
    credential = (
        {"pfx_path": str(cert.pfx_path), "passphrase": cert.passphrase}
        if form == "pfx"
        else {
            "pem_path": str(cert.key_path),
            "passphrase": cert.passphrase,
            "public_certificate_path": str(cert.cert_path),
        }
    )
    sections = graph_sections(fake_graph, certificate=credential)
    del sections["graph"]["client_secret"]
    w = make_world(sqlite_crm, tmp_path, **sections)
    try:
        assert w.invite().delivered
    finally:
        w.close()
    assert fake_graph.stats()["counters"]["client_assertions_verified"] == 1
    assert len(fake_graph.messages()) == 1


def test_certificate_the_platform_does_not_know_is_refused_permanently(
    sqlite_crm: CrmDb, tmp_path: Path, fake_graph: FakeGraph
) -> None:
    registered = AppCertificate.create(tmp_path / "registered", "one-passphrase")
    other = AppCertificate.create(tmp_path / "other", "another-passphrase")
    register_example(fake_graph, secret=None, certificates=[registered.cert_pem])
    sections = graph_sections(
        fake_graph, certificate={"pfx_path": str(other.pfx_path), "passphrase": other.passphrase}
    )
    del sections["graph"]["client_secret"]
    w = make_world(sqlite_crm, tmp_path, **sections)
    try:
        result = w.invite()
        (delivery,) = result.deliveries
        assert delivery.status == "parked"
        assert delivery.error is not None and delivery.error.remote_code == "invalid_client"
        assert "AADSTS700027" in delivery.error.detail
    finally:
        w.close()
    assert fake_graph.messages() == []


def test_token_is_fetched_once_and_served_from_msal_cache_for_later_sends(
    graph_world: World, fake_graph: FakeGraph
) -> None:
    graph_world.invite()
    for activity in more_meetings(graph_world, 3):
        assert graph_world.invite(activity=activity).delivered
    counters = fake_graph.stats()["counters"]
    assert counters["sendMail_requests"] == 4
    assert counters["tokens_client_credentials"] == 1
    assert graph_world.transport.stats["token_requests"] == 1


def test_wrong_client_secret_is_permanent_and_names_the_platform_error(
    sqlite_crm: CrmDb, tmp_path: Path, fake_graph: FakeGraph
) -> None:
    w = make_world(sqlite_crm, tmp_path, **graph_sections(fake_graph, client_secret="wrong-one"))
    try:
        (delivery,) = w.invite().deliveries
    finally:
        w.close()
    assert delivery.status == "parked"
    assert delivery.error is not None and delivery.error.remote_code == "invalid_client"
    assert "AADSTS7000215" in delivery.error.message("en")


# -- transient failures: retried, Retry-After honoured -----------------------------------------
def test_429_with_retry_after_waits_that_long_then_delivers(
    graph_world: World, fake_graph: FakeGraph
) -> None:
    fake_graph.fail({"status": 429, "retry_after": 1, "code": "ApplicationThrottled"})
    result = graph_world.invite()
    assert result.delivered
    first, second = send_times(fake_graph)
    assert 1.0 <= second - first < 3.0  # the wait the server asked for, not less
    assert [a.outcome for a in attempts(graph_world)] == ["transient", "sent"]
    assert attempts(graph_world)[0].status_code == 429
    assert graph_world.transport.stats["throttled"] == 1
    assert graph_world.app.deliverer.stats["retries"] == 1


def test_503_twice_then_delivered_with_backoff_between(
    graph_world: World, fake_graph: FakeGraph
) -> None:
    sleep = RecordedSleep()
    graph_world.app.deliverer.sleep = sleep
    fake_graph.fail({"status": 503, "repeat": 2})
    assert graph_world.invite().delivered
    assert [a.outcome for a in attempts(graph_world)] == ["transient", "transient", "sent"]
    assert [a.status_code for a in attempts(graph_world)] == [503, 503, None]
    assert len(sleep.waits) == 2 and all(w > 0 for w in sleep.waits)
    assert len(fake_graph.messages()) == 1


def test_timeout_and_connection_reset_are_transient(
    sqlite_crm: CrmDb, tmp_path: Path, fake_graph: FakeGraph
) -> None:
    w = make_world(sqlite_crm, tmp_path, **graph_sections(fake_graph, timeout_seconds=0.5))
    w.app.deliverer.sleep = RecordedSleep()
    fake_graph.fail({"status": 202, "delay": 2.0}, {"reset": True})
    try:
        assert w.invite().delivered
        codes = [(a.outcome, a.error_code) for a in attempts(w)]
    finally:
        w.close()
    assert codes == [("transient", "timeout"), ("transient", "connection"), ("sent", None)]


def test_retry_after_beyond_the_run_budget_sets_the_next_attempt(
    sqlite_crm: CrmDb, tmp_path: Path, fake_graph: FakeGraph
) -> None:
    w = make_world(sqlite_crm, tmp_path, **graph_sections(fake_graph, retry_max_seconds=0))
    fake_graph.fail({"status": 429, "retry_after": 600})
    try:
        (delivery,) = w.invite().deliveries
        (message,) = w.app.store.messages(activity_id=w.ex.meeting)
    finally:
        w.close()
    assert delivery.status == "failed"
    assert message.next_attempt_at >= w.clock.now + timedelta(seconds=600)


def test_untrusted_server_certificate_is_a_transient_tls_error_whatever_the_environment_says(
    sqlite_crm: CrmDb, tmp_path: Path, fake_graph: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the environment trusts the fake's CA, the configuration names another CA: the
    # configuration wins (trust_env is off), so the connection must fail
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake_graph.ca_bundle))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(fake_graph.ca_bundle))
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    w = make_world(
        sqlite_crm,
        tmp_path,
        **graph_sections(fake_graph, ca_bundle=str(other_ca), retry_max_seconds=0),
    )
    try:
        (delivery,) = w.invite().deliveries
    finally:
        w.close()
    assert delivery.status == "failed"
    assert delivery.error is not None and delivery.error.remote_code == "tls"
    assert "CERTIFICATE_VERIFY_FAILED" in delivery.error.detail


def test_configured_ca_bundle_is_used_when_the_environment_points_elsewhere(
    sqlite_crm: CrmDb, tmp_path: Path, fake_graph: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other_ca))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(other_ca))
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # would break every request
    w = make_world(sqlite_crm, tmp_path, **graph_sections(fake_graph))
    try:
        assert w.invite().delivered
    finally:
        w.close()


# -- permanent failures: reported with Graph's code, not retried -------------------------------
def test_403_access_denied_by_application_access_policy_is_parked_with_its_code(
    graph_world: World, fake_graph: FakeGraph
) -> None:
    fake_graph.setup(app_access_policy=["invitations@ivanov.ru"])  # ivanov@ is outside
    (delivery,) = graph_world.invite().deliveries
    assert delivery.status == "parked"
    assert delivery.error is not None
    assert (delivery.error.status, delivery.error.remote_code) == (403, "ErrorAccessDenied")
    assert "ErrorAccessDenied" in delivery.error.message("ru")
    (attempt,) = attempts(graph_world)
    assert (attempt.outcome, attempt.error_code) == ("permanent", "ErrorAccessDenied")
    assert fake_graph.stats()["counters"]["sendMail_requests"] == 1  # not retried
    (message,) = graph_world.app.store.messages(activity_id=graph_world.ex.meeting)
    assert message.status == "parked" and message.error_code == "ErrorAccessDenied"


def test_401_refreshes_the_token_once_and_delivers(
    graph_world: World, fake_graph: FakeGraph
) -> None:
    graph_world.invite()
    fake_graph.state.expire_tokens()  # the cached token is now rejected by Graph
    (activity,) = more_meetings(graph_world, 1)
    assert graph_world.invite(activity=activity).delivered
    statuses = [r["status"] for r in fake_graph.requests("sendMail")]
    assert statuses == [202, 401, 202]
    assert fake_graph.stats()["counters"]["tokens_client_credentials"] == 2
    assert graph_world.transport.stats["retries_401"] == 1
    (attempt,) = attempts(graph_world, activity)
    assert attempt.outcome == "sent"


def test_401_again_after_the_refresh_is_permanent(
    graph_world: World, fake_graph: FakeGraph
) -> None:
    fake_graph.fail({"status": 401, "code": "InvalidAuthenticationToken", "repeat": 2})
    (delivery,) = graph_world.invite().deliveries
    assert delivery.status == "parked"
    assert delivery.error is not None and delivery.error.status == 401
    assert fake_graph.stats()["counters"]["sendMail_requests"] == 2


def test_413_for_a_message_over_the_request_limit_is_permanent(
    graph_world: World, fake_graph: FakeGraph
) -> None:
    fake_graph.configure(max_request_bytes=4000)  # the invitation is larger than this
    (delivery,) = graph_world.invite().deliveries
    assert delivery.status == "parked"
    assert delivery.error is not None
    assert (delivery.error.status, delivery.error.remote_code) == (413, "RequestEntityTooLarge")
    assert fake_graph.stats()["counters"]["sendMail_requests"] == 1


def test_unknown_mailbox_is_a_permanent_404(graph_world: World, fake_graph: FakeGraph) -> None:
    graph_world.reconfigure(mailboxes={"users": {"supervisor": "nobody@ivanov.ru"}})
    (delivery,) = graph_world.invite().deliveries
    assert delivery.error is not None
    assert (delivery.error.status, delivery.error.remote_code) == (404, "ErrorInvalidUser")


# -- per-mailbox limits, measured at the fake --------------------------------------------------
def test_never_more_than_four_requests_in_flight_per_mailbox(
    graph_world: World, fake_graph: FakeGraph
) -> None:
    fake_graph.configure(latency=0.3, limits={"concurrency": 4, "per_window": 1000})
    meetings = more_meetings(graph_world, 10)
    failures: list[BaseException] = []

    def press(activity: UUID) -> None:
        try:
            assert graph_world.invite(activity=activity).delivered
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=press, args=(a,)) for a in meetings]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert failures == []
    stats = fake_graph.stats()
    assert stats["max_in_flight"][PERSONAL] == 4
    assert stats["counters"].get("throttled", 0) == 0
    assert len(fake_graph.messages()) == 10
    assert graph_world.app.limiter.waits >= 1
    assert stats["counters"]["tokens_client_credentials"] == 1  # concurrent first sends share it


def test_the_fake_throttles_a_fifth_concurrent_request(
    sqlite_crm: CrmDb, tmp_path: Path, fake_graph: FakeGraph
) -> None:
    # the control for the test above: without the connector's limit the fake does answer 429
    w = make_world(
        sqlite_crm, tmp_path, mailboxes={"max_concurrent": 8}, **graph_sections(fake_graph)
    )
    w.app.deliverer.sleep = RecordedSleep()
    fake_graph.configure(latency=0.3, limits={"concurrency": 4, "per_window": 1000})
    threads = [
        threading.Thread(target=w.invite, kwargs={"activity": a}) for a in more_meetings(w, 8)
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        w.close()
    assert fake_graph.stats()["max_in_flight"][PERSONAL] > 4
    assert fake_graph.stats()["counters"]["throttled"] >= 1


def test_the_31st_message_in_a_window_waits_for_the_window(
    sqlite_crm: CrmDb, tmp_path: Path, fake_graph: FakeGraph
) -> None:
    window = 4.0  # Exchange's minute, scaled
    w = make_world(
        sqlite_crm,
        tmp_path,
        mailboxes={"rate_per_minute": 30, "rate_window_seconds": window},
        **graph_sections(fake_graph),
    )
    fake_graph.configure(limits={"concurrency": 4, "per_window": 30, "window_seconds": window})
    meetings = more_meetings(w, 31)
    try:
        started = time.monotonic()
        for activity in meetings[:30]:
            assert w.invite(activity=activity).delivered
        thirty = time.monotonic() - started
        assert w.app.limiter.waits == 0
        assert w.invite(activity=meetings[30]).delivered
    finally:
        w.close()
    if thirty >= window:
        pytest.fail(f"30 sends took {thirty:.1f}s, longer than the scaled window")
    times = send_times(fake_graph)
    assert len(times) == 31
    assert times[30] - times[0] >= window - 0.05  # waited for the first to leave the window
    assert w.app.limiter.waits == 1
    assert fake_graph.stats()["counters"].get("throttled", 0) == 0


# -- small pieces ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "seconds"),
    [("5", 5.0), ("0", 0.0), ("2.5", 2.5), (None, None), ("soon", None), ("-3", 0.0)],
)
def test_retry_after_header_values(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header) == seconds


def test_retry_after_as_http_date() -> None:
    from datetime import UTC, datetime

    now = datetime(2030, 3, 4, 8, 0, tzinfo=UTC)
    assert retry_after_seconds("Mon, 04 Mar 2030 08:00:30 GMT", now) == 30.0
