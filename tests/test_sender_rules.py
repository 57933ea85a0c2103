"""The sender rules of manual section 1.2 as pure functions (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from mapping.errors import Refusal
from mapping.model import CrmUser, Mailbox, MailboxRight, SenderKind
from mapping.sender import Fallback, authorize_existing, best_personal, choose_sender, may_send

ROLE = uuid4()


def user(**kw: object) -> CrmUser:
    values: dict[str, object] = {
        "id": uuid4(),
        "login": "Stas",
        "contact_id": uuid4(),
        "name": "Стасов Станислав",
        "email": "stas@x.ru",
        "time_zone_id": None,
        "active": True,
        "role_ids": frozenset({ROLE}),
    }
    values.update(kw)
    return CrmUser(**values)  # type: ignore[arg-type]


def mailbox(address: str, owner: object = None, **kw: object) -> Mailbox:
    return Mailbox(id=uuid4(), owner_id=owner, address=address, **kw)  # type: ignore[arg-type]


def test_personal_mailbox_first() -> None:
    u = user()
    sender = choose_sender(u, [mailbox("me@x.ru", u.id)], fallback=None)
    assert (sender.address, sender.kind) == ("me@x.ru", SenderKind.PERSONAL)


def test_yaml_override_beats_the_crm_mailbox() -> None:
    u = user()
    sender = choose_sender(u, [mailbox("me@x.ru", u.id)], override="mapped@x.ru")
    assert sender.address == "mapped@x.ru"


def test_personal_order_default_then_send_via_then_oldest() -> None:
    old = datetime(2020, 1, 1, tzinfo=UTC)
    new = datetime(2024, 1, 1, tzinfo=UTC)
    a = mailbox("a@x.ru", created_on=old)
    b = mailbox("b@x.ru", created_on=new, send_via=True)
    c = mailbox("c@x.ru", created_on=new, is_default=True)
    assert best_personal([a, b, c]) == c
    assert best_personal([a, b]) == b
    assert best_personal([mailbox("d@x.ru", created_on=new), a]) == a
    assert best_personal([mailbox("", is_default=True)]) is None


def test_fallback_with_right_to_the_user() -> None:
    u = user()
    box = mailbox("inv@x.ru")
    fallback = Fallback("inv@x.ru", box, (MailboxRight(u.id, 1),))
    sender = choose_sender(u, [], fallback=fallback)
    assert (sender.address, sender.kind, sender.name) == (
        "inv@x.ru",
        SenderKind.FALLBACK,
        "Стасов Станислав",
    )


def test_fallback_with_right_to_a_role() -> None:
    u = user()
    fallback = Fallback("inv@x.ru", mailbox("inv@x.ru"), (MailboxRight(ROLE, 2),))
    assert (
        choose_sender(u, [], fallback=fallback, fallback_name="Приглашения").name == "Приглашения"
    )


@pytest.mark.parametrize(
    "rights",
    [(), (MailboxRight(uuid4(), 1),), (MailboxRight(ROLE, 0),)],
    ids=["no rows", "someone else", "denied level"],
)
def test_fallback_without_right_is_refused(rights: tuple[MailboxRight, ...]) -> None:
    fallback = Fallback("inv@x.ru", mailbox("inv@x.ru"), rights)
    with pytest.raises(Refusal) as refused:
        choose_sender(user(), [], fallback=fallback)
    assert refused.value.code == "no_mailbox_rights"
    assert refused.value.params["mailbox"] == "inv@x.ru"


def test_owner_of_the_fallback_always_may() -> None:
    u = user()
    assert may_send(u, mailbox("inv@x.ru", u.id), [])


def test_fallback_unknown_to_the_crm_cannot_be_used() -> None:
    with pytest.raises(Refusal) as refused:
        choose_sender(user(), [], fallback=Fallback("inv@x.ru", None, ()))
    assert refused.value.code == "no_mailbox_rights"


def test_no_mailbox_at_all() -> None:
    with pytest.raises(Refusal) as refused:
        choose_sender(user(), [], fallback=None)
    assert refused.value.code == "no_mailbox"


def test_nobody_sends_from_another_users_personal_mailbox() -> None:
    owner = user(login="Supervisor")
    other = user()
    box = mailbox("ivanov@x.ru", owner.id)
    assert authorize_existing(owner, "IVANOV@x.ru", [box], mailbox=box)
    assert not authorize_existing(other, "ivanov@x.ru", [], mailbox=box, rights=[])
    assert authorize_existing(
        other, "ivanov@x.ru", [], mailbox=box, rights=[MailboxRight(other.id, 1)]
    )
