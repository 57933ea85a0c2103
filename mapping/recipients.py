"""Who may be invited (manual 2.4): the activity's participants, all but the current user."""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from uuid import UUID

from mapping.addresses import normalise_email, same_address
from mapping.errors import Refusal
from mapping.model import Attendee, CrmUser, Meeting
from mapping.text import display_name


class Problem(enum.StrEnum):
    NO_EMAIL = "no_email"
    BAD_EMAIL = "bad_email"
    DUPLICATE_EMAIL = "duplicate_email"
    ORGANIZER = "organizer"


@dataclass(frozen=True)
class Candidate:
    """A line of the recipient dialog (figure 2.4)."""

    contact_id: UUID
    name: str
    email: str | None
    raw_email: str | None
    problem: Problem | None
    is_current_user: bool
    selected: bool

    @property
    def attendee(self) -> Attendee | None:
        if self.email is None or self.problem is not None:
            return None
        return Attendee(self.email, self.name, self.contact_id)


@dataclass(frozen=True)
class Selection:
    attendees: tuple[Attendee, ...]
    skipped: tuple[Candidate, ...]


def candidates(
    meeting: Meeting,
    user: CrmUser,
    organizer_address: str | None,
    invited: Collection[str] = frozenset(),
) -> list[Candidate]:
    """The dialog's list: one line per participant contact, in the CRM's order.

    Default selection: every participant with a usable address except the current user (matched
    by contact), the organising mailbox itself and participants whose "InviteParticipant" flag
    is off; but a participant already invited (``invited``: lower-cased addresses of the last
    round) stays selected, the current user included, because a re-send without them would
    cancel their meeting. Duplicate contacts are shown once; a second contact with an address
    already listed is shown but cannot be selected.
    """
    seen_contacts: set[UUID] = set()
    seen_addresses: set[str] = set()
    result: list[Candidate] = []
    for p in meeting.participants:
        if p.contact_id in seen_contacts:
            continue
        seen_contacts.add(p.contact_id)
        email = normalise_email(p.email)
        problem: Problem | None = None
        if not (p.email or "").strip():
            problem = Problem.NO_EMAIL
        elif email is None:
            problem = Problem.BAD_EMAIL
        elif email.lower() in seen_addresses:
            problem = Problem.DUPLICATE_EMAIL
        elif same_address(email, organizer_address):
            problem = Problem.ORGANIZER
        if email is not None:
            seen_addresses.add(email.lower())
        is_me = user.contact_id is not None and p.contact_id == user.contact_id
        result.append(
            Candidate(
                contact_id=p.contact_id,
                name=display_name(p.name) or (email or ""),
                email=email,
                raw_email=p.email,
                problem=problem,
                is_current_user=is_me,
                selected=problem is None
                and ((not is_me and p.invite) or (email is not None and email.lower() in invited)),
            )
        )
    return result


def select(lines: Sequence[Candidate], wanted: Sequence[str] | None) -> Selection:
    """The recipients for a send: the default selection, or the named participants.

    ``wanted`` items are contact ids or addresses; each must name a participant, otherwise the
    send is refused (nobody outside the activity can be added this way). Named participants
    without a usable address are reported in ``skipped``.
    """
    if wanted is None:
        chosen = [c for c in lines if c.selected]
    else:
        chosen = []
        for token in wanted:
            match = _find(lines, token)
            if match is None:
                raise Refusal("unknown_recipient", recipient=token.strip()[:200])
            if match not in chosen:
                chosen.append(match)
    attendees: list[Attendee] = []
    skipped: list[Candidate] = []
    for c in chosen:
        attendee = c.attendee
        if attendee is None:
            skipped.append(c)
        else:
            attendees.append(attendee)
    if wanted is None:
        skipped.extend(c for c in lines if c.problem in (Problem.NO_EMAIL, Problem.BAD_EMAIL))
    return Selection(tuple(attendees), tuple(skipped))


def _find(lines: Sequence[Candidate], token: str) -> Candidate | None:
    text = token.strip()
    try:
        contact = UUID(text)
    except ValueError:
        contact = None
    for c in lines:
        if contact is not None and c.contact_id == contact:
            return c
    wanted = normalise_email(text)
    for c in lines:
        if wanted is not None and same_address(c.email, wanted):
            return c
        if c.raw_email and same_address(c.raw_email, text):
            return c
    return None
