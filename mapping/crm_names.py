"""The declarative map of BPMSoft table and column names the connector reads.

Defaults are Creatio's names (see ``shared/reference/bpmsoft-schema.md``); installations differ,
so the add-on's own names are configurable. Every name is checked against a strict identifier
pattern before it reaches SQL: names are never interpolated, but a bad one should fail at
start-up with a clear message instead of at the first query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from uuid import UUID

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

#: ActivityStatus "Cancelled" in Creatio/BPMSoft.
CANCELLED_STATUS = UUID("201cfba8-58e6-df11-971b-001d60e938c6")
#: The "All employees" admin unit; default rows of settings conventionally belong to it.
ALL_EMPLOYEES = UUID("a29a3ba5-4b0d-de11-9a51-005056c00008")
#: SysAdminUnitTypeValue of a user.
USER_UNIT_TYPE = 4
#: Operation of the "Send emails" right in SysMailboxSyncSettingsRight.
SEND_OPERATION = 0


@dataclass(frozen=True)
class CrmNames:
    """Names of the add-on's columns and settings, and of the tables (rarely changed)."""

    invitation_flag: str = "UsrInvitationAvailable"
    location: str = "Location"
    invitation_mailbox_setting: str = "UsrInvitationMailbox"
    default_timezone_setting: str = "DefaultTimeZone"
    activity: str = "Activity"
    activity_category: str = "ActivityCategory"
    activity_participant: str = "ActivityParticipant"
    contact: str = "Contact"
    sys_admin_unit: str = "SysAdminUnit"
    sys_admin_unit_in_role: str = "SysAdminUnitInRole"
    mailbox: str = "MailboxSyncSettings"
    mailbox_right: str = "SysMailboxSyncSettingsRight"
    sys_settings: str = "SysSettings"
    sys_settings_value: str = "SysSettingsValue"

    #: fields that are setting codes (values in data), not SQL identifiers
    CODE_FIELDS = frozenset({"invitation_mailbox_setting", "default_timezone_setting"})

    def problems(self) -> list[tuple[str, str]]:
        """(field, problem) for every name that is not a plain SQL identifier."""
        found = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in self.CODE_FIELDS:
                if not value or len(value) > 250:
                    found.append((f.name, "must be a setting code of 1-250 characters"))
            elif not IDENTIFIER.match(value):
                found.append((f.name, f"'{value[:80]}' is not a valid SQL identifier"))
        return found
