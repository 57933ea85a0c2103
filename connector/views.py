"""JSON shapes of the use cases, shared by the CLI (``--json``) and the HTTP API."""

from __future__ import annotations

from typing import Any

from connector.service import Draft, InviteResult
from connector.state.store import MeetingOverview, StateStore
from mapping.messages import render


def draft_as_dict(draft: Draft, lang: str) -> dict[str, Any]:
    m = draft.meeting
    return {
        "activity_id": str(m.activity_id),
        "title": m.title,
        "start": m.start.isoformat() if m.start else None,
        "end": m.end.isoformat() if m.end else None,
        "location": m.location,
        "sender": {
            "address": draft.sender.address,
            "name": draft.sender.name,
            "kind": draft.sender.kind.value,
        },
        "participants": [
            {
                "contact_id": str(c.contact_id),
                "name": c.name,
                "email": c.email,
                "selected": c.selected,
                "current_user": c.is_current_user,
                "problem": c.problem.value if c.problem else None,
            }
            for c in draft.candidates
        ],
        "warnings": [
            {"code": n.code.removeprefix("warn_"), "message": render(n.code, lang, n.params)}
            for n in draft.notices
        ],
        "location_empty": draft.location_empty,
        "already_sent": draft.state is not None,
        "sequence": draft.state.sequence if draft.state else None,
    }


def outcome_of(result: InviteResult) -> str:
    """``sent``, ``nothing`` (no change to send), ``failed`` (a message failed or was parked),
    ``queued`` (recorded, but another worker holds or took over a message) or ``dry_run``."""
    if result.dry_run:
        return "dry_run"
    if result.nothing_to_send:
        return "nothing"
    statuses = [d.status for d in result.deliveries]
    if any(s in ("failed", "parked") for s in statuses):
        return "failed"
    if statuses and all(s == "sent" for s in statuses):
        return "sent"
    return "queued"


def result_as_dict(result: InviteResult, lang: str) -> dict[str, Any]:
    return {
        "status": outcome_of(result),
        "activity_id": str(result.activity_id),
        "uid": result.uid,
        "sequence": result.sequence,
        "sender": result.sender,
        "reasons": list(result.reasons),
        "messages": [
            {
                "method": o.method.value,
                "sequence": o.sequence,
                "recipients": list(o.recipients),
                "message_id": o.message_id,
                "subject": o.subject,
            }
            for o in result.outgoing
        ],
        "deliveries": [
            {
                "method": d.method,
                "sequence": d.sequence,
                "recipients": list(d.recipients),
                "status": d.status,
                "error": d.error.message(lang) if d.error else None,
            }
            for d in result.deliveries
        ],
        "skipped": [
            {
                "contact_id": str(c.contact_id),
                "name": c.name,
                "problem": c.problem.value if c.problem else None,
            }
            for c in result.skipped
        ],
    }


def overview_as_dict(item: MeetingOverview) -> dict[str, Any]:
    s = item.state
    return {
        "activity_id": str(s.activity_id),
        "uid": s.uid,
        "sequence": s.sequence,
        "organizer": {"email": s.organizer.email, "name": s.organizer.name},
        "sender_login": s.sender_login,
        "sender_kind": s.sender_kind.value,
        "invited": [{"email": a.email, "name": a.name} for a in s.invited],
        "title": s.snapshot.title,
        "start": s.snapshot.start.isoformat(),
        "end": s.snapshot.end.isoformat(),
        "location": s.snapshot.location,
        "cancelled": s.cancelled,
        "last_sent_at": s.last_sent_at.isoformat(),
        "messages": {
            "pending": item.pending,
            "failed": item.failed,
            "parked": item.parked,
            "sent": item.sent,
        },
        "problem": item.last_problem,
        "problem_at": item.last_problem_at.isoformat() if item.last_problem_at else None,
    }


def message_log(store: StateStore, activity: Any) -> list[dict[str, Any]]:
    msgs = store.messages(activity_id=activity)
    attempts = store.attempts([m.id for m in msgs]) if msgs else []
    out = []
    for m in msgs:
        out.append(
            {
                "id": m.id,
                "method": m.method,
                "sequence": m.sequence,
                "sender": m.sender,
                "sender_login": m.sender_login,
                "recipients": list(m.recipients),
                "message_id": m.message_id,
                "origin": m.origin,
                "status": m.status,
                "attempts": m.attempts,
                "error": m.last_error,
                "error_code": m.error_code,
                "created_at": m.created_at.isoformat(),
                "sent_at": m.sent_at.isoformat() if m.sent_at else None,
                "attempt_log": [
                    {
                        "worker": a.worker,
                        "started_at": a.started_at.isoformat(),
                        "finished_at": a.finished_at.isoformat() if a.finished_at else None,
                        "outcome": a.outcome,
                        "status_code": a.status_code,
                        "error_code": a.error_code,
                    }
                    for a in attempts
                    if a.message == m.id
                ],
            }
        )
    return out
