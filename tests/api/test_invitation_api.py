"""The JSON endpoints of the "Send invitation" button, end to end on the manual's example."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient

from connector.api import create_api
from connector.api.errors import REFUSAL_STATUS
from mapping.messages import render
from tests.api.helpers import (
    AUTH,
    DIALOG_REFUSALS,
    PARTICIPANTS,
    RefusingMailServer,
    UnreachableMailServer,
    app_with,
    location_empty,
    recipients_of,
)
from tests.support.world import World

RU = {**AUTH, "Accept-Language": "ru-RU,ru;q=0.9"}
EN = {**AUTH, "Accept-Language": "en-GB,en;q=0.8"}


def draft_url(activity: UUID) -> str:
    return f"/activities/{activity}/invitation"


# -- GET: the dialog's content -----------------------------------------------------------------
def test_dialog_content_selects_everyone_but_the_current_user(
    client: TestClient, api_world: World
) -> None:
    answer = client.get(draft_url(api_world.ex.meeting), params={"user": "Supervisor"}, headers=RU)
    assert answer.status_code == 200
    body = answer.json()
    assert body["title"] == "Встреча с клиентом"
    assert body["location"] == "Кабинет 404" and body["location_empty"] is False
    assert body["sender"] == {
        "address": "ivanov@ivanov.ru",
        "name": "Супервизоров Иван",
        "kind": "personal",
    }
    selected = [p["email"] for p in body["participants"] if p["selected"]]
    assert selected == PARTICIPANTS
    (me,) = [p for p in body["participants"] if p["current_user"]]
    assert me["email"] == "ivanov@ivanov.ru" and me["selected"] is False
    assert body["warnings"] == [] and body["already_sent"] is False
    assert api_world.envelopes() == []


def test_dialog_content_of_a_user_on_the_fallback_mailbox(
    client: TestClient, api_world: World
) -> None:
    body = client.get(draft_url(api_world.ex.meeting), params={"user": "Stas"}, headers=RU).json()
    assert body["sender"]["address"] == "invitations@ivanov.ru"
    assert body["sender"]["kind"] == "fallback"
    assert [p["email"] for p in body["participants"] if p["selected"]] == [
        "ivanov@ivanov.ru",
        *PARTICIPANTS,
    ]


def test_dialog_content_warns_about_the_empty_place_in_the_callers_language(
    client: TestClient, api_world: World
) -> None:
    location_empty(api_world)
    url = draft_url(api_world.ex.meeting)
    ru = client.get(url, params={"user": "Supervisor"}, headers=RU).json()
    en = client.get(url, params={"user": "Supervisor"}, headers=EN).json()
    assert ru["location_empty"] is True
    assert ru["warnings"] == [{"code": "location_empty", "message": "Не заполнено место встречи."}]
    assert en["warnings"] == [{"code": "location_empty", "message": "The meeting place is empty."}]


def test_without_accept_language_the_configured_language_is_used(
    client: TestClient, api_world: World
) -> None:
    answer = client.get(draft_url(uuid4()), params={"user": "Supervisor"}, headers=AUTH)
    assert answer.json()["message"].startswith("Активность")


# -- refusals ----------------------------------------------------------------------------------
@pytest.mark.parametrize("code", sorted(DIALOG_REFUSALS))
def test_dialog_refusal_has_a_stable_code_status_and_message(
    client: TestClient, api_world: World, code: str
) -> None:
    scenario, status = DIALOG_REFUSALS[code]
    activity, login = scenario(api_world)
    ru = client.get(draft_url(activity), params={"user": login}, headers=RU)
    en = client.get(draft_url(activity), params={"user": login}, headers=EN)
    assert (ru.status_code, en.status_code) == (status, status)
    assert ru.json()["code"] == en.json()["code"] == code
    assert ru.json()["message"] == render(code, "ru", ru.json()["params"])
    assert en.json()["message"] == render(code, "en", en.json()["params"])
    assert ru.json()["message"] != en.json()["message"]


@pytest.mark.parametrize("code", sorted(DIALOG_REFUSALS))
def test_send_refusal_has_a_stable_code_and_sends_nothing(
    client: TestClient, api_world: World, code: str
) -> None:
    scenario, status = DIALOG_REFUSALS[code]
    activity, login = scenario(api_world)
    answer = client.post(draft_url(activity), json={"user": login}, headers=EN)
    assert answer.status_code == status
    assert answer.json()["code"] == code
    assert answer.json()["message"] == render(code, "en", answer.json()["params"])
    assert api_world.envelopes() == []


def test_no_rights_message_names_the_mailbox_and_the_right(
    client: TestClient, api_world: World
) -> None:
    activity, login = DIALOG_REFUSALS["no_mailbox_rights"][0](api_world)
    body = client.post(draft_url(activity), json={"user": login}, headers=RU).json()
    assert body["params"]["mailbox"] == "invitations@ivanov.ru"
    assert "invitations@ivanov.ru" in body["message"] and "Отправка писем" in body["message"]


def test_empty_place_is_refused_until_the_user_answers_yes(
    client: TestClient, api_world: World
) -> None:
    location_empty(api_world)
    url = draft_url(api_world.ex.meeting)
    asked = client.post(url, json={"user": "Supervisor"}, headers=RU)
    assert asked.status_code == 409
    assert asked.json()["code"] == "location_empty"
    assert asked.json()["message"] == (
        "Не заполнено место встречи. Отправить приглашения без места встречи?"
    )
    assert api_world.envelopes() == []
    confirmed = client.post(
        url, json={"user": "Supervisor", "send_without_location": True}, headers=RU
    )
    assert confirmed.status_code == 200
    (message,) = api_world.sent()
    assert message.vevent.location.value == ""


def test_no_recipients_is_refused(client: TestClient, api_world: World) -> None:
    answer = client.post(
        draft_url(api_world.ex.meeting), json={"user": "Supervisor", "recipients": []}, headers=EN
    )
    assert (answer.status_code, answer.json()["code"]) == (422, "no_recipients")
    assert api_world.envelopes() == []


def test_a_non_participant_is_refused(client: TestClient, api_world: World) -> None:
    answer = client.post(
        draft_url(api_world.ex.meeting),
        json={"user": "Supervisor", "recipients": ["stranger@evil.example"]},
        headers=EN,
    )
    assert (answer.status_code, answer.json()["code"]) == (422, "unknown_recipient")
    assert answer.json()["params"] == {"recipient": "stranger@evil.example"}
    assert api_world.envelopes() == []


def test_every_refusal_code_has_a_status_and_texts_in_both_languages() -> None:
    # not_logged_in: test_api_graph.py (delegated Graph without a sign-in)
    exercised = {
        *DIALOG_REFUSALS,
        "location_empty",
        "no_recipients",
        "unknown_recipient",
        "not_logged_in",
    }
    assert exercised == set(REFUSAL_STATUS)
    for code, status in REFUSAL_STATUS.items():
        assert 400 <= status < 500
        assert render(code, "ru") != render(code, "en") != code


@pytest.mark.parametrize(
    ("make_request", "where"),
    [
        (
            lambda c: c.get("/activities/not-an-id/invitation", params={"user": "x"}, headers=EN),
            "activity_id",
        ),
        (lambda c: c.get(f"/activities/{uuid4()}/invitation", headers=EN), "user"),
        (
            lambda c: c.post(
                f"/activities/{uuid4()}/invitation", json={"user": "x", "cc": 1}, headers=EN
            ),
            "cc",
        ),
        (lambda c: c.post(f"/activities/{uuid4()}/invitation", json={}, headers=EN), "user"),
        (
            lambda c: c.post(
                f"/activities/{uuid4()}/invitation",
                content=b"{not json",
                headers={**EN, "Content-Type": "application/json"},
            ),
            "body",
        ),
        (
            lambda c: c.get(
                f"/activities/{uuid4()}/invitation", params={"user": "a\x00b"}, headers=EN
            ),
            "user",
        ),
        (
            lambda c: c.post(
                f"/activities/{uuid4()}/invitation",
                content=b"\xff\xfe\x00{",
                headers={**EN, "Content-Type": "application/json"},
            ),
            "body",
        ),
        (lambda c: c.get(f"/activities/{uuid4()}/invitation?user=a&user=b", headers=EN), "user"),
    ],
    ids=[
        "bad-id",
        "no-user",
        "unknown-field",
        "empty-body",
        "broken-json",
        "control-char",
        "not-utf8",
        "repeated-user",
    ],
)
def test_malformed_requests_get_422_invalid_request(
    client: TestClient, make_request: Callable[[TestClient], object], where: str
) -> None:
    answer = make_request(client)
    assert answer.status_code == 422  # type: ignore[attr-defined]
    body = answer.json()  # type: ignore[attr-defined]
    assert body["code"] == "invalid_request"
    assert where in body["params"]["detail"]


# -- POST: the send ----------------------------------------------------------------------------
def test_send_to_the_default_selection(client: TestClient, api_world: World) -> None:
    answer = client.post(draft_url(api_world.ex.meeting), json={"user": "Supervisor"}, headers=RU)
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "sent"
    assert body["message"] == "Приглашения на встречу успешно отправлены (3)."
    assert sorted(r["email"] for r in body["recipients"]) == sorted(PARTICIPANTS)
    assert {(r["status"], r["method"]) for r in body["recipients"]} == {("sent", "REQUEST")}
    assert body["sender"] == "ivanov@ivanov.ru" and body["sequence"] == 0
    assert recipients_of(api_world.envelopes()) == [sorted(PARTICIPANTS)]
    (message,) = api_world.sent()
    assert message.method == "REQUEST" and message.uid == body["uid"]


def test_send_to_the_chosen_participants_only(client: TestClient, api_world: World) -> None:
    chosen = [str(api_world.ex.dasha), "LIZA@ivanov.by"]
    answer = client.post(
        draft_url(api_world.ex.meeting),
        json={"user": "Supervisor", "recipients": chosen},
        headers=EN,
    )
    assert answer.status_code == 200
    assert answer.json()["message"] == "Meeting invitations were sent successfully (2)."
    assert recipients_of(api_world.envelopes()) == [["dasha@ivanov.by", "liza@ivanov.by"]]


def test_participant_without_address_is_reported_as_skipped(
    client: TestClient, api_world: World
) -> None:
    nomail = api_world.writer.contact("Безадресный Борис", None)
    api_world.writer.add_participant(api_world.ex.meeting, nomail)
    body = client.post(
        draft_url(api_world.ex.meeting), json={"user": "Supervisor"}, headers=RU
    ).json()
    (skipped,) = [r for r in body["recipients"] if r["status"] == "skipped"]
    assert skipped["name"] == "Безадресный Борис" and skipped["problem"] == "no_email"
    assert skipped["contact_id"] == str(nomail)


def test_resend_without_change_sends_nothing(client: TestClient, api_world: World) -> None:
    url = draft_url(api_world.ex.meeting)
    client.post(url, json={"user": "Supervisor"}, headers=RU)
    again = client.post(url, json={"user": "Supervisor"}, headers=RU)
    assert again.status_code == 200
    assert again.json()["status"] == "nothing"
    assert again.json()["message"] == render("nothing_to_send", "ru")
    assert len(api_world.envelopes()) == 1


def test_update_after_a_change_keeps_the_uid(client: TestClient, api_world: World) -> None:
    url = draft_url(api_world.ex.meeting)
    first = client.post(url, json={"user": "Supervisor"}, headers=RU).json()
    api_world.writer.update_activity(api_world.ex.meeting, location="Кабинет 505")
    second = client.post(url, json={"user": "Supervisor"}, headers=RU).json()
    assert second["uid"] == first["uid"] and second["sequence"] == 1
    assert api_world.sent()[-1].vevent.location.value == "Кабинет 505"


def test_permanent_delivery_failure_is_502_with_the_transports_error(api_world: World) -> None:
    server = RefusingMailServer()
    with app_with(api_world, server) as app, TestClient(create_api(app)) as client:
        answer = client.post(
            draft_url(api_world.ex.meeting), json={"user": "Supervisor"}, headers=RU
        )
        stored = app.store.messages(activity_id=api_world.ex.meeting)
    assert answer.status_code == 502
    body = answer.json()
    assert body["code"] == "delivery_permanent"
    assert body["message"] == "Ошибка отправки приглашения: SendAs denied for this mailbox"
    assert body["params"]["status"] == 403 and body["params"]["remote_code"] == "ErrorSendAsDenied"
    assert body["result"]["status"] == "failed"
    assert {r["status"] for r in body["result"]["recipients"]} == {"parked"}
    assert server.calls == 1
    assert [m.status for m in stored] == ["parked"]


def test_transient_delivery_failure_is_502_and_stays_queued(api_world: World) -> None:
    with app_with(api_world, UnreachableMailServer()) as app, TestClient(create_api(app)) as client:
        answer = client.post(
            draft_url(api_world.ex.meeting), json={"user": "Supervisor"}, headers=EN
        )
        stored = app.store.messages(activity_id=api_world.ex.meeting)
    assert answer.status_code == 502
    assert answer.json()["code"] == "delivery_transient"
    assert answer.json()["message"] == "Temporary delivery error: mail server unreachable"
    assert {r["status"] for r in answer.json()["result"]["recipients"]} == {"failed"}
    assert [m.status for m in stored] == ["failed"]


# -- status --------------------------------------------------------------------------------------
def test_status_before_any_send(client: TestClient, api_world: World) -> None:
    answer = client.get(f"{draft_url(api_world.ex.meeting)}/status", headers=AUTH)
    assert answer.status_code == 200
    assert answer.json() == {
        "activity_id": str(api_world.ex.meeting),
        "meeting": None,
        "messages": [],
    }


def test_status_shows_the_uid_map_entry_and_the_message_log(
    client: TestClient, api_world: World
) -> None:
    sent = client.post(
        draft_url(api_world.ex.meeting), json={"user": "Supervisor"}, headers=AUTH
    ).json()
    body = client.get(f"{draft_url(api_world.ex.meeting)}/status", headers=AUTH).json()
    meeting = body["meeting"]
    assert meeting["uid"] == sent["uid"] and meeting["sequence"] == 0
    assert meeting["organizer"] == {"email": "ivanov@ivanov.ru", "name": "Супервизоров Иван"}
    assert sorted(a["email"] for a in meeting["invited"]) == sorted(PARTICIPANTS)
    assert meeting["messages"] == {"pending": 0, "failed": 0, "parked": 0, "sent": 1}
    (logged,) = body["messages"]
    assert logged["status"] == "sent" and logged["method"] == "REQUEST"
    assert logged["origin"] == "manual" and logged["sender_login"] == "Supervisor"
    assert [a["outcome"] for a in logged["attempt_log"]] == ["sent"]


def test_status_of_an_unknown_activity_is_404(client: TestClient) -> None:
    answer = client.get(f"/activities/{uuid4()}/invitation/status", headers=EN)
    assert (answer.status_code, answer.json()["code"]) == (404, "not_found")


def test_a_wrong_method_names_every_allowed_one(client: TestClient, api_world: World) -> None:
    answer = client.delete(draft_url(api_world.ex.meeting), headers=AUTH)
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, POST"
    assert answer.json()["code"] == "http_405"


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("en", "en"),
        ("ru-RU,ru;q=0.9,en;q=0.8", "ru"),
        ("en;q=0.1, ru;q=0.9", "ru"),  # the quality decides, not the order
        ("en-GB;q=0.8, de, ru;q=0.3", "en"),  # unsupported languages are passed over
        ("en;q=0, ru;q=0.2", "ru"),  # q=0: not this one
        ("en;q=0", "ru"),  # nothing acceptable: the default
        ("fr, *;q=0.5", "ru"),
    ],
)
def test_the_answer_language_follows_accept_language_qualities(
    client: TestClient, api_world: World, header: str, language: str
) -> None:
    answer = client.get(
        f"/activities/{api_world.ex.meeting}/invitation?user=Ghost",
        headers={**AUTH, "Accept-Language": header},
    )
    assert answer.status_code == 404 and "Ghost" in answer.json()["message"]
    russian = any("а" <= ch <= "я" for ch in answer.json()["message"].lower())
    assert russian == (language == "ru"), answer.json()["message"]
