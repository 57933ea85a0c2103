"""The BPMSoft database adapter: SQLAlchemy Core, parameterised SELECTs only.

On PostgreSQL every transaction is opened read-only (``postgresql_readonly``) when
``crm.read_only`` is on; on other databases the adapter simply never writes.
Database errors are mapped into the connector's tree as ``crm_unavailable``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    create_engine,
    func,
    or_,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from connector.crm.tables import CrmTables, crm_tables
from connector.ports import SettingValue
from mapping.crm_names import SEND_OPERATION, USER_UNIT_TYPE, CrmNames
from mapping.errors import ConnectorError
from mapping.model import CrmUser, Mailbox, MailboxRight, Meeting, Participant


class CrmUnavailable(ConnectorError):
    exit_code = 1
    code = "crm_unavailable"


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SqlCrm:
    """Reads activities, participants, users, mailboxes, rights and settings."""

    def __init__(
        self,
        engine: Engine,
        names: CrmNames,
        *,
        schema: str | None = None,
        cancelled_status_ids: Sequence[UUID] = (),
        read_only: bool = True,
        batch_size: int = 500,
    ) -> None:
        self.engine = engine
        self.names = names
        self.t: CrmTables = crm_tables(names, schema)
        self.cancelled = frozenset(cancelled_status_ids)
        self.read_only = read_only and engine.dialect.name == "postgresql"
        self.batch_size = batch_size

    @classmethod
    def from_url(cls, url: str, names: CrmNames, **kwargs: object) -> SqlCrm:
        engine = create_engine(url, pool_pre_ping=True, future=True)
        return cls(engine, names, **kwargs)  # type: ignore[arg-type]

    @contextmanager
    def _conn(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                if self.read_only:
                    conn = conn.execution_options(postgresql_readonly=True)
                yield conn
                conn.rollback()
        except SQLAlchemyError as exc:
            raise CrmUnavailable(detail=type(exc).__name__) from exc

    # -- activities ---------------------------------------------------------------------
    def meeting(self, activity_id: UUID) -> Meeting | None:
        return self.meetings([activity_id]).get(activity_id)

    def meetings(self, activity_ids: Sequence[UUID]) -> dict[UUID, Meeting]:
        ids = list(dict.fromkeys(activity_ids))
        result: dict[UUID, Meeting] = {}
        with self._conn() as conn:
            for i in range(0, len(ids), self.batch_size):
                result.update(self._meetings(conn, ids[i : i + self.batch_size]))
        return result

    def _meetings(self, conn: Connection, ids: list[UUID]) -> dict[UUID, Meeting]:
        a, c, p, ct = (
            self.t.activity,
            self.t.activity_category,
            self.t.activity_participant,
            (self.t.contact),
        )
        flag = c.c[self.names.invitation_flag]
        rows = conn.execute(
            select(
                a.c.Id,
                a.c.Title,
                a.c.StartDate,
                a.c.DueDate,
                a.c.StatusId,
                a.c.ActivityCategoryId,
                a.c.OwnerId,
                a.c.AuthorId,
                a.c.Notes,
                a.c[self.names.location].label("location"),
                a.c.ModifiedOn,
                c.c.Name.label("category_name"),
                flag.label("flag"),
            )
            .select_from(a.outerjoin(c, c.c.Id == a.c.ActivityCategoryId))
            .where(a.c.Id.in_(ids))
        ).all()
        people: dict[UUID, list[Participant]] = {}
        for row in conn.execute(
            select(p.c.ActivityId, p.c.ParticipantId, p.c.InviteParticipant, ct.c.Name, ct.c.Email)
            .select_from(p.join(ct, ct.c.Id == p.c.ParticipantId))
            .where(p.c.ActivityId.in_(ids))
            .order_by(p.c.ActivityId, p.c.CreatedOn, ct.c.Name, p.c.Id)
        ):
            people.setdefault(row.ActivityId, []).append(
                Participant(
                    contact_id=row.ParticipantId,
                    name=row.Name or "",
                    email=row.Email,
                    invite=row.InviteParticipant is not False,
                )
            )
        return {
            row.Id: Meeting(
                activity_id=row.Id,
                title=row.Title or "",
                start=_utc(row.StartDate),
                end=_utc(row.DueDate),
                location=row.location or "",
                notes=row.Notes or "",
                status_id=row.StatusId,
                category_id=row.ActivityCategoryId,
                category_name=row.category_name or "",
                invitation_enabled=bool(row.flag),
                cancelled=row.StatusId in self.cancelled,
                owner_contact_id=row.OwnerId,
                author_contact_id=row.AuthorId,
                participants=tuple(people.get(row.Id, ())),
                modified_on=_utc(row.ModifiedOn),
            )
            for row in rows
        }

    # -- change detection (the sync service) -------------------------------------------
    def changed_activities(
        self, since: datetime, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[tuple[datetime, UUID, UUID]]:
        """One page of Activity rows modified at or after ``since``.

        Rows are (ModifiedOn, Id, Id) in (ModifiedOn, Id) order; ``after`` is the last row of
        the previous page (keyset pagination, served by an index on ModifiedOn).
        """
        a = self.t.activity
        return self._changed(a.c.ModifiedOn, a.c.Id, a.c.Id, since, after, limit)

    def changed_participants(
        self, since: datetime, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[tuple[datetime, UUID, UUID]]:
        """One page of ActivityParticipant rows modified at or after ``since``:
        (ModifiedOn, row Id, ActivityId)."""
        p = self.t.activity_participant
        return self._changed(p.c.ModifiedOn, p.c.Id, p.c.ActivityId, since, after, limit)

    def _changed(
        self,
        stamp: ColumnElement[datetime],
        key: ColumnElement[UUID],
        activity: ColumnElement[UUID],
        since: datetime,
        after: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[tuple[datetime, UUID, UUID]]:
        query = select(stamp, key, activity).where(stamp >= _naive(since))
        if after is not None:
            last_stamp, last_key = _naive(after[0]), after[1]
            query = query.where(or_(stamp > last_stamp, and_(stamp == last_stamp, key > last_key)))
        query = query.order_by(stamp, key).limit(limit)
        with self._conn() as conn:
            rows = conn.execute(query).all()
        return [(_utc(r[0]) or since, r[1], r[2]) for r in rows]

    # -- users, roles -------------------------------------------------------------------
    def user_by_login(self, login: str) -> CrmUser | None:
        u = self.t.sys_admin_unit
        return self._user(func.lower(u.c.Name) == login.strip().lower())

    def user_by_id(self, user_id: UUID) -> CrmUser | None:
        return self._user(self.t.sys_admin_unit.c.Id == user_id)

    def _user(self, condition: object) -> CrmUser | None:
        u, ct, r = self.t.sys_admin_unit, self.t.contact, self.t.sys_admin_unit_in_role
        with self._conn() as conn:
            row = conn.execute(
                select(
                    u.c.Id,
                    u.c.Name,
                    u.c.ContactId,
                    u.c.TimeZoneId,
                    u.c.Active,
                    ct.c.Name.label("contact_name"),
                    ct.c.Email,
                )
                .select_from(u.outerjoin(ct, ct.c.Id == u.c.ContactId))
                .where(condition, u.c.SysAdminUnitTypeValue.in_([USER_UNIT_TYPE, 5]))  # type: ignore[arg-type]
                .order_by(u.c.Id)
                .limit(1)
            ).first()
            if row is None:
                return None
            roles = conn.execute(
                select(r.c.SysAdminUnitRoleId).where(r.c.SysAdminUnitId == row.Id)
            ).scalars()
            return CrmUser(
                id=row.Id,
                login=row.Name or "",
                contact_id=row.ContactId,
                name=row.contact_name or row.Name or "",
                email=row.Email,
                time_zone_id=row.TimeZoneId or None,
                active=row.Active is not False,
                role_ids=frozenset(x for x in roles if x is not None),
            )

    # -- mailboxes and rights -----------------------------------------------------------
    def _mailbox_query(self, condition: object) -> list[Mailbox]:
        m = self.t.mailbox
        with self._conn() as conn:
            rows = conn.execute(select(m).where(condition).order_by(m.c.CreatedOn, m.c.Id)).all()  # type: ignore[arg-type]
        return [
            Mailbox(
                id=row.Id,
                owner_id=row.SysAdminUnitId,
                address=(row.SenderEmailAddress or row.UserName or "").strip(),
                name=row.MailboxName or "",
                is_default=bool(row.IsDefault),
                send_via=bool(row.SendEmailsViaThisAccount),
                is_shared=bool(row.IsShared),
                created_on=_utc(row.CreatedOn),
            )
            for row in rows
        ]

    def mailboxes_of(self, user_id: UUID) -> list[Mailbox]:
        return self._mailbox_query(self.t.mailbox.c.SysAdminUnitId == user_id)

    def mailbox_by_address(self, address: str) -> Mailbox | None:
        m = self.t.mailbox
        wanted = address.strip().lower()
        found = self._mailbox_query(
            or_(
                func.lower(m.c.SenderEmailAddress) == wanted,
                and_(
                    or_(m.c.SenderEmailAddress.is_(None), m.c.SenderEmailAddress == ""),
                    func.lower(m.c.UserName) == wanted,
                ),
            )
        )
        return found[0] if found else None

    def mailbox_by_id(self, mailbox_id: UUID) -> Mailbox | None:
        found = self._mailbox_query(self.t.mailbox.c.Id == mailbox_id)
        return found[0] if found else None

    def send_rights(self, mailbox_id: UUID) -> list[MailboxRight]:
        r = self.t.mailbox_right
        with self._conn() as conn:
            rows = conn.execute(
                select(r.c.SysAdminUnitId, r.c.RightLevel).where(
                    r.c.RecordId == mailbox_id, r.c.Operation == SEND_OPERATION
                )
            ).all()
        return [MailboxRight(row.SysAdminUnitId, int(row.RightLevel or 0)) for row in rows]

    # -- settings -----------------------------------------------------------------------
    def setting(self, code: str, user_id: UUID | None) -> SettingValue | None:
        """The personal value for ``user_id`` if there is one, else the default (IsDef) one."""
        s, v = self.t.sys_settings, self.t.sys_settings_value
        with self._conn() as conn:
            rows = conn.execute(
                select(v.c.SysAdminUnitId, v.c.IsDef, v.c.TextValue, v.c.GuidValue)
                .select_from(v.join(s, s.c.Id == v.c.SysSettingsId))
                .where(s.c.Code == code)
            ).all()
        personal = [r for r in rows if user_id is not None and r.SysAdminUnitId == user_id]
        default = [r for r in rows if r.IsDef]
        for row in (*personal, *default):
            text = (row.TextValue or "").strip() or None
            if text is not None or row.GuidValue is not None:
                return SettingValue(text=text, guid=row.GuidValue)
        return None

    def ping(self) -> None:
        with self._conn() as conn:
            conn.execute(select(1))
