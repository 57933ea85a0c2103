"""Who may call: bearer tokens on every endpoint but /healthz, the brake on failed attempts,
signed dialog links, and secrets kept out of the logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from connector.api import create_api
from connector.api.security import FailedAuthLimiter, LinkSigner, TokenCheck, bearer_token
from connector.config import ApiConfig, parse_config
from connector.logs import setup_logging
from mapping.errors import ConfigError
from tests.api.helpers import AUTH, SECOND_TOKEN, TOKEN
from tests.support.world import World, base_config

ROUTES = [
    ("GET", "/activities/{id}/invitation?user=Supervisor"),
    ("POST", "/activities/{id}/invitation"),
    ("GET", "/activities/{id}/invitation/status"),
    ("POST", "/activities/{id}/invitation/link"),
    ("GET", "/ui/activities/{id}/invite?user=Supervisor"),
    ("POST", "/ui/activities/{id}/invite?user=Supervisor"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
]


class Ticker:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()


@pytest.fixture
def gated(api_world: World, ticker: Ticker) -> Iterator[TestClient]:
    """An API whose failed-auth window (5 failures, 300 s) runs on a hand-moved clock."""
    with TestClient(create_api(api_world.app, monotonic=ticker)) as client:
        yield client


def call(client: TestClient, method: str, route: str, activity: object, **kwargs: object):  # type: ignore[no-untyped-def]
    url = route.replace("{id}", str(activity))
    if method == "POST" and "/ui/" not in url:
        kwargs.setdefault("json", {"user": "Supervisor"})
    return client.request(method, url, **kwargs)  # type: ignore[arg-type]


# -- tokens --------------------------------------------------------------------------------------
def test_healthz_needs_no_token(client: TestClient) -> None:
    answer = client.get("/healthz")
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize(("method", "route"), ROUTES)
def test_every_other_endpoint_needs_a_token(
    client: TestClient, api_world: World, method: str, route: str
) -> None:
    answer = call(client, method, route, api_world.ex.meeting)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert api_world.envelopes() == []


@pytest.mark.parametrize(("method", "route"), ROUTES)
def test_a_wrong_token_is_refused_everywhere(
    client: TestClient, api_world: World, method: str, route: str
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}x"}
    answer = call(client, method, route, api_world.ex.meeting, headers=headers)
    assert answer.status_code == 401
    assert api_world.envelopes() == []


@pytest.mark.parametrize(("method", "route"), ROUTES)
def test_a_valid_token_passes_everywhere(
    client: TestClient, api_world: World, method: str, route: str
) -> None:
    answer = call(client, method, route, api_world.ex.meeting, headers=AUTH)
    assert answer.status_code not in (401, 403, 429)


def test_the_json_refusal_names_the_code_in_the_callers_language(client: TestClient) -> None:
    ru = client.get("/readyz", headers={"Accept-Language": "ru"})
    en = client.get("/readyz", headers={"Accept-Language": "en"})
    assert ru.json()["code"] == en.json()["code"] == "unauthorized"
    assert ru.json()["message"].startswith("Нужен действительный токен")
    assert en.json()["message"].startswith("A valid access token is required")


def test_every_configured_token_is_accepted(client: TestClient) -> None:
    for token in (TOKEN, SECOND_TOKEN):
        answer = client.get("/readyz", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        f"Basic {TOKEN}",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN} extra",
        "Bearer",
        "Bearer ",
        TOKEN,
        f"Bearer {TOKEN.upper()}",
    ],
)
def test_anything_but_an_exact_bearer_token_is_refused(client: TestClient, header: str) -> None:
    assert client.get("/readyz", headers={"Authorization": header}).status_code == 401


def test_without_configured_tokens_nothing_but_healthz_answers(world: World) -> None:
    with TestClient(create_api(world.app)) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz", headers=AUTH).status_code == 401


def test_token_check_compares_with_every_token() -> None:
    check = TokenCheck(["a" * 16, "b" * 16])
    assert check.valid("a" * 16) and check.valid("b" * 16)
    assert not check.valid("a" * 15) and not check.valid("") and not check.valid(None)
    assert not TokenCheck([]).valid("")
    assert bearer_token("bearer  abc ") == "abc" and bearer_token("Token abc") is None


def test_short_tokens_are_a_config_error(world: World) -> None:
    data = base_config(world.crm, world.tmp, api={"tokens": ["short"]})
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    assert [path for path, _ in error.value.problems] == ["api.tokens"]


def test_tokens_and_link_secret_are_scrubbed_from_logs(world: World) -> None:
    config = parse_config(
        base_config(world.crm, world.tmp, api={"tokens": [TOKEN], "link_secret": "s" * 20})
    )
    assert TOKEN in config.secrets() and "s" * 20 in config.secrets()


# -- the brake on failed attempts -----------------------------------------------------------------
def test_failed_attempts_are_limited_per_client_then_released(
    gated: TestClient, ticker: Ticker
) -> None:
    wrong = {"Authorization": "Bearer wrong-token-wrong-token"}
    for _ in range(5):
        assert gated.get("/readyz", headers=wrong).status_code == 401
    blocked = gated.get("/readyz", headers=AUTH)
    assert blocked.status_code == 429
    assert blocked.json()["code"] == "rate_limited"
    assert blocked.headers["retry-after"] == "300"
    assert gated.get("/healthz").status_code == 200
    ticker.now += 120
    assert gated.get("/readyz", headers=AUTH).headers["retry-after"] == "180"
    ticker.now += 181
    assert gated.get("/readyz", headers=AUTH).status_code == 200


def test_the_brake_holds_one_client_only(api_world: World, ticker: Ticker) -> None:
    api = create_api(api_world.app, monotonic=ticker)
    wrong = {"Authorization": "Bearer wrong-token-wrong-token"}
    with (
        TestClient(api, client=("10.0.0.1", 5000)) as attacker,
        TestClient(api, client=("10.0.0.2", 5000)) as crm,
    ):
        for _ in range(6):
            attacker.get("/readyz", headers=wrong)
        assert attacker.get("/readyz", headers=AUTH).status_code == 429
        assert crm.get("/readyz", headers=AUTH).status_code == 200


def test_the_brake_counts_an_ipv6_client_by_its_64_network(
    api_world: World, ticker: Ticker
) -> None:
    api = create_api(api_world.app, monotonic=ticker)
    wrong = {"Authorization": "Bearer wrong-token-wrong-token"}
    for host in range(1, 7):  # a new address of the same /64 for every try
        with TestClient(api, client=(f"2001:db8:1:2::{host:x}", 5000)) as rotating:
            rotating.get("/readyz", headers=wrong)
    with TestClient(api, client=("2001:db8:1:2::ff", 5000)) as same_network:
        assert same_network.get("/readyz", headers=AUTH).status_code == 429
    with TestClient(api, client=("2001:db8:1:3::1", 5000)) as other_network:
        assert other_network.get("/readyz", headers=AUTH).status_code == 200


def test_requests_without_credentials_do_not_count_as_failures(gated: TestClient) -> None:
    for _ in range(20):
        assert gated.get("/readyz").status_code == 401
    assert gated.get("/readyz", headers=AUTH).status_code == 200


def test_bad_link_signatures_count_as_failures(gated: TestClient, api_world: World) -> None:
    url = f"/ui/activities/{api_world.ex.meeting}/invite"
    for _ in range(5):
        forged = gated.get(url, params={"user": "Supervisor", "exp": "9999999999", "sig": "x"})
        assert forged.status_code == 401
    assert gated.get("/readyz", headers=AUTH).status_code == 429


def test_limiter_window_slides_and_forgets_old_clients() -> None:
    ticker = Ticker()
    limiter = FailedAuthLimiter(2, 10.0, clock=ticker, max_clients=2)
    limiter.failed("a")
    ticker.now += 5
    limiter.failed("a")
    assert limiter.blocked_for("a") == pytest.approx(5.0)
    ticker.now += 5
    assert limiter.blocked_for("a") == 0.0  # the first failure left the window
    limiter.failed("a")
    limiter.failed("b")
    limiter.failed("c")  # only two clients are remembered: "a" is forgotten first
    assert limiter.blocked_for("a") == 0.0


# -- signed dialog links ---------------------------------------------------------------------------
def issue(client: TestClient, activity: object, user: str = "Supervisor", **extra: str):  # type: ignore[no-untyped-def]
    return client.post(
        f"/activities/{activity}/invitation/link", json={"user": user, **extra}, headers=AUTH
    )


def test_a_link_opens_the_dialog_without_a_token(client: TestClient, api_world: World) -> None:
    link = issue(client, api_world.ex.meeting, lang="en")
    assert link.status_code == 200
    body = link.json()
    assert body["url"] == "http://testserver" + body["path"]
    assert body["expires_at"] == "2030-03-04T08:10:00Z"  # the world's clock + 600 s
    page = client.get(body["path"])
    assert page.status_code == 200
    assert "Choose the invitation recipients" in page.text


def test_a_link_uses_the_public_url(api_world: World) -> None:
    api_world.reconfigure(
        api={"tokens": [TOKEN], "public_url": "https://connector.example.com/invite/"}
    )
    with TestClient(create_api(api_world.app)) as client:
        body = issue(client, api_world.ex.meeting).json()
    assert body["url"].startswith("https://connector.example.com/invite/ui/activities/")


@pytest.mark.parametrize("field", ["user", "exp", "sig", "activity"])
def test_a_tampered_link_is_refused(client: TestClient, api_world: World, field: str) -> None:
    path = issue(client, api_world.ex.meeting).json()["path"]
    tampered = {
        "user": path.replace("user=Supervisor", "user=Stas"),
        "exp": path.replace("exp=", "exp=1"),
        "sig": path.replace("sig=", "sig=A"),
        "activity": path.replace(str(api_world.ex.meeting), str(uuid4())),
    }[field]
    page = client.get(tampered)
    assert page.status_code == 401
    assert "Ссылка на окно приглашения недействительна." in page.text
    assert page.headers["content-type"].startswith("text/html")


def test_a_link_does_not_open_the_json_api(client: TestClient, api_world: World) -> None:
    query = issue(client, api_world.ex.meeting).json()["path"].partition("?")[2]
    answer = client.get(f"/activities/{api_world.ex.meeting}/invitation?{query}")
    assert answer.status_code == 401


def test_an_expired_link_is_refused_with_its_own_message(
    client: TestClient, api_world: World
) -> None:
    path = issue(client, api_world.ex.meeting).json()["path"]
    assert client.get(path).status_code == 200
    api_world.clock.advance(seconds=601)
    page = client.get(path)
    assert page.status_code == 401
    assert "Срок действия ссылки истёк" in page.text


def test_links_are_issued_for_known_active_users_only(client: TestClient, api_world: World) -> None:
    assert issue(client, api_world.ex.meeting, "Ghost").json()["code"] == "user_not_found"
    assert issue(client, uuid4()).json()["code"] == "not_found"


def test_link_signer_binds_activity_user_and_expiry(world: World) -> None:
    signer = LinkSigner(b"k" * 32, 60, world.clock)
    activity = uuid4()
    link = signer.issue(activity, "Supervisor")
    assert signer.verify(str(activity), "Supervisor", str(link.exp), link.sig) == "ok"
    assert signer.verify(str(activity), "supervisor", str(link.exp), link.sig) == "invalid"
    assert signer.verify(str(uuid4()), "Supervisor", str(link.exp), link.sig) == "invalid"
    assert signer.verify(str(activity), "Supervisor", str(link.exp + 1), link.sig) == "invalid"
    assert signer.verify("not-a-uuid", "Supervisor", str(link.exp), link.sig) == "invalid"
    other = LinkSigner(b"x" * 32, 60, world.clock)
    assert other.verify(str(activity), "Supervisor", str(link.exp), link.sig) == "invalid"
    world.clock.advance(seconds=61)
    assert signer.verify(str(activity), "Supervisor", str(link.exp), link.sig) == "expired"


def test_link_key_survives_restarts_with_the_same_tokens() -> None:
    from connector.api.security import link_key

    one = ApiConfig.model_validate({"tokens": [TOKEN, SECOND_TOKEN]})
    two = ApiConfig.model_validate({"tokens": [SECOND_TOKEN, TOKEN]})
    assert link_key(one) == link_key(two)
    assert link_key(one) != link_key(ApiConfig.model_validate({"tokens": [TOKEN]}))
    secret = ApiConfig.model_validate({"tokens": [TOKEN], "link_secret": "z" * 32})
    assert link_key(secret) != link_key(one)


# -- logs ------------------------------------------------------------------------------------------
def test_request_log_has_no_token_signature_or_query(
    client: TestClient, api_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    path = issue(client, api_world.ex.meeting).json()["path"]
    sig = path.rpartition("sig=")[2]
    client.get(path)
    client.get("/readyz", headers={"Authorization": f"Bearer {TOKEN}-wrong"})
    client.post(
        f"/activities/{api_world.ex.meeting}/invitation", json={"user": "Supervisor"}, headers=AUTH
    )
    # the server's log (the test client's own httpx log shows the URL it requested)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("connector"))
    assert "event=http_request method=GET path=/ui/activities/" in text
    assert "auth=link" in text and "auth=token" in text
    assert "event=auth_failed client=testclient code=unauthorized" in text
    assert TOKEN not in text and sig not in text and "exp=" not in text
    assert "Встреча с клиентом" not in text  # no message content either


@pytest.fixture
def log_output() -> Iterator[Callable[[str], io.StringIO]]:
    """The connector's own log handler writing to a buffer in a given format; logging is
    restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def start(fmt: str) -> io.StringIO:
        stream = io.StringIO()
        setup_logging("INFO", fmt, [TOKEN], stream=stream)
        return stream

    yield start
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


