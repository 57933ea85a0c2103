"""What every route needs: the wired connector, the link signer, the pages, the language."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse
from starlette.requests import Request

from connector.api.errors import public_params, status_of
from connector.api.pages import Pages
from connector.api.security import FailedAuthLimiter, LinkSigner
from connector.app import App
from mapping.errors import ConnectorError
from mapping.messages import LANGUAGES, normalise_language, render


@dataclass
class ApiContext:
    app: App
    links: LinkSigner
    limiter: FailedAuthLimiter
    pages: Pages

    @property
    def default_language(self) -> str:
        return self.app.config.invitations.language

    def language(self, request: Request) -> str:
        """``?lang=`` on the dialog pages, else ``Accept-Language``, else the configured one."""
        if request.url.path.startswith("/ui/"):
            asked = request.query_params.get("lang")
            if asked in LANGUAGES:
                return str(asked)
        return normalise_language(request.headers.get("accept-language"), self.default_language)


def context_of(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def error_json(
    status: int, code: str, language: str, params: dict[str, Any] | None = None
) -> JSONResponse:
    values = params or {}
    return JSONResponse(
        {"code": code, "message": render(code, language, values), "params": values},
        status_code=status,
    )


def connector_error_json(error: ConnectorError, language: str) -> JSONResponse:
    return JSONResponse(
        {"code": error.code, "message": error.message(language), "params": public_params(error)},
        status_code=status_of(error),
    )
