"""A reference model of the recipients' calendars (RFC 5546, as Outlook applies iTIP).

Per recipient and UID: a REQUEST with a SEQUENCE lower than the stored one is ignored (at
equal SEQUENCE the later DTSTAMP wins, so a re-delivery applies again); a REQUEST otherwise
creates or replaces the entry; a CANCEL that is not older than the entry removes it. The model
keeps no tombstones, so a stale REQUEST delivered after a CANCEL would wrongly re-create the
meeting: the connector must never deliver out of order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Entry:
    sequence: int
    content: Any


@dataclass
class Calendars:
    entries: dict[str, dict[str, Entry]] = field(default_factory=dict)

    def apply(self, recipient: str, method: str, uid: str, sequence: int, content: Any) -> None:
        box = self.entries.setdefault(recipient.lower(), {})
        current = box.get(uid)
        if current is not None and sequence < current.sequence:
            return
        if method == "REQUEST":
            box[uid] = Entry(sequence, content)
        elif method == "CANCEL":
            box.pop(uid, None)
        else:
            raise ValueError(method)

    def entry(self, recipient: str, uid: str) -> Entry | None:
        return self.entries.get(recipient.lower(), {}).get(uid)

    def holders(self, uid: str) -> set[str]:
        return {who for who, box in self.entries.items() if uid in box}
