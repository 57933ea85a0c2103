"""SQLAlchemy Core tables for the BPMSoft tables the connector reads.

Names come from :class:`mapping.crm_names.CrmNames`; SQLAlchemy quotes mixed-case names, which
is what BPMSoft's PostgreSQL schema needs (``"Activity"."StartDate"``). The same definitions
create the sample database of the demo and the tests, so both always agree with the adapter.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
)

from mapping.crm_names import CrmNames


def _id() -> Column[object]:
    return Column("Id", Uuid, primary_key=True)


def _audit() -> list[Column[object]]:
    return [
        Column("CreatedOn", DateTime),
        Column("CreatedById", Uuid),
        Column("ModifiedOn", DateTime),
        Column("ModifiedById", Uuid),
    ]


@dataclass(frozen=True)
class CrmTables:
    metadata: MetaData
    activity: Table
    activity_category: Table
    activity_status: Table
    activity_participant: Table
    contact: Table
    sys_admin_unit: Table
    sys_admin_unit_in_role: Table
    mailbox: Table
    mailbox_right: Table
    sys_settings: Table
    sys_settings_value: Table


def crm_tables(names: CrmNames, schema: str | None = None) -> CrmTables:
    md = MetaData(schema=schema)
    activity = Table(
        names.activity,
        md,
        _id(),
        Column("Title", String(500)),
        Column("StartDate", DateTime),
        Column("DueDate", DateTime),
        Column("StatusId", Uuid),
        Column("ActivityCategoryId", Uuid),
        Column("TypeId", Uuid),
        Column("PriorityId", Uuid),
        Column("OwnerId", Uuid),
        Column("AuthorId", Uuid),
        Column("OrganizerId", Uuid),
        Column("ShowInScheduler", Boolean),
        Column("Notes", Text),
        Column(names.location, Text),
        *_audit(),
    )
    category = Table(
        names.activity_category,
        md,
        _id(),
        Column("Name", String(250)),
        Column("Description", String(250)),
        Column("ActivityTypeId", Uuid),
        Column(names.invitation_flag, Boolean),
        *_audit(),
    )
    status = Table(
        "ActivityStatus",
        md,
        _id(),
        Column("Name", String(250)),
        Column("Code", String(250)),
        Column("Finish", Boolean),
    )
    participant = Table(
        names.activity_participant,
        md,
        _id(),
        Column("ActivityId", Uuid),
        Column("ParticipantId", Uuid),
        Column("RoleId", Uuid),
        Column("InviteParticipant", Boolean),
        Column("InviteResponseId", Uuid),
        *_audit(),
    )
    contact = Table(
        names.contact,
        md,
        _id(),
        Column("Name", String(250)),
        Column("Email", String(250)),
        Column("JobTitle", String(250)),
        *_audit(),
    )
    unit = Table(
        names.sys_admin_unit,
        md,
        _id(),
        Column("Name", String(250)),
        Column("ContactId", Uuid),
        Column("SysAdminUnitTypeValue", Integer),
        Column("ParentRoleId", Uuid),
        Column("TimeZoneId", String(250)),
        Column("Active", Boolean),
    )
    in_role = Table(
        names.sys_admin_unit_in_role,
        md,
        _id(),
        Column("SysAdminUnitId", Uuid),
        Column("SysAdminUnitRoleId", Uuid),
    )
    mailbox = Table(
        names.mailbox,
        md,
        _id(),
        Column("SysAdminUnitId", Uuid),
        Column("UserName", String(250)),
        Column("SenderEmailAddress", String(250)),
        Column("MailboxName", String(250)),
        Column("IsShared", Boolean),
        Column("IsDefault", Boolean),
        Column("SendEmailsViaThisAccount", Boolean),
        Column("MailServerId", Uuid),
        Column("CreatedOn", DateTime),
    )
    right = Table(
        names.mailbox_right,
        md,
        _id(),
        Column("RecordId", Uuid),
        Column("SysAdminUnitId", Uuid),
        Column("Operation", Integer),
        Column("RightLevel", Integer),
    )
    settings = Table(
        names.sys_settings,
        md,
        _id(),
        Column("Code", String(250)),
        Column("Name", String(250)),
        Column("ValueTypeName", String(250)),
        Column("IsPersonal", Boolean),
    )
    values = Table(
        names.sys_settings_value,
        md,
        _id(),
        Column("SysSettingsId", Uuid),
        Column("SysAdminUnitId", Uuid),
        Column("IsDef", Boolean),
        Column("TextValue", Text),
        Column("GuidValue", Uuid),
        Column("BooleanValue", Boolean),
        Column("IntegerValue", Integer),
    )
    return CrmTables(
        md,
        activity,
        category,
        status,
        participant,
        contact,
        unit,
        in_role,
        mailbox,
        right,
        settings,
        values,
    )


def sample_indexes(t: CrmTables) -> list[Index]:
    """Indexes a BPMSoft database has (or the optional migration adds) on what we query."""
    return [
        Index("IX_Activity_ModifiedOn_Id", t.activity.c.ModifiedOn, t.activity.c.Id),
        Index("IX_ActivityParticipant_ActivityId", t.activity_participant.c.ActivityId),
        Index(
            "IX_ActivityParticipant_ModifiedOn_Id",
            t.activity_participant.c.ModifiedOn,
            t.activity_participant.c.Id,
        ),
        Index("IX_SysAdminUnitInRole_Unit", t.sys_admin_unit_in_role.c.SysAdminUnitId),
        Index("IX_MailboxRight_Record", t.mailbox_right.c.RecordId),
    ]
