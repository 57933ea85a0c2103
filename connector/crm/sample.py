"""A BPMSoft-shaped database for the demo, the tests and the benchmarks.

:class:`CrmWriter` creates the tables the adapter reads (same definitions) and writes rows the
way BPMSoft would; :func:`manual_example` fills in the example of the add-on's manual
(figures 1.1-1.5 and 2.1-2.2).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import Engine, delete, insert, update

from connector.crm.tables import crm_tables, sample_indexes
from mapping.crm_names import ALL_EMPLOYEES, CANCELLED_STATUS, USER_UNIT_TYPE, CrmNames

MEETING_CATEGORY = UUID("42c74c49-58e6-df11-971b-001d60e938c6")
TASK_TYPE = UUID("fbe0acdc-cfc0-df11-b00f-001d60e938c6")
NOT_STARTED = UUID("384d4b84-58e6-df11-971b-001d60e938c6")
PARTICIPANT_ROLE = UUID("1a8324e8-a6e1-df11-971b-001d60e938c6")
IN_DOUBT = UUID("50e89724-522d-446e-be91-12548b8c834d")


def _naive(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


class CrmWriter:
    """Writes BPMSoft-shaped rows. Times are given aware and stored as naive UTC, as BPMSoft."""

    def __init__(
        self,
        engine: Engine,
        names: CrmNames | None = None,
        schema: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ):
        self.engine = engine
        self.names = names or CrmNames()
        self.t = crm_tables(self.names, schema)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.last = datetime(2000, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        """A strictly increasing ModifiedOn (the clock, never twice the same value)."""
        self.last = max(self.clock(), self.last + timedelta(microseconds=1))
        return self.last

    def create_schema(self, *, indexes: bool = True) -> None:
        self.t.metadata.create_all(self.engine)
        if indexes:
            for index in sample_indexes(self.t):
                index.create(self.engine, checkfirst=True)

    def _insert(self, table: Any, **values: Any) -> UUID:
        values.setdefault("Id", uuid4())
        with self.engine.begin() as conn:
            conn.execute(insert(table).values(**values))
        return UUID(str(values["Id"]))

    # -- people and roles ----------------------------------------------------------------
    def contact(self, name: str, email: str | None, *, id: UUID | None = None) -> UUID:
        stamp = _naive(self.now())
        return self._insert(
            self.t.contact,
            Id=id or uuid4(),
            Name=name,
            Email=email,
            CreatedOn=stamp,
            ModifiedOn=stamp,
        )

    def role(self, name: str, *, id: UUID | None = None, kind: int = 6) -> UUID:
        role_id = self._insert(
            self.t.sys_admin_unit,
            Id=id or uuid4(),
            Name=name,
            SysAdminUnitTypeValue=kind,
            Active=True,
        )
        self._insert(
            self.t.sys_admin_unit_in_role, SysAdminUnitId=role_id, SysAdminUnitRoleId=role_id
        )
        return role_id

    def user(
        self,
        login: str,
        contact_id: UUID | None,
        *,
        time_zone: str | None = None,
        active: bool = True,
        roles: Iterable[UUID] = (),
        id: UUID | None = None,
    ) -> UUID:
        user_id = self._insert(
            self.t.sys_admin_unit,
            Id=id or uuid4(),
            Name=login,
            ContactId=contact_id,
            SysAdminUnitTypeValue=USER_UNIT_TYPE,
            TimeZoneId=time_zone,
            Active=active,
        )
        # SysAdminUnitInRole is the flattened membership and includes the unit itself
        for role_id in (user_id, *roles):
            self.add_to_role(user_id, role_id)
        return user_id

    def add_to_role(self, user_id: UUID, role_id: UUID) -> None:
        self._insert(
            self.t.sys_admin_unit_in_role, SysAdminUnitId=user_id, SysAdminUnitRoleId=role_id
        )

    def remove_from_role(self, user_id: UUID, role_id: UUID) -> None:
        r = self.t.sys_admin_unit_in_role
        with self.engine.begin() as conn:
            conn.execute(
                delete(r).where(r.c.SysAdminUnitId == user_id, r.c.SysAdminUnitRoleId == role_id)
            )

    # -- mailboxes, rights, settings ------------------------------------------------------
    def mailbox(
        self,
        owner_id: UUID | None,
        address: str,
        *,
        name: str = "",
        is_default: bool = False,
        send_via: bool = True,
        shared: bool = False,
        created_on: datetime | None = None,
        user_name: str | None = None,
    ) -> UUID:
        return self._insert(
            self.t.mailbox,
            SysAdminUnitId=owner_id,
            UserName=user_name if user_name is not None else address,
            SenderEmailAddress=address,
            MailboxName=name or address,
            IsShared=shared,
            IsDefault=is_default,
            SendEmailsViaThisAccount=send_via,
            CreatedOn=_naive(created_on or self.now()),
        )

    def grant(self, mailbox_id: UUID, unit_id: UUID, level: int = 1, operation: int = 0) -> UUID:
        """A mailbox right row; operation 0 is "Send emails", level 0 denied, 1-2 allowed."""
        return self._insert(
            self.t.mailbox_right,
            RecordId=mailbox_id,
            SysAdminUnitId=unit_id,
            Operation=operation,
            RightLevel=level,
        )

    def revoke(self, mailbox_id: UUID, unit_id: UUID) -> None:
        r = self.t.mailbox_right
        with self.engine.begin() as conn:
            conn.execute(delete(r).where(r.c.RecordId == mailbox_id, r.c.SysAdminUnitId == unit_id))

    def setting(
        self,
        code: str,
        *,
        text: str | None = None,
        guid: UUID | None = None,
        user_id: UUID | None = None,
        value_type: str = "Text",
    ) -> None:
        s, v = self.t.sys_settings, self.t.sys_settings_value
        with self.engine.begin() as conn:
            setting_id = conn.execute(
                s.select().with_only_columns(s.c.Id).where(s.c.Code == code)
            ).scalar()
            if setting_id is None:
                setting_id = uuid4()
                conn.execute(
                    insert(s).values(
                        Id=setting_id,
                        Code=code,
                        Name=code,
                        ValueTypeName=value_type,
                        IsPersonal=False,
                    )
                )
            unit = user_id or ALL_EMPLOYEES
            conn.execute(
                delete(v).where(v.c.SysSettingsId == setting_id, v.c.SysAdminUnitId == unit)
            )
            conn.execute(
                insert(v).values(
                    Id=uuid4(),
                    SysSettingsId=setting_id,
                    SysAdminUnitId=unit,
                    IsDef=user_id is None,
                    TextValue=text,
                    GuidValue=guid,
                )
            )

    # -- lookups and activities -----------------------------------------------------------
    def category(
        self, name: str, *, enabled: bool, id: UUID | None = None, type_id: UUID | None = TASK_TYPE
    ) -> UUID:
        return self._insert(
            self.t.activity_category,
            Id=id or uuid4(),
            Name=name,
            ActivityTypeId=type_id,
            **{self.names.invitation_flag: enabled},
        )

    def set_category_flag(self, category_id: UUID, enabled: bool) -> None:
        c = self.t.activity_category
        with self.engine.begin() as conn:
            conn.execute(
                update(c)
                .where(c.c.Id == category_id)
                .values(**{self.names.invitation_flag: enabled})
            )

    def statuses(self) -> None:
        for status_id, name, finish in (
            (NOT_STARTED, "Не начата", False),
            (UUID("394d4b84-58e6-df11-971b-001d60e938c6"), "В работе", False),
            (UUID("4bdbb88f-58e6-df11-971b-001d60e938c6"), "Завершена", True),
            (CANCELLED_STATUS, "Отменена", True),
        ):
            self._insert(self.t.activity_status, Id=status_id, Name=name, Finish=finish)

    def activity(
        self,
        title: str | None,
        start: datetime | None,
        end: datetime | None,
        *,
        category_id: UUID = MEETING_CATEGORY,
        location: str | None = None,
        status_id: UUID | None = NOT_STARTED,
        owner_contact_id: UUID | None = None,
        participants: Iterable[UUID] = (),
        notes: str | None = None,
        id: UUID | None = None,
    ) -> UUID:
        stamp = _naive(self.now())
        activity_id = self._insert(
            self.t.activity,
            Id=id or uuid4(),
            Title=title,
            StartDate=_naive(start),
            DueDate=_naive(end),
            StatusId=status_id,
            ActivityCategoryId=category_id,
            TypeId=TASK_TYPE,
            OwnerId=owner_contact_id,
            AuthorId=owner_contact_id,
            ShowInScheduler=True,
            Notes=notes,
            CreatedOn=stamp,
            ModifiedOn=stamp,
            **{self.names.location: location},
        )
        for contact_id in participants:
            self.add_participant(activity_id, contact_id)
        return activity_id

    def update_activity(self, activity_id: UUID, **changes: Any) -> None:
        """Change columns by their BPMSoft names (``location`` means the configured column)."""
        values = {}
        for key, value in changes.items():
            column = self.names.location if key == "location" else key
            values[column] = _naive(value) if isinstance(value, datetime) else value
        values["ModifiedOn"] = _naive(self.now())
        a = self.t.activity
        with self.engine.begin() as conn:
            conn.execute(update(a).where(a.c.Id == activity_id).values(**values))

    def delete_activity(self, activity_id: UUID) -> None:
        a, p = self.t.activity, self.t.activity_participant
        with self.engine.begin() as conn:
            conn.execute(delete(p).where(p.c.ActivityId == activity_id))
            conn.execute(delete(a).where(a.c.Id == activity_id))

    def add_participant(self, activity_id: UUID, contact_id: UUID, *, invite: bool = True) -> UUID:
        stamp = _naive(self.now())
        return self._insert(
            self.t.activity_participant,
            ActivityId=activity_id,
            ParticipantId=contact_id,
            RoleId=PARTICIPANT_ROLE,
            InviteParticipant=invite,
            InviteResponseId=IN_DOUBT,
            CreatedOn=stamp,
            ModifiedOn=stamp,
        )

    def remove_participant(self, activity_id: UUID, contact_id: UUID) -> None:
        p = self.t.activity_participant
        with self.engine.begin() as conn:
            conn.execute(
                delete(p).where(p.c.ActivityId == activity_id, p.c.ParticipantId == contact_id)
            )


@dataclass(frozen=True)
class ManualExample:
    """Ids of the manual's example rows."""

    supervisor: UUID
    stas: UUID
    supervisor_contact: UUID
    stas_contact: UUID
    denis: UUID
    dasha: UUID
    liza: UUID
    personal_mailbox: UUID
    fallback_mailbox: UUID
    meeting: UUID
    categories: dict[str, UUID]

    supervisor_address = "ivanov@ivanov.ru"
    fallback_address = "invitations@ivanov.ru"


