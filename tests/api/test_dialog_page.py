"""The dialog page as HTML (no browser): its content, its safety, and its form without
JavaScript. The browser-driven scenarios are in test_dialog_browser.py."""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import AUTH, PARTICIPANTS, location_empty, recipients_of
from tests.support.world import World


class Form(HTMLParser):
    """The page's form as a browser would submit it: ticked boxes and hidden fields."""

    def __init__(self) -> None:
        super().__init__()
        self.boxes: list[dict[str, str | None]] = []
        self.hidden: list[tuple[str, str]] = []
        self.buttons: list[dict[str, str | None]] = []
        self.action: str | None = None
        self.scripts: list[dict[str, str | None]] = []
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if tag == "form":
            self.action = a.get("action")
        elif tag == "input" and a.get("type") == "checkbox":
            self.boxes.append(a)
        elif tag == "input" and a.get("type") == "hidden":
            self.hidden.append((str(a["name"]), str(a["value"])))
        elif tag == "button":
            self.buttons.append(a)
        elif tag == "script":
            self.scripts.append(a)


def parse(html: str) -> Form:
    form = Form()
    form.feed(html)
    return form


def page_url(activity: UUID, user: str = "Supervisor") -> str:
    return f"/ui/activities/{activity}/invite?user={user}"


def test_the_page_lists_participants_with_the_default_selection(
    client: TestClient, api_world: World
) -> None:
    page = client.get(page_url(api_world.ex.meeting), headers=AUTH)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    form = parse(page.text)
    ticked = [b["value"] for b in form.boxes if "checked" in b]
    assert ticked == [str(c) for c in (api_world.ex.denis, api_world.ex.dasha, api_world.ex.liza)]
    me = next(b for b in form.boxes if b["value"] == str(api_world.ex.supervisor_contact))
    assert "checked" not in me
    assert "Выбрать" in page.text and "Кабинет 404" in page.text
    assert "среда, 6 марта 2030 13:00 - 13:30 (UTC+03:00)" in page.text
    assert form.action == "invite?user=Supervisor"


def test_the_page_speaks_english_when_asked(client: TestClient, api_world: World) -> None:
    page = client.get(page_url(api_world.ex.meeting) + "&lang=en", headers=AUTH)
    assert '<html lang="en">' in page.text
    assert ">Choose</button>" in page.text
    assert "Wednesday, 6 March 2030" in page.text
    by_header = client.get(
        page_url(api_world.ex.meeting), headers={**AUTH, "Accept-Language": "en-US"}
    )
    assert ">Choose</button>" in by_header.text


def test_crm_text_is_escaped(client: TestClient, api_world: World) -> None:
    w = api_world
    evil = w.writer.contact('<img src=x onerror="alert(1)">', "evil@ivanov.by")
    start = w.clock.now + timedelta(days=1)
    activity = w.writer.activity(
        "</title><script>alert('title')</script>",
        start,
        start + timedelta(hours=1),
        location='<b>Кабинет</b> & "404"',
        participants=[evil, w.ex.denis],
    )
    page = client.get(page_url(activity), headers=AUTH)
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "<img" not in page.text
    assert "&lt;/title&gt;&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt;" in page.text
    assert "&lt;b&gt;Кабинет&lt;/b&gt; &amp; &#34;404&#34;" in page.text
    form = parse(page.text)
    assert form.handlers == []
    assert len(form.scripts) == 1


def test_the_page_has_a_strict_content_security_policy(
    client: TestClient, api_world: World
) -> None:
    page = client.get(page_url(api_world.ex.meeting), headers=AUTH)
    csp = page.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "form-action 'self'" in csp
    nonce = re.search(r"script-src 'nonce-([^']+)'", csp)
    assert nonce is not None
    assert parse(page.text).scripts == [{"nonce": nonce.group(1)}]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    again = client.get(page_url(api_world.ex.meeting), headers=AUTH)
    assert again.headers["content-security-policy"] != csp  # a fresh nonce per response


def test_frame_ancestors_can_allow_the_crm(api_world: World) -> None:
    from connector.api import create_api
    from tests.api.helpers import TOKEN

    api_world.reconfigure(api={"tokens": [TOKEN], "frame_ancestors": ["https://crm.example.com"]})
    with TestClient(create_api(api_world.app)) as client:
        page = client.get(page_url(api_world.ex.meeting), headers=AUTH)
    assert "frame-ancestors https://crm.example.com" in page.headers["content-security-policy"]
    assert "x-frame-options" not in page.headers