FORGED = (
    "/x%20event=auth_ok%0Ats=2030-01-01%20level=info%20logger=connector.api"
    "%20event=http_request%20method=POST%20path=/activities/1/invitation%20status=200"
)


@pytest.mark.parametrize("fmt", ["kv", "json"])
def test_a_forged_path_cannot_add_a_log_line_or_a_field(
    client: TestClient, log_output: Callable[[str], io.StringIO], fmt: str
) -> None:
    stream = log_output(fmt)
    assert client.get(FORGED).status_code == 401
    lines = [line for line in stream.getvalue().splitlines() if "http_request" in line]
    assert len(lines) == 1, lines
    if fmt == "json":
        record = json.loads(lines[0])
        assert (record["method"], record["status"], record["logger"]) == (
            "GET",
            "401",
            "connector.api",
        )
        assert record["ts"].startswith("20") and record["ts"] != "2030-01-01"
        assert record["path"].startswith("/x%20event%3Dauth_ok%0Ats%3D2030-01-01")
    else:
        fields = lines[0].split(" ")
        assert [f for f in fields if f.startswith(("event=", "method=", "status="))] == [
            "event=http_request",
            "method=GET",
            "status=401",
        ]


def test_a_non_ascii_digit_in_a_link_is_an_invalid_link(
    gated: TestClient, api_world: World
) -> None:
    url = f"/ui/activities/{api_world.ex.meeting}/invite"
    for _ in range(5):
        answer = gated.get(url, params={"user": "Supervisor", "exp": "²", "sig": "x"})
        assert answer.status_code == 401 and answer.headers["content-type"].startswith("text/html")
    assert gated.get("/readyz", headers=AUTH).status_code == 429  # counted as failures


def test_an_unexpected_error_keeps_the_security_headers_and_the_page_form(
    api_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(api_world.app.service, "draft", broken)
    meeting = api_world.ex.meeting
    with TestClient(create_api(api_world.app), raise_server_exceptions=False) as client:
        answer = client.get(f"/activities/{meeting}/invitation?user=Supervisor", headers=AUTH)
        page = client.get(f"/ui/activities/{meeting}/invite?user=Supervisor", headers=AUTH)
    assert answer.status_code == 500 and answer.json()["code"] == "unexpected"
    assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
    for response in (answer, page):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert "boom" not in response.text


def test_a_non_ascii_token_is_a_config_error(world: World) -> None:
    data = base_config(world.crm, world.tmp, api={"tokens": ["токен-очень-секретный-123"]})
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    assert [path for path, _ in error.value.problems] == ["api.tokens"]


def test_healthz_answers_head_for_load_balancers(client: TestClient) -> None:
    assert client.head("/healthz").status_code == 200
