"""The scenarios of the add-on's manual, one by one, end to end on a BPMSoft-shaped database
(SQLite and PostgreSQL), with every message judged by vobject and libical."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.crm.sample import MEETING_CATEGORY
from mapping.errors import Refusal
from mapping.model import SenderKind
from tests.support.checkers import assert_libical_accepts
from tests.support.world import World

PARTICIPANTS = ["denis@ivanov.by", "dasha@ivanov.by", "liza@ivanov.by"]


def test_1_1_flagged_category_can_send(any_world: World) -> None:
    result = any_world.invite()
    assert result.delivered
    assert sorted(result.recipients_sent()) == sorted(PARTICIPANTS)


@pytest.mark.parametrize("category", ["Звонок", "E-mail", "Письменная работа"])
def test_1_1_category_without_flag_is_refused(any_world: World, category: str) -> None:
    w = any_world
    activity = w.writer.activity(
        "Звонок клиенту",
        w.clock.now + timedelta(days=1),
        w.clock.now + timedelta(days=1, minutes=15),
        category_id=w.ex.categories[category],
        location="Кабинет 404",
        participants=[w.ex.denis],
    )
    with pytest.raises(Refusal) as refused:
        w.invite(activity=activity)
    assert refused.value.code == "category_not_enabled"
    assert category in refused.value.message("ru")
    assert "Доступно приглашение" in refused.value.message("ru")
    assert w.envelopes() == []


def test_1_1_todo_category_is_flagged_too(world: World) -> None:
    activity = world.writer.activity(
        "Выполнить: обсудить договор",
        world.clock.now + timedelta(days=1),
        world.clock.now + timedelta(days=1, hours=1),
        category_id=world.ex.categories["Выполнить"],
        location="Кабинет 404",
        participants=[world.ex.dasha],
    )
    assert world.invite(activity=activity).recipients_sent() == ["dasha@ivanov.by"]


def test_1_2_personal_mailbox_is_the_sender(any_world: World) -> None:
    any_world.invite()
    (message,) = any_world.sent()
    assert message.message["From"].addresses[0].addr_spec == "ivanov@ivanov.ru"
    organizer = message.vevent.organizer
    assert organizer.value.lower() == "mailto:ivanov@ivanov.ru"
    assert organizer.params["CN"] == ["Супервизоров Иван"]


def test_1_2_default_personal_mailbox_wins_over_older_ones(world: World) -> None:
    w = world
    older = w.clock.now - timedelta(days=300)
    w.writer.mailbox(w.ex.supervisor, "old@ivanov.ru", created_on=older, send_via=True)
    draft = w.draft()
    assert draft.sender.address == "ivanov@ivanov.ru"  # IsDefault


def test_1_2_without_default_send_via_then_oldest(world: World) -> None:
    w = world
    user = w.writer.user("Petrov", w.writer.contact("Петров Пётр", "petrov@ivanov.ru"))
    w.writer.mailbox(user, "newer@ivanov.ru", send_via=True, created_on=w.clock.now)
    w.writer.mailbox(
        user, "no-send@ivanov.ru", send_via=False, created_on=w.clock.now - timedelta(days=9)
    )
    w.writer.mailbox(
        user, "older@ivanov.ru", send_via=True, created_on=w.clock.now - timedelta(days=5)
    )
    assert w.draft("Petrov").sender.address == "older@ivanov.ru"


def test_1_2_yaml_mapping_overrides_the_crm_mailbox(world: World) -> None:
    world.reconfigure(mailboxes={"users": {"supervisor": "ivan.s@ivanov.ru"}})
    world.invite()
    (message,) = world.sent()
    assert message.vevent.organizer.value.lower() == "mailto:ivan.s@ivanov.ru"


def test_1_3_fallback_mailbox_with_right_given_to_the_user(any_world: World) -> None:
    w = any_world
    result = w.invite("Stas")
    assert result.delivered
    assert w.draft("Stas").sender.kind is SenderKind.FALLBACK
    (message,) = w.sent()
    assert message.message["From"].addresses[0].addr_spec == "invitations@ivanov.ru"
    # Stas is a participant? No: he sees all four participants selected
    assert sorted(message.attendees) == sorted(["ivanov@ivanov.ru", *PARTICIPANTS])


def test_1_3_fallback_setting_as_text_address(sqlite_crm, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.support.world import make_world

    w = make_world(sqlite_crm, tmp_path, setting_as_lookup=False)
    try:
        assert w.draft("Stas").sender.address == "invitations@ivanov.ru"
        assert w.invite("Stas").delivered
    finally:
        w.close()


def test_1_3_fallback_with_right_given_through_a_role(any_world: World) -> None:
    w = any_world
    managers = w.writer.role("Менеджеры по продажам")
    olga = w.writer.user(
        "Olga", w.writer.contact("Ольгина Ольга", "olga@ivanov.ru"), roles=[managers]
    )
    w.writer.grant(w.ex.fallback_mailbox, managers, level=1)
    assert w.draft("Olga").sender.address == "invitations@ivanov.ru"
    assert w.invite("Olga").delivered
    w.writer.remove_from_role(olga, managers)
    with pytest.raises(Refusal) as refused:
        w.invite("Olga", activity=w.ex.meeting)
    assert refused.value.code == "no_mailbox_rights"


def test_1_4_fallback_without_right_is_refused(any_world: World) -> None:
    w = any_world
    w.writer.user("Nobody", w.writer.contact("Безправ Борис", "boris@ivanov.ru"))
    with pytest.raises(Refusal) as refused:
        w.invite("Nobody")
    assert refused.value.code == "no_mailbox_rights"
    text = refused.value.message("ru")
    assert "invitations@ivanov.ru" in text and "Отправка писем" in text
    assert w.envelopes() == []


def test_1_5_denied_right_level_is_no_right(world: World) -> None:
    w = world
    user = w.writer.user("Denied", w.writer.contact("Запретов Захар", "z@ivanov.ru"))
    w.writer.grant(w.ex.fallback_mailbox, user, level=0)
    with pytest.raises(Refusal) as refused:
        w.invite("Denied")
    assert refused.value.code == "no_mailbox_rights"


def test_1_5_only_the_send_operation_counts(world: World) -> None:
    w = world
    user = w.writer.user("Editor", w.writer.contact("Редакторов Роман", "r@ivanov.ru"))
    w.writer.grant(w.ex.fallback_mailbox, user, level=2, operation=1)  # "Mailbox settings"
    with pytest.raises(Refusal) as refused:
        w.invite("Editor")
    assert refused.value.code == "no_mailbox_rights"


def test_2_8_no_mailbox_at_all_is_refused(world: World) -> None:
    w = world
    from sqlalchemy import delete

    values = w.writer.t.sys_settings_value
    with w.writer.engine.begin() as conn:
        conn.execute(delete(values))
    w.writer.user("Lonely", w.writer.contact("Одинокий Олег", "oleg@ivanov.ru"))
    with pytest.raises(Refusal) as refused:
        w.invite("Lonely")
    assert refused.value.code == "no_mailbox"
    assert "Почта для отправки приглашений" in refused.value.message("ru")
    assert "Mailbox for sending invitations" in refused.value.message("en")


def test_2_4_default_selection_is_everyone_but_the_current_user(any_world: World) -> None:
    draft = any_world.draft()
    selected = [c.email for c in draft.candidates if c.selected]
    assert selected == PARTICIPANTS
    me = [c for c in draft.candidates if c.is_current_user]
    assert [c.email for c in me] == ["ivanov@ivanov.ru"] and not me[0].selected


def test_2_4_chosen_recipients_only(world: World) -> None:
    result = world.invite(recipients=[str(world.ex.dasha), "LIZA@ivanov.by"])
    assert sorted(result.recipients_sent()) == ["dasha@ivanov.by", "liza@ivanov.by"]
    (message,) = world.sent()
    assert sorted(message.attendees) == ["dasha@ivanov.by", "liza@ivanov.by"]


def test_2_4_a_non_participant_cannot_be_added(world: World) -> None:
    with pytest.raises(Refusal) as refused:
        world.invite(recipients=["stranger@evil.example"])
    assert refused.value.code == "unknown_recipient"
    assert world.envelopes() == []


def test_2_5_each_recipient_gets_a_real_meeting_request(any_world: World) -> None:
    w = any_world
    result = w.invite()
    assert result.delivered and result.sequence == 0
    (message,) = w.sent()
    assert message.method == "REQUEST"
    assert message.message["Content-Class"] == "urn:content-classes:calendarmessage"
    assert message.attachment_text == message.calendar_text
    assert message.sequence == 0
    assert message.vevent.summary.value == "Встреча с клиентом"
    assert message.vevent.location.value == "Кабинет 404"
    assert message.vevent.dtstart.value == w.ex_start()
    assert_libical_accepts([message.calendar_text])
    files = sorted(w.outbox.glob("*.eml"))
    assert len(files) == 1 and files[0].read_bytes() == w.envelopes()[0].mime


def test_2_9_empty_place_is_refused_with_the_warning(any_world: World) -> None:
    w = any_world
    w.writer.update_activity(w.ex.meeting, location="")
    assert w.draft().location_empty
    with pytest.raises(Refusal) as refused:
        w.invite()
    assert refused.value.code == "location_empty"
    assert "без места встречи" in refused.value.message("ru")
    assert w.envelopes() == []
    assert w.app.store.get_state(w.ex.meeting) is None


def test_2_10_empty_place_confirmed_sends_without_place(any_world: World) -> None:
    w = any_world
    w.writer.update_activity(w.ex.meeting, location="   ")
    assert w.invite(without_location=True).delivered
    (message,) = w.sent()
    assert message.vevent.location.value == ""
    assert "\r\nLOCATION:\r\n" in message.calendar_text
    assert_libical_accepts([message.calendar_text], empty_allowed=["LOCATION"])


def test_2_11_update_keeps_uid_raises_sequence_and_carries_new_values(any_world: World) -> None:
    w = any_world
    w.invite()
    start = w.ex_start() + timedelta(days=2)
    w.writer.update_activity(
        w.ex.meeting, location="Кабинет 505", StartDate=start, DueDate=start + timedelta(hours=1)
    )
    second = w.invite()
    assert second.sequence == 1
    first_msg, update = w.sent()
    assert update.uid == first_msg.uid
    assert update.sequence == first_msg.sequence + 1 == 1
    assert update.vevent.location.value == "Кабинет 505"
    assert update.vevent.dtstart.value == start
    assert update.vevent.dtend.value == start + timedelta(hours=1)
    assert update.vevent.x_microsoft_cdo_appt_sequence.value == "1"
    assert sorted(update.message["To"].addresses[i].addr_spec for i in range(3)) == sorted(
        PARTICIPANTS
    )
    assert "Место: Кабинет 505" in update.text_body
    assert update.vevent.organizer.value == first_msg.vevent.organizer.value
    assert_libical_accepts([first_msg.calendar_text, update.calendar_text])


def test_2_11_a_participant_who_sends_the_update_stays_invited(world: World) -> None:
    """The dialog leaves the current user unticked; a participant who was invited in an earlier
    round and now presses the button must keep the meeting, not get a CANCEL for it."""
    w = world
    w.writer.add_participant(w.ex.meeting, w.ex.stas_contact)
    w.writer.grant(w.ex.personal_mailbox, w.ex.stas, level=1)
    assert "stas@ivanov.ru" in w.invite().recipients_sent()
    draft = w.draft("Stas")
    (stas_line,) = [c for c in draft.candidates if c.is_current_user]
    assert stas_line.selected
    w.writer.update_activity(w.ex.meeting, location="Кабинет 505")
    update = w.invite("Stas")
    assert update.sequence == 1
    (message,) = w.sent()[1:]
    assert message.method == "REQUEST"
    assert sorted(message.attendees) == sorted([*PARTICIPANTS, "stas@ivanov.ru"])
    # unticking oneself on purpose still withdraws one's own invitation
    w.writer.update_activity(w.ex.meeting, location="Кабинет 606")
    w.invite("Stas", recipients=PARTICIPANTS)
    assert [(m.method, sorted(m.attendees)) for m in w.sent()[2:]] == [
        ("REQUEST", sorted(PARTICIPANTS)),
        ("CANCEL", ["stas@ivanov.ru"]),
    ]


def test_2_11_resend_without_change_sends_nothing(any_world: World) -> None:
    w = any_world
    w.invite()
    again = w.invite()
    assert again.nothing_to_send
    assert len(w.envelopes()) == 1


def test_figure_2_11_body_lists_description_time_place_organizer_and_invited(world: World) -> None:
    world.invite()
    (message,) = world.sent()
    text = message.text_body
    assert "Описание: Встреча с клиентом" in text
    assert "Время: среда, 6 марта 2030 13:00 - 13:30 (UTC+03:00)" in text
    assert "Место: Кабинет 404" in text
    assert "Организатор: Супервизоров Иван <ivanov@ivanov.ru>" in text
    for line in (
        "Шилович Денис <denis@ivanov.by>",
        "Плугина Дарья <dasha@ivanov.by>",
        "Титова Елизавета <liza@ivanov.by>",
    ):
        assert line in text
        assert line.replace("<", "&lt;").replace(">", "&gt;") in message.html_body


def test_english_invitation(world: World) -> None:
    world.reconfigure(invitations={"language": "en", "uid_domain": "ivanov.ru"})
    world.invite()
    (message,) = world.sent()
    assert "Time: Wednesday, 6 March 2030 13:00 - 13:30 (UTC+03:00)" in message.text_body
    assert "Organizer: Супервизоров Иван <ivanov@ivanov.ru>" in message.text_body


def test_meeting_category_id_is_the_creatio_one(world: World) -> None:
    assert world.ex.categories["Встреча"] == MEETING_CATEGORY