def test_a_refusal_is_shown_as_the_error_box(client: TestClient, api_world: World) -> None:
    api_world.writer.user("Nobody", api_world.writer.contact("Безправ Борис", "b@ivanov.ru"))
    page = client.get(page_url(api_world.ex.meeting, "Nobody"), headers=AUTH)
    assert page.status_code == 403
    assert "нет прав на отправку писем с почтового ящика invitations@ivanov.ru" in page.text
    assert 'id="message" role="alert"' in page.text


def test_a_malformed_page_request_is_an_html_422(client: TestClient) -> None:
    page = client.get("/ui/activities/nonsense/invite?user=Supervisor", headers=AUTH)
    assert page.status_code == 422
    assert page.headers["content-type"].startswith("text/html")
    assert "Неверный запрос" in page.text


def submit(client: TestClient, activity: UUID, data: list[tuple[str, str]]):  # type: ignore[no-untyped-def]
    return client.post(
        page_url(activity),
        content="&".join(f"{k}={v}" for k, v in data).encode(),
        headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
    )


def test_the_form_sends_to_the_ticked_participants(client: TestClient, api_world: World) -> None:
    ticked = [("recipient", str(api_world.ex.denis)), ("recipient", str(api_world.ex.liza))]
    page = submit(client, api_world.ex.meeting, ticked)
    assert page.status_code == 200
    assert "Приглашения на встречу успешно отправлены (2)." in page.text
    assert recipients_of(api_world.envelopes()) == [["denis@ivanov.by", "liza@ivanov.by"]]


def test_the_form_without_a_ticked_participant_is_refused(
    client: TestClient, api_world: World
) -> None:
    page = submit(client, api_world.ex.meeting, [])
    assert page.status_code == 422
    assert "Нет получателей" in page.text
    assert api_world.envelopes() == []


@pytest.mark.parametrize(("answer", "sent"), [("no", False), ("yes", True)])
def test_the_empty_place_question_without_javascript(
    client: TestClient, api_world: World, answer: str, sent: bool
) -> None:
    location_empty(api_world)
    ticked = [("recipient", str(c)) for c in (api_world.ex.denis, api_world.ex.dasha)]
    question = submit(client, api_world.ex.meeting, ticked)
    assert question.status_code == 409
    assert "Отправить приглашения без места встречи?" in question.text
    form = parse(question.text)
    assert form.hidden == ticked
    assert [(b["name"], b["value"]) for b in form.buttons] == [("answer", "yes"), ("answer", "no")]
    assert api_world.envelopes() == []
    result = submit(client, api_world.ex.meeting, [*form.hidden, ("answer", answer)])
    assert result.status_code == 200
    if sent:
        assert "успешно отправлены (2)" in result.text
        (message,) = api_world.sent()
        assert message.vevent.location.value == ""
        assert sorted(message.attendees) == ["dasha@ivanov.by", "denis@ivanov.by"]
    else:
        assert "Приглашения не отправлены." in result.text
        assert api_world.envelopes() == []


def test_the_form_rejects_other_content(client: TestClient, api_world: World) -> None:
    page = client.post(
        page_url(api_world.ex.meeting),
        json={"recipient": PARTICIPANTS},
        headers=AUTH,
    )
    assert page.status_code == 422
    assert api_world.envelopes() == []


def test_a_form_over_64_kib_is_refused(client: TestClient, api_world: World) -> None:
    def body():  # type: ignore[no-untyped-def]
        for _ in range(16):  # 1 MiB in 64 KiB chunks
            yield b"recipient=" + b"x" * (64 * 1024 - 10)

    page = client.post(
        page_url(api_world.ex.meeting),
        content=body(),
        headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert page.status_code == 422
    assert api_world.envelopes() == []


@pytest.mark.parametrize(
    "data",
    [[("answer", "maybe")], [("answer", "yes"), ("answer", "no")], [("recipient", "x" * 321)]],
    ids=["unknown-answer", "two-answers", "long-recipient"],
)
def test_the_form_rejects_values_outside_its_schema(
    client: TestClient, api_world: World, data: list[tuple[str, str]]
) -> None:
    page = submit(client, api_world.ex.meeting, data)
    assert page.status_code == 422
    assert "Неверный запрос" in page.text
    assert api_world.envelopes() == []
