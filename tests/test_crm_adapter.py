"""The BPMSoft adapter on SQLite and on PostgreSQL (quoted CamelCase names, own schema)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy import create_engine, inspect, text

from connector.crm.adapter import CrmUnavailable, SqlCrm
from connector.crm.sample import CrmWriter, manual_example
from mapping.crm_names import CANCELLED_STATUS, CrmNames
from tests.support.pg import new_schema
from tests.support.world import T0, CrmDb, World, make_world


def adapter(w: World) -> SqlCrm:
    return w.app.crm


def test_reads_the_activity_with_category_flag_place_and_participants(any_world: World) -> None:
    m = adapter(any_world).meeting(any_world.ex.meeting)
    assert m is not None
    assert (m.title, m.location, m.category_name, m.invitation_enabled, m.cancelled) == (
        "Встреча с клиентом",
        "Кабинет 404",
        "Встреча",
        True,
        False,
    )
    assert m.start == any_world.ex_start() and m.start.tzinfo is not None
    assert [p.email for p in m.participants] == [
        "ivanov@ivanov.ru",
        "denis@ivanov.by",
        "dasha@ivanov.by",
        "liza@ivanov.by",
    ]
    assert m.owner_contact_id == any_world.ex.supervisor_contact


def test_unknown_activity_is_none(any_world: World) -> None:
    assert adapter(any_world).meeting(uuid4()) is None


def test_cancelled_status_is_recognised(any_world: World) -> None:
    any_world.writer.update_activity(any_world.ex.meeting, StatusId=CANCELLED_STATUS)
    m = adapter(any_world).meeting(any_world.ex.meeting)
    assert m is not None and m.cancelled


def test_meetings_in_batches(any_world: World) -> None:
    w = any_world
    ids = [
        w.writer.activity(
            f"m{i}", w.clock.now, w.clock.now + timedelta(hours=1), participants=[w.ex.denis]
        )
        for i in range(7)
    ]
    crm = adapter(w)
    crm.batch_size = 3
    found = crm.meetings([*ids, uuid4()])
    assert sorted(found) == sorted(ids)
    assert all([p.email for p in found[i].participants] == ["denis@ivanov.by"] for i in ids)


def test_user_with_contact_time_zone_and_effective_roles(any_world: World) -> None:
    w = any_world
    role = w.writer.role("Отдел продаж")
    w.writer.add_to_role(w.ex.stas, role)
    user = adapter(w).user_by_login("stas")  # logins are case-insensitive
    assert user is not None
    assert (user.login, user.name, user.email, user.time_zone_id) == (
        "Stas",
        "Стасов Станислав",
        "stas@ivanov.ru",
        "Russian Standard Time",
    )
    assert role in user.role_ids and user.id in user.role_ids


def test_roles_are_not_users(any_world: World) -> None:
    any_world.writer.role("Supervisors")
    assert adapter(any_world).user_by_login("Supervisors") is None


def test_mailboxes_rights_and_settings(any_world: World) -> None:
    w = any_world
    crm = adapter(w)
    (own,) = [m for m in crm.mailboxes_of(w.ex.supervisor) if m.is_default]
    assert own.address == "ivanov@ivanov.ru"
    box = crm.mailbox_by_address("INVITATIONS@ivanov.ru")
    assert box is not None and box.id == w.ex.fallback_mailbox
    levels = {r.unit_id: r.level for r in crm.send_rights(box.id)}
    assert levels == {w.ex.supervisor: 2, w.ex.stas: 1}
    setting = crm.setting("UsrInvitationMailbox", w.ex.stas)
    assert setting is not None and setting.guid == w.ex.fallback_mailbox


def test_personal_setting_row_wins_over_the_default(any_world: World) -> None:
    w = any_world
    w.writer.setting("UsrInvitationMailbox", text="personal@ivanov.ru", user_id=w.ex.stas)
    crm = adapter(w)
    value = crm.setting("UsrInvitationMailbox", w.ex.stas)
    assert value is not None and value.text == "personal@ivanov.ru"
    other = crm.setting("UsrInvitationMailbox", w.ex.supervisor)
    assert other is not None and other.guid == w.ex.fallback_mailbox
    assert crm.setting("NoSuchCode", None) is None


def test_mailbox_found_by_user_name_when_sender_address_is_empty(any_world: World) -> None:
    w = any_world
    w.writer.mailbox(None, "", user_name="legacy@ivanov.ru")
    box = adapter(w).mailbox_by_address("legacy@ivanov.ru")
    assert box is not None and box.address == "legacy@ivanov.ru"


def test_custom_column_names_from_the_config(crm_db: CrmDb) -> None:
    names = CrmNames(
        invitation_flag="UsrCanInvite",
        location="UsrMeetingPlace",
        invitation_mailbox_setting="UsrMailForInvites",
    )
    writer = CrmWriter(create_engine(crm_db.url), names, schema=crm_db.schema)
    ex = manual_example(writer, start=T0 + timedelta(days=2))
    crm = SqlCrm(writer.engine, names, schema=crm_db.schema)
    m = crm.meeting(ex.meeting)
    assert m is not None and m.location == "Кабинет 404" and m.invitation_enabled
    columns = {
        c["name"] for c in inspect(writer.engine).get_columns("Activity", schema=crm_db.schema)
    }
    assert "UsrMeetingPlace" in columns and "Location" not in columns
    assert crm.setting("UsrMailForInvites", None) is not None
    writer.engine.dispose()


def test_postgres_uses_quoted_camel_case_identifiers(pg_url: str, tmp_path: Path) -> None:
    w = make_world(CrmDb(pg_url, new_schema(pg_url), "postgres"), tmp_path)
    try:
        with w.writer.engine.connect() as conn:
            title = conn.execute(
                text(f'SELECT "Title" FROM "{w.crm.schema}"."Activity" WHERE "Id" = :id'),
                {"id": w.ex.meeting},
            ).scalar()
        assert title == "Встреча с клиентом"
        assert adapter(w).meeting(w.ex.meeting) is not None
    finally:
        w.close()


def test_adapter_is_read_only_on_postgres(pg_url: str) -> None:
    crm = SqlCrm(create_engine(pg_url), CrmNames())
    with crm._conn() as conn:
        assert conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "on"


def test_unreachable_database_is_a_clear_error() -> None:
    crm = SqlCrm.from_url("postgresql+psycopg://nobody@127.0.0.1:1/none", CrmNames())
    with pytest.raises(CrmUnavailable) as failed:
        crm.meeting(uuid4())
    assert "CRM" in failed.value.message("en") and "CRM" in failed.value.message("ru")
