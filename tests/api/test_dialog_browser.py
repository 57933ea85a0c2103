"""The invitation dialog driven in Debian's headless Chromium (Playwright) against a real
uvicorn server on 127.0.0.1, as a CRM button would open it: a signed link in a window.

Screenshots of every figure go to ``test-artifacts/dialog/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector.api import ApiServer, create_api
from tests.api.helpers import AUTH, location_empty, no_mailbox, no_mailbox_rights
from tests.support.deps import missing
from tests.support.world import World

pytestmark = pytest.mark.chromium

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dialog"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        missing("Debian's chromium", f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        missing("playwright", str(error))
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=ARGS, timeout=30_000
        )
        yield chromium
        chromium.close()


@dataclass
class Served:
    server: ApiServer
    world: World

    @property
    def url(self) -> str:
        return self.server.base_url

    def link(self, user: str = "Supervisor", lang: str | None = None) -> str:
        """What the CRM server does when the button is pressed: ask for a signed link."""
        body: dict[str, str] = {"user": user, **({"lang": lang} if lang else {})}
        answer = httpx.post(
            f"{self.url}/activities/{self.world.ex.meeting}/invitation/link",
            json=body,
            headers=AUTH,
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["url"])


@pytest.fixture
def served(api_world: World) -> Iterator[Served]:
    server = ApiServer(create_api(api_world.app), "127.0.0.1:0")
    server.start()
    try:
        yield Served(server, api_world)
    finally:
        server.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(locale="ru-RU", viewport={"width": 800, "height": 640})
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    problems: list[str] = []

    def on_console(message: Any) -> None:
        # a refusal page answers 4xx on purpose; Chromium logs that as a failed load
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(message.text)

    def on_response(response: Any) -> None:
        if response.request.resource_type != "document" and response.status >= 400:
            problems.append(f"{response.status} {response.url}")

    tab.on("console", on_console)
    tab.on("pageerror", lambda error: problems.append(str(error)))
    tab.on("response", on_response)
    yield tab
    context.close()
    assert problems == [], problems  # no CSP violation, no script error, no failed resource


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def ticked(page: Any) -> dict[str, bool]:
    names = page.locator("#participants tbody label").all_inner_texts()
    boxes = page.locator('#participants tbody input[type="checkbox"]')
    return {name: boxes.nth(i).is_checked() for i, name in enumerate(names)}


def test_2_4_dialog_ticks_everyone_but_the_current_user(page: Any, served: Served) -> None:
    response = page.goto(served.link())
    assert response.status == 200
    assert page.locator("h1").inner_text() == "Выбор получателей приглашения"
    assert page.locator("#meeting-title").inner_text() == "Встреча с клиентом"
    assert page.locator("#meeting-place").inner_text() == "Кабинет 404"
    assert ticked(page) == {
        "Супервизоров Иван": False,
        "Шилович Денис": True,
        "Плугина Дарья": True,
        "Титова Елизавета": True,
    }
    assert page.locator("#choose-button").inner_text() == "Выбрать"
    shot(page, "2.4-recipients")
    assert served.world.envelopes() == []


def test_2_5_unticked_participant_is_left_out(page: Any, served: Served) -> None:
    page.goto(served.link())
    page.get_by_label("Плугина Дарья").uncheck()
    page.locator("#choose-button").click()
    page.wait_for_selector("#message")
    assert page.locator("h1").inner_text() == "Приглашение на встречу"
    assert page.locator("#message").inner_text() == (
        "Приглашения на встречу успешно отправлены (2)."
    )
    shot(page, "2.5-success")
    (envelope,) = served.world.envelopes()
    assert sorted(envelope.recipients) == ["denis@ivanov.by", "liza@ivanov.by"]
    (message,) = served.world.sent()
    assert sorted(message.attendees) == ["denis@ivanov.by", "liza@ivanov.by"]


def test_2_9_empty_place_answered_no_sends_nothing(page: Any, served: Served) -> None:
    location_empty(served.world)
    page.goto(served.link())
    assert page.locator("#meeting-place").inner_text() == "(не указано)"
    assert "Не заполнено место встречи." in page.locator("#warnings").inner_text()
    page.locator("#choose-button").click()
    question = page.locator("#question")
    question.wait_for()
    assert question.inner_text() == (
        "Не заполнено место встречи. Отправить приглашения без места встречи?"
    )
    assert page.locator("#yes-button").inner_text() == "Да"
    assert page.locator("#no-button").inner_text() == "Нет"
    shot(page, "2.9-empty-place-question")
    assert served.world.envelopes() == []
    page.locator("#no-button").click()
    page.wait_for_selector("#message")
    assert page.locator("#message").inner_text() == "Приглашения не отправлены."
    shot(page, "2.9-answered-no")
    assert served.world.envelopes() == []
    assert served.world.app.store.get_state(served.world.ex.meeting) is None


def test_2_10_empty_place_answered_yes_sends_without_place(page: Any, served: Served) -> None:
    location_empty(served.world)
    page.goto(served.link())
    page.get_by_label("Титова Елизавета").uncheck()
    page.locator("#choose-button").click()
    page.locator("#yes-button").click()
    page.wait_for_selector("#message")
    assert page.locator("#message").inner_text() == (
        "Приглашения на встречу успешно отправлены (2)."
    )
    shot(page, "2.10-sent-without-place")
    (message,) = served.world.sent()
    assert message.vevent.location.value == ""
    assert sorted(message.attendees) == ["dasha@ivanov.by", "denis@ivanov.by"]


def test_2_7_user_without_rights_on_the_mailbox_sees_the_error(page: Any, served: Served) -> None:
    _, login = no_mailbox_rights(served.world)
    response = page.goto(served.link(login))
    assert response.status == 403
    assert page.locator("h1").inner_text() == "Ошибка"
    text = page.locator("#message").inner_text()
    assert "нет прав на отправку писем с почтового ящика invitations@ivanov.ru" in text
    shot(page, "2.7-no-rights")
    assert served.world.envelopes() == []


def test_2_8_user_without_any_mailbox_sees_the_error(page: Any, served: Served) -> None:
    _, login = no_mailbox(served.world)
    response = page.goto(served.link(login))
    assert response.status == 409
    assert "не привязана личная почта" in page.locator("#message").inner_text()
    shot(page, "2.8-no-mailbox")


def test_choose_is_disabled_while_nobody_is_ticked(page: Any, served: Served) -> None:
    page.goto(served.link())
    choose = page.locator("#choose-button")
    for name in ("Шилович Денис", "Плугина Дарья", "Титова Елизавета"):
        page.get_by_label(name).uncheck()
    assert choose.is_disabled()
    page.get_by_label("Плугина Дарья").check()
    assert choose.is_enabled()


def test_a_double_click_sends_once(page: Any, served: Served) -> None:
    page.goto(served.link())
    page.locator("#choose-button").dblclick()
    page.wait_for_selector("#message")
    assert "успешно отправлены (3)" in page.locator("#message").inner_text()
    assert len(served.world.envelopes()) == 1
    assert len(served.world.app.store.messages()) == 1


def test_the_dialog_in_english(page: Any, served: Served) -> None:
    page.goto(served.link(lang="en"))
    assert page.locator("h1").inner_text() == "Choose the invitation recipients"
    page.locator("#choose-button").click()
    page.wait_for_selector("#message")
    assert page.locator("#message").inner_text() == (
        "Meeting invitations were sent successfully (3)."
    )
    shot(page, "2.5-success-en")


def test_the_crm_opens_the_dialog_in_a_window_and_cancel_closes_it(
    page: Any, served: Served
) -> None:
    page.goto(f"{served.url}/healthz")  # stands in for the CRM page holding the button
    with page.context.expect_page() as opened:
        page.evaluate("url => window.open(url, 'invite', 'width=760,height=600')", served.link())
    dialog = opened.value
    dialog.wait_for_load_state()
    assert dialog.locator("#cancel-button").inner_text() == "Отмена"
    with dialog.expect_event("close"):
        dialog.locator("#cancel-button").click()
    assert dialog.is_closed()
    assert served.world.envelopes() == []


def test_an_expired_link_shows_its_message(page: Any, served: Served) -> None:
    link = served.link()
    served.world.clock.advance(minutes=11)
    response = page.goto(link)
    assert response.status == 401
    assert "Срок действия ссылки истёк" in page.locator("#message").inner_text()
    shot(page, "link-expired")
