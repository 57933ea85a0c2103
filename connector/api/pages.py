"""Server-rendered pages of the invitation dialog (Jinja2, autoescaped, nonce-based CSP).

CRM text (titles, places, names, addresses) reaches the page only through autoescaped template
variables. The page's one stylesheet and one script are the files in ``connector/web/static``,
inlined with a fresh nonce per response; the Content-Security-Policy allows nothing else (no
inline handlers, no other origins, forms post back to the same origin only).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from importlib import resources
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from mapping.messages import render


def _static(name: str) -> str:
    return resources.files("connector").joinpath("web", "static", name).read_text("utf-8")


class Pages:
    def __init__(self, frame_ancestors: Sequence[str] = ()) -> None:
        self.env = Environment(
            loader=PackageLoader("connector", "web/templates"),
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.css = Markup(_static("dialog.css"))  # noqa: S704 - our own file, no CRM data
        self.js = Markup(_static("dialog.js"))  # noqa: S704 - our own file, no CRM data
        self.frame_ancestors = " ".join(frame_ancestors) or "'none'"

    def csp(self, nonce: str) -> str:
        return "; ".join(
            [
                "default-src 'none'",
                f"script-src 'nonce-{nonce}'",
                f"style-src 'nonce-{nonce}'",
                "img-src 'self' data:",
                "form-action 'self'",
                "base-uri 'none'",
                f"frame-ancestors {self.frame_ancestors}",
            ]
        )

    def page(self, template: str, language: str, status: int = 200, **context: Any) -> HTMLResponse:
        nonce = secrets.token_urlsafe(18)

        def t(code: str, **params: Any) -> str:
            return render(code, language, params)

        html = self.env.get_template(template).render(
            lang=language, t=t, nonce=nonce, css=self.css, js=self.js, **context
        )
        headers = {
            "Content-Security-Policy": self.csp(nonce),
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
        }
        if self.frame_ancestors == "'none'":
            headers["X-Frame-Options"] = "DENY"
        return HTMLResponse(html, status_code=status, headers=headers)

    def outcome(
        self,
        language: str,
        *,
        status: int,
        kind: str,
        message: str,
        details: Sequence[str] = (),
        heading: str | None = None,
    ) -> HTMLResponse:
        """The message box of figures 2.5 (success), 2.7 and 2.8 (errors)."""
        default = {"success": "ui_done", "error": "ui_error", "info": "ui_done"}[kind]
        return self.page(
            "outcome.html.j2",
            language,
            status,
            kind=kind,
            heading=heading or render(default, language),
            message=message,
            details=list(details),
        )
