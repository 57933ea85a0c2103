"""The invitation dialog that a CRM button opens in a window (manual, figures 2.4-2.10).

``GET`` shows the participants with checkboxes (all but the current user ticked) and the
«Выбрать» button. Its form posts back to the same URL (credentials stay in the query string):

* the place is empty and not yet confirmed: the question of figure 2.9 with «Да» / «Нет»
  (HTTP 409), whose form carries the selection again;
* «Нет»: nothing is sent; «Да»: sent with an empty place;
* otherwise the invitation is sent: the success message (figure 2.5) or the error
  (figures 2.7, 2.8; 502 with the transport's error when delivery failed).

Without JavaScript everything still works; the script only guards against double submission,
keeps «Выбрать» disabled while nobody is ticked, and closes the window.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import parse_qs, urlencode
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from connector.api.context import ApiContext, context_of
from connector.api.contract import HTML_RESPONSES, PROTECTED
from connector.api.errors import status_of
from connector.api.models import LOGIN_PATTERN
from connector.service import Draft, InviteResult
from connector.views import outcome_of
from mapping.body import format_when
from mapping.errors import Refusal, UsageError
from mapping.messages import render
from mapping.model import SenderKind

router = APIRouter(tags=["dialog"], dependencies=PROTECTED)

MAX_FORM_BYTES = 64 * 1024
MAX_RECIPIENTS = 1000

UserQuery = Annotated[
    str,
    Query(
        min_length=1,
        max_length=256,
        pattern=LOGIN_PATTERN,
        description="login of the CRM user (bound into the signature of a link)",
    ),
]
ExpQuery = Annotated[
    str | None,
    Query(pattern=r"^[0-9]{1,12}$", description="expiry of a signed link (Unix seconds)"),
]
SigQuery = Annotated[
    str | None,
    Query(max_length=128, description="signature of a link issued by POST .../invitation/link"),
]
LangQuery = Annotated[Literal["ru", "en"] | None, Query(description="language of the page")]

FORM_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "recipient": {
                            "type": "array",
                            "items": {"type": "string", "maxLength": 320},
                            "maxItems": MAX_RECIPIENTS,
                            "description": "contact ids of the ticked participants",
                        },
                        "answer": {
                            "type": "string",
                            "enum": ["yes", "no"],
                            "description": "the answer to the empty-place question",
                        },
                    },
                }
            }
        },
    }
}


def _action(request: Request) -> str:
    """The form's target: this page with the same credentials (relative, proxy-friendly)."""
    keep = {
        k: request.query_params[k]
        for k in ("user", "exp", "sig", "lang")
        if k in request.query_params
    }
    return "invite?" + urlencode(keep)


def _notes(draft: Draft, language: str) -> list[str]:
    out = []
    for c in draft.candidates:
        parts = []
        if c.is_current_user:
            parts.append(render("label_you", language))
        if c.problem is not None:
            parts.append(render(f"problem_{c.problem.value}", language))
        out.append(", ".join(parts))
    return out


def _dialog(ctx: ApiContext, request: Request, activity_id: UUID, user: str) -> HTMLResponse:
    language = ctx.language(request)
    service = ctx.app.service
    draft = service.draft(activity_id, user)
    m = draft.meeting
    when = (
        format_when(m.start, m.end, service.zone(draft.user), language)
        if m.start and m.end
        else None
    )
    kind = "label_personal" if draft.sender.kind is SenderKind.PERSONAL else "label_fallback"
    return ctx.pages.page(
        "invite.html.j2",
        language,
        draft=draft,
        when=when,
        sender_kind=render(kind, language),
        notes=_notes(draft, language),
        warnings=[render(n.code, language, n.params) for n in draft.notices],
        action=_action(request),
    )


@router.get(
    "/ui/activities/{activity_id}/invite",
    response_class=HTMLResponse,
    summary="The recipient dialog page (bearer token or signed link)",
    responses=HTML_RESPONSES,
)
def dialog_page(
    activity_id: UUID,
    user: UserQuery,
    request: Request,
    exp: ExpQuery = None,
    sig: SigQuery = None,
    lang: LangQuery = None,
) -> HTMLResponse:
    return _dialog(context_of(request), request, activity_id, user)


async def _read_form(request: Request) -> dict[str, list[str]]:
    # read in chunks and stop at the limit: a huge body is never held in memory
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise UsageError("invalid_request", detail="form too large")
        chunks.append(chunk)
    body = b"".join(chunks)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if body and kind != "application/x-www-form-urlencoded":
        raise UsageError("invalid_request", detail="expected a form")
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=False, max_num_fields=2000)
    except (UnicodeDecodeError, ValueError):
        raise UsageError("invalid_request", detail="unreadable form") from None


def _result_page(ctx: ApiContext, result: InviteResult, language: str) -> HTMLResponse:
    status = outcome_of(result)
    lines = [
        f"{email} — {render(f'outcome_{d.status}', language)}"
        for d in result.deliveries
        for email in d.recipients
    ]
    lines += [
        f"{c.name} — {render('label_skipped', language).lower()}"
        + (f" ({render(f'problem_{c.problem.value}', language)})" if c.problem else "")
        for c in result.skipped
    ]
    if status == "sent":
        message = render("sent", language, {"count": len(result.recipients_sent())})
        return ctx.pages.outcome(
            language, status=200, kind="success", message=message, details=lines
        )
    if status == "failed":
        error = next(d.error for d in result.deliveries if d.error is not None)
        return ctx.pages.outcome(
            language,
            status=status_of(error),
            kind="error",
            message=error.message(language),
            details=lines,
        )
    if status == "queued":
        count = len({r for o in result.outgoing for r in o.recipients})
        message = render("queued", language, {"count": count})
    else:
        message = render("nothing_to_send", language)
    return ctx.pages.outcome(language, status=200, kind="info", message=message, details=lines)


@router.post(
    "/ui/activities/{activity_id}/invite",
    response_class=HTMLResponse,
    summary="The dialog's «Выбрать» / «Да» / «Нет» buttons",
    responses=HTML_RESPONSES,
    openapi_extra=FORM_BODY,
)
async def dialog_submit(
    activity_id: UUID,
    user: UserQuery,
    request: Request,
    exp: ExpQuery = None,
    sig: SigQuery = None,
    lang: LangQuery = None,
) -> HTMLResponse:
    ctx = context_of(request)
    language = ctx.language(request)
    form = await _read_form(request)
    recipients = form.get("recipient", [])
    answers = form.get("answer", [])
    if len(recipients) > MAX_RECIPIENTS or any(len(r) > 320 for r in recipients):
        raise UsageError("invalid_request", detail="recipient: too many or too long")
    if len(answers) > 1 or any(a not in ("yes", "no") for a in answers):
        raise UsageError("invalid_request", detail="answer: expected yes or no")
    answer = answers[0] if answers else ""
    if answer == "no":
        return ctx.pages.outcome(
            language, status=200, kind="info", message=render("label_not_sent", language)
        )
    try:
        result = await run_in_threadpool(
            ctx.app.service.invite,
            activity_id,
            user,
            recipients,
            without_location=answer == "yes",
        )
    except Refusal as refusal:
        if refusal.code != "location_empty":
            raise
        return ctx.pages.page(
            "confirm.html.j2",
            language,
            409,
            question=refusal.message(language),
            recipients=recipients,
            action=_action(request),
        )
    return _result_page(ctx, result, language)
