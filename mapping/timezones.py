"""Time zones: BPMSoft keeps Windows zone ids (SysAdminUnit.TimeZoneId); we need IANA zones.

The Windows -> IANA table is tzlocal's (CLDR's windowsZones), not a hand-written one.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import win_tz


def resolve_zone(zone_id: str | None, default: str) -> ZoneInfo:
    """A ZoneInfo for a Windows id ('Russian Standard Time') or an IANA name.

    Unknown or empty ids give ``default`` (an IANA name validated by the config).
    """
    for candidate in (zone_id, default):
        if not candidate:
            continue
        name = win_tz.get(candidate.strip(), candidate.strip())
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")


def is_known_zone(name: str) -> bool:
    try:
        ZoneInfo(win_tz.get(name, name))
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
