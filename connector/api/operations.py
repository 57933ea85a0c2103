"""Operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from connector.api.context import context_of
from connector.api.contract import GUARDED, PROTECTED, Responses
from connector.api.metrics import render_metrics
from connector.api.models import CheckOut, HealthOut, ReadyOut
from connector.app import App
from mapping.errors import ConnectorError

log = logging.getLogger("connector.api")

METRICS_RESPONSES: Responses = {
    200: {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
    **GUARDED,
}
READY_RESPONSES: Responses = {**GUARDED, 503: {"model": ReadyOut, "description": "Not ready"}}

public = APIRouter(tags=["operations"])
router = APIRouter(tags=["operations"], dependencies=PROTECTED)


@public.get("/healthz", response_model=HealthOut, summary="Liveness (no token needed)")
def healthz() -> HealthOut:
    return HealthOut(status="ok")


@public.head("/healthz", include_in_schema=False)
def healthz_head() -> Response:
    """For load balancers that probe with HEAD."""
    return Response(status_code=200)


def _probe(name: str, probe: Callable[[], Any], language: str) -> CheckOut:
    try:
        answer = probe()
    except ConnectorError as error:
        log.warning("event=not_ready check=%s code=%s", name, error.code)
        return CheckOut(ok=False, detail=error.message(language))
    except Exception as error:
        log.warning("event=not_ready check=%s error=%s", name, type(error).__name__)
        return CheckOut(ok=False, detail=type(error).__name__)
    if answer is False:
        return CheckOut(ok=False, detail="not ready")
    return CheckOut(ok=True)


def readiness(app: App, language: str) -> ReadyOut:
    """CRM and state databases reachable; the transport ready when it can tell (``ready()``:
    e.g. a Graph token can be obtained)."""
    checks = {
        "crm": _probe("crm", app.crm.ping, language),
        "state": _probe("state", app.store.ping, language),
    }
    ready = getattr(app.transport, "ready", None)
    if callable(ready):
        checks["transport"] = _probe("transport", ready, language)
    else:
        checks["transport"] = CheckOut(ok=True, detail=f"{app.transport.name}: no check")
    ok = all(c.ok for c in checks.values())
    return ReadyOut(status="ready" if ok else "unavailable", checks=checks)


@router.get(
    "/readyz",
    response_model=ReadyOut,
    summary="Readiness: CRM and state databases reachable, transport ready",
    responses=READY_RESPONSES,
)
def readyz(request: Request) -> ReadyOut | JSONResponse:
    ctx = context_of(request)
    result = readiness(ctx.app, ctx.language(request))
    if result.status == "ready":
        return result
    return JSONResponse(result.model_dump(mode="json"), status_code=503)


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics (text exposition format)",
    responses=METRICS_RESPONSES,
)
def metrics(request: Request) -> Response:
    return Response(render_metrics(context_of(request).app), media_type=CONTENT_TYPE_LATEST)
