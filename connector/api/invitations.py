"""The JSON endpoints of the "Send invitation" button: the dialog's content, the send, the
status of an activity's invitations, and the signed link that opens the dialog page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse

from connector.api.context import context_of
from connector.api.contract import (
    DELIVERY_FAILED,
    GUARDED,
    NOT_FOUND,
    PROTECTED,
    REFUSED_DELIVERY,
    RULES,
    UNAVAILABLE,
    Responses,
)
from connector.api.errors import public_params, status_of
from connector.api.models import (
    LOGIN_PATTERN,
    DeliveryFailedOut,
    DraftOut,
    InviteIn,
    InviteResultOut,
    LinkIn,
    LinkOut,
    StatusOut,
)
from connector.service import InviteResult
from connector.views import (
    draft_as_dict,
    message_log,
    outcome_of,
    overview_as_dict,
    result_as_dict,
)
from mapping.errors import Refusal
from mapping.messages import render

DRAFT_RESPONSES: Responses = {**GUARDED, **RULES}
SEND_RESPONSES: Responses = {**GUARDED, **RULES, **REFUSED_DELIVERY, **DELIVERY_FAILED}
STATUS_RESPONSES: Responses = {**GUARDED, **NOT_FOUND, **UNAVAILABLE}

router = APIRouter(tags=["invitations"], dependencies=PROTECTED)

UserQuery = Annotated[
    str,
    Query(
        min_length=1,
        max_length=256,
        pattern=LOGIN_PATTERN,
        description="login of the CRM user who pressed the button",
        examples=["Supervisor"],
    ),
]
AcceptLanguage = Annotated[
    str | None,
    Header(description="ru or en for the messages (default: invitations.language)"),
]


def result_view(result: InviteResult, language: str) -> dict[str, Any]:
    """The CLI's JSON result plus the overall message and one line per recipient."""
    data = result_as_dict(result, language)
    status = outcome_of(result)
    if status == "sent":
        message = render("sent", language, {"count": len(result.recipients_sent())})
    elif status == "nothing":
        message = render("nothing_to_send", language)
    elif status == "queued":
        count = len({r for o in result.outgoing for r in o.recipients})
        message = render("queued", language, {"count": count})
    elif status == "failed":
        error = next(d.error for d in result.deliveries if d.error is not None)
        message = error.message(language)
    else:
        message = render("dry_run", language)
    recipients: list[dict[str, Any]] = [
        {
            "email": email,
            "name": None,
            "contact_id": None,
            "method": d.method,
            "status": d.status,
            "problem": None,
            "error": d.error.message(language) if d.error else None,
        }
        for d in result.deliveries
        for email in d.recipients
    ]
    recipients.extend(
        {
            "email": c.email,
            "name": c.name,
            "contact_id": str(c.contact_id),
            "method": None,
            "status": "skipped",
            "problem": c.problem.value if c.problem else None,
            "error": None,
        }
        for c in result.skipped
    )
    return {**data, "message": message, "recipients": recipients}


@router.get(
    "/activities/{activity_id}/invitation",
    response_model=DraftOut,
    summary="The recipient dialog's content (figure 2.4)",
    responses=DRAFT_RESPONSES,
)
def get_invitation(
    activity_id: UUID,
    user: UserQuery,
    request: Request,
    accept_language: AcceptLanguage = None,
) -> DraftOut:
    ctx = context_of(request)
    draft = ctx.app.service.draft(activity_id, user)
    return DraftOut.model_validate(draft_as_dict(draft, ctx.language(request)))


@router.post(
    "/activities/{activity_id}/invitation",
    response_model=InviteResultOut,
    summary="Send the invitation (the 'Choose' button)",
    responses=SEND_RESPONSES,
)
def post_invitation(
    activity_id: UUID,
    body: InviteIn,
    request: Request,
    accept_language: AcceptLanguage = None,
) -> InviteResultOut | JSONResponse:
    ctx = context_of(request)
    language = ctx.language(request)
    result = ctx.app.service.invite(
        activity_id,
        body.user,
        body.recipients,
        without_location=body.send_without_location,
    )
    view = InviteResultOut.model_validate(result_view(result, language))
    if view.status != "failed":
        return view
    error = next(d.error for d in result.deliveries if d.error is not None)
    failed = DeliveryFailedOut(
        code=error.code, message=error.message(language), params=public_params(error), result=view
    )
    # 502 for the transport's error; a refusal by the mail system (Send As) like a refusal
    return JSONResponse(failed.model_dump(mode="json"), status_code=status_of(error))


@router.get(
    "/activities/{activity_id}/invitation/status",
    response_model=StatusOut,
    summary="The UID map entry and the message log of the activity",
    responses=STATUS_RESPONSES,
)
def get_status(
    activity_id: UUID, request: Request, accept_language: AcceptLanguage = None
) -> StatusOut:
    app = context_of(request).app
    items = app.store.overview(activity_id)
    if not items and app.crm.meeting(activity_id) is None:
        raise Refusal("not_found", activity_id=str(activity_id))
    return StatusOut.model_validate(
        {
            "activity_id": str(activity_id),
            "meeting": overview_as_dict(items[0]) if items else None,
            "messages": message_log(app.store, activity_id),
        }
    )


@router.post(
    "/activities/{activity_id}/invitation/link",
    response_model=LinkOut,
    summary="A short-lived signed link that opens the dialog page for this user",
    responses=DRAFT_RESPONSES,
)
def post_link(
    activity_id: UUID, body: LinkIn, request: Request, accept_language: AcceptLanguage = None
) -> LinkOut:
    ctx = context_of(request)
    ctx.app.service.user(body.user)
    ctx.app.service.meeting(activity_id)
    signed = ctx.links.issue(activity_id, body.user)
    query: dict[str, str] = {"user": body.user, "exp": str(signed.exp), "sig": signed.sig}
    if body.lang:
        query["lang"] = body.lang
    path = f"/ui/activities/{activity_id}/invite?{urlencode(query)}"
    base = ctx.app.config.api.public_url or str(request.base_url).rstrip("/")
    return LinkOut(url=base + path, path=path, expires_at=datetime.fromtimestamp(signed.exp, UTC))
