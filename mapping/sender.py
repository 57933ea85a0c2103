"""Which mailbox an invitation leaves from, and whether the user may use it (manual, 1.2).

Order: the mailbox the admin mapped to the login in the YAML; else the user's own mailboxes
in the CRM (IsDefault first, then SendEmailsViaThisAccount, then the oldest); else the fallback
mailbox (the YAML address, else the CRM system setting), which the user may use only with the
"Send emails" right granted to them or to one of their roles, or as its owner.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from mapping.errors import Refusal
from mapping.model import CrmUser, Mailbox, MailboxRight, Sender, SenderKind
from mapping.text import display_name

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Fallback:
    """The shared mailbox for invitations, with the CRM record that carries its rights.

    ``mailbox`` is None when the address is not registered as a mailbox in the CRM: then no
    right can exist and nobody may send from it.
    """

    address: str
    mailbox: Mailbox | None
    rights: tuple[MailboxRight, ...] = ()
    source: str = "crm_setting"


def best_personal(mailboxes: Iterable[Mailbox]) -> Mailbox | None:
    """The user's preferred own mailbox: IsDefault, then SendEmailsViaThisAccount, then oldest."""
    usable = [m for m in mailboxes if m.address]
    if not usable:
        return None
    return min(
        usable,
        key=lambda m: (not m.is_default, not m.send_via, m.created_on or _EPOCH, str(m.id)),
    )


def may_send(user: CrmUser, mailbox: Mailbox | None, rights: Iterable[MailboxRight]) -> bool:
    """The CRM's rights model: owner, or a "Send emails" grant to the user or any of its roles."""
    if mailbox is None:
        return False
    if mailbox.owner_id is not None and mailbox.owner_id == user.id:
        return True
    units = user.role_ids | {user.id}
    return any(right.level > 0 and right.unit_id in units for right in rights)


def choose_sender(
    user: CrmUser,
    personal: Sequence[Mailbox],
    *,
    override: str | None = None,
    fallback: Fallback | None = None,
    fallback_name: str | None = None,
) -> Sender:
    """Apply the manual's order; raise :class:`Refusal` when no mailbox may be used."""
    name = display_name(user.name) or user.login
    if override:
        return Sender(override, name, SenderKind.PERSONAL, user.login, user.id)
    own = best_personal(personal)
    if own is not None:
        return Sender(own.address, name, SenderKind.PERSONAL, user.login, user.id)
    if fallback is None or not fallback.address:
        raise Refusal("no_mailbox", login=user.login)
    if not may_send(user, fallback.mailbox, fallback.rights):
        raise Refusal("no_mailbox_rights", login=user.login, mailbox=fallback.address)
    shown = display_name(fallback_name) if fallback_name else name
    return Sender(fallback.address, shown, SenderKind.FALLBACK, user.login, user.id)


def authorize_existing(
    user: CrmUser,
    address: str,
    personal: Sequence[Mailbox],
    *,
    override: str | None = None,
    mailbox: Mailbox | None = None,
    rights: Iterable[MailboxRight] = (),
) -> bool:
    """May ``user`` send from ``address``, the organizer mailbox of an earlier send?

    Yes if it is the mailbox the YAML maps to the user, one of the user's own mailboxes, or a
    CRM mailbox on which the user has the "Send emails" right. Nobody may send from another
    user's personal mailbox without such a right.
    """
    wanted = address.strip().lower()
    if override and override.strip().lower() == wanted:
        return True
    if any(m.address.strip().lower() == wanted for m in personal):
        return True
    return may_send(user, mailbox, rights)
