"""The FastAPI application of the connector: :func:`create_api` wires routes, the auth gate,
the error mapping and the pages around an already built :class:`connector.app.App`.

The caller owns ``app`` (and closes it); the API only borrows it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence

from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from connector import __version__
from connector.api import dialog, invitations, operations
from connector.api.context import ApiContext, connector_error_json, error_json
from connector.api.errors import status_of
from connector.api.middleware import DEFAULT_HEADERS, AccessLog
from connector.api.pages import Pages
from connector.api.security import (
    AuthGate,
    Denial,
    FailedAuthLimiter,
    Guard,
    LinkSigner,
    TokenCheck,
    link_key,
)
from connector.app import App
from mapping.errors import ConnectorError
from mapping.messages import render

log = logging.getLogger("connector.api")

DESCRIPTION = """\
The "Send invitation" button of a BPMSoft activity, as an API for the CRM server.

Every endpoint but `/healthz` needs `Authorization: Bearer <token>` (one of `api.tokens`);
the dialog page also opens with a signed link from `POST /activities/{id}/invitation/link`.
Refusals answer 4xx with a stable `code` and a `message` in the `Accept-Language` language
(ru or en).
"""


ROUTERS = (operations.public, invitations.router, dialog.router, operations.router)


def _is_page(request: Request) -> bool:
    return request.url.path.startswith("/ui/")


def _page_error(ctx: ApiContext, language: str, status: int, message: str) -> Response:
    return ctx.pages.outcome(language, status=status, kind="error", message=message)


def _route_table(routers: Sequence[APIRouter]) -> list[tuple[re.Pattern[str], set[str]]]:
    """(path pattern, methods) of every route, for the Allow header of a 405."""
    return [
        (route.path_regex, set(route.methods or ()))
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute)
    ]


def create_api(app: App, *, monotonic: Callable[[], float] = time.monotonic) -> FastAPI:
    """The HTTP API and the dialog pages for ``app``; ``monotonic`` drives the failed-auth
    window (tests move it by hand)."""
    settings = app.config.api
    api = FastAPI(
        title="BPMSoft invitation connector",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    limiter = FailedAuthLimiter(
        settings.failed_auth_limit, settings.failed_auth_window_seconds, clock=monotonic
    )
    links = LinkSigner(link_key(settings), settings.link_ttl_seconds, app.clock)
    ctx = ApiContext(app, links, limiter, Pages(settings.frame_ancestors))
    api.state.ctx = ctx
    tokens = TokenCheck([t.get_secret_value() for t in settings.tokens])
    if not tokens:
        log.warning("event=api_without_tokens detail=every_request_but_healthz_gets_401")

    def deny(request: Request, denial: Denial) -> Response:
        language = ctx.language(request)
        if _is_page(request):
            return _page_error(
                ctx, language, denial.status, render(denial.code, language, denial.params)
            )
        return error_json(denial.status, denial.code, language, denial.params)

    api.add_middleware(AuthGate, guard=Guard(tokens, limiter, links), deny=deny)
    api.add_middleware(AccessLog)

    routes = _route_table(ROUTERS)

    def allowed(path: str) -> str:
        # Starlette names only the methods of the first route that matches the path
        methods = {m for pattern, ms in routes if pattern.match(path) for m in ms}
        return ", ".join(sorted(methods))

    async def on_connector_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ConnectorError)
        language = ctx.language(request)
        if status_of(exc) >= 500:
            log.warning("event=api_error path=%s code=%s", request.url.path, exc.code)
        if _is_page(request):
            return _page_error(ctx, language, status_of(exc), exc.message(language))
        return connector_error_json(exc, language)

    async def on_invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = []
        for item in exc.errors()[:5]:
            where = ".".join(str(p) for p in item.get("loc", ()))
            problems.append(f"{where}: {item.get('msg', 'invalid')}")
        detail = "; ".join(problems)[:500]
        language = ctx.language(request)
        if _is_page(request):
            return _page_error(
                ctx, language, 422, render("invalid_request", language, {"detail": detail})
            )
        return error_json(422, "invalid_request", language, {"detail": detail})

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400:  # a body FastAPI could not even decode
            return error_json(
                422, "invalid_request", ctx.language(request), {"detail": str(exc.detail)}
            )
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed(request.url.path)
        return JSONResponse(
            {"code": f"http_{exc.status_code}", "message": str(exc.detail), "params": {}},
            status_code=exc.status_code,
            headers=headers,
        )

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.error("event=api_crashed path=%s error=%s", request.url.path, type(exc).__name__)
        language = ctx.language(request)
        kind = {"kind": type(exc).__name__}
        response = (
            _page_error(ctx, language, 500, render("unexpected", language, kind))
            if _is_page(request)
            else error_json(500, "unexpected", language, kind)
        )
        # Starlette answers a crash outside the middleware stack: add the usual headers here
        for name, value in DEFAULT_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    api.add_exception_handler(ConnectorError, on_connector_error)
    api.add_exception_handler(RequestValidationError, on_invalid_request)
    api.add_exception_handler(StarletteHTTPException, on_http_error)
    api.add_exception_handler(Exception, on_crash)

    for router in ROUTERS:
        api.include_router(router)
    return api