def manual_example(
    w: CrmWriter, *, start: datetime, setting_as_lookup: bool = True
) -> ManualExample:
    """The example of the manual: figure 1.1 categories, users Supervisor and Stas, the mailboxes
    and rights of figures 1.2-1.5, and the meeting "Встреча с клиентом" of figure 2.2."""
    w.create_schema()
    w.statuses()
    w.role("All employees", id=ALL_EMPLOYEES, kind=0)
    categories = {
        "Звонок": w.category("Звонок", enabled=False, type_id=None),
        "E-mail": w.category("E-mail", enabled=False, type_id=None),
        "Выполнить": w.category("Выполнить", enabled=True),
        "Встреча": w.category("Встреча", enabled=True, id=MEETING_CATEGORY),
        "Письменная работа": w.category("Письменная работа", enabled=False),
        "Звонок (задача)": w.category("Звонок", enabled=False),
    }
    supervisor_contact = w.contact("Супервизоров Иван", ManualExample.supervisor_address)
    stas_contact = w.contact("Стасов Станислав", "stas@ivanov.ru")
    denis = w.contact("Шилович Денис", "denis@ivanov.by")
    dasha = w.contact("Плугина Дарья", "dasha@ivanov.by")
    liza = w.contact("Титова Елизавета", "liza@ivanov.by")
    supervisor = w.user(
        "Supervisor", supervisor_contact, time_zone="Russian Standard Time", roles=[ALL_EMPLOYEES]
    )
    stas = w.user("Stas", stas_contact, time_zone="Russian Standard Time", roles=[ALL_EMPLOYEES])
    personal = w.mailbox(
        supervisor, ManualExample.supervisor_address, name="Иван Супервизоров", is_default=True
    )
    fallback = w.mailbox(
        supervisor, ManualExample.fallback_address, name="Приглашения", shared=True
    )
    w.grant(fallback, supervisor, level=2)  # figure 1.5: allowed with the right to delegate
    w.grant(fallback, stas, level=1)  # figure 1.4: Stas may "Send emails"
    if setting_as_lookup:
        w.setting(w.names.invitation_mailbox_setting, guid=fallback, value_type="Lookup")
    else:
        w.setting(w.names.invitation_mailbox_setting, text=ManualExample.fallback_address)
    meeting = w.activity(
        "Встреча с клиентом",
        start,
        start + timedelta(minutes=30),
        category_id=MEETING_CATEGORY,
        location="Кабинет 404",
        owner_contact_id=supervisor_contact,
        participants=[supervisor_contact, denis, dasha, liza],
    )
    return ManualExample(
        supervisor=supervisor,
        stas=stas,
        supervisor_contact=supervisor_contact,
        stas_contact=stas_contact,
        denis=denis,
        dasha=dasha,
        liza=liza,
        personal_mailbox=personal,
        fallback_mailbox=fallback,
        meeting=meeting,
        categories=categories,
    )
