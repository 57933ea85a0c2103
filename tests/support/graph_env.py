"""The manual's example as Microsoft 365 sees it, on the fake Graph: one confidential app
registration (secret and certificates), one public client for delegated sign-ins, and the
mailboxes of the example's users."""

from __future__ import annotations

from typing import Any

from tests.support.fake_graph import FakeGraph

CLIENT_ID = "3f0c2b9e-7d41-4c55-9e0a-connector-app"
CLIENT_SECRET = "Qx7~fake.client.secret-8a9b0c1d2e3f"
PUBLIC_CLIENT_ID = "0d6e1a7b-public-connector-app"
TOKEN_CACHE_KEY = "token-cache-key-for-tests-0123456789abcdef"
PERSONAL = "ivanov@ivanov.ru"  # Supervisor
FALLBACK = "invitations@ivanov.ru"  # the "Mailbox for sending invitations"
STAS = "stas@ivanov.ru"


def register_example(fake: FakeGraph, **apps: Any) -> None:
    """Register the example's app and mailboxes (``apps`` overrides the confidential app)."""
    app = {"client_id": CLIENT_ID, "secret": CLIENT_SECRET, **apps}
    fake.setup(
        apps=[app, {"client_id": PUBLIC_CLIENT_ID, "public": True}],
        mailboxes=[
            {"address": PERSONAL, "display_name": "Супервизоров Иван"},
            {"address": FALLBACK, "display_name": "Приглашения"},
            {"address": STAS, "display_name": "Стасов Станислав"},
        ],
    )


def graph_sections(
    fake: FakeGraph, *, delegated: bool = False, retry_max_seconds: float = 10, **graph: Any
) -> dict[str, Any]:
    """Config sections (for make_world / a config file) that send through ``fake``."""
    section = fake.graph_section(client_id=PUBLIC_CLIENT_ID if delegated else CLIENT_ID)
    if delegated:
        section["mode"] = "delegated"
    else:
        section["client_secret"] = CLIENT_SECRET
    section.update(graph)
    sections: dict[str, Any] = {
        "transport": "graph",
        "graph": section,
        "delivery": {"retry_max_seconds": retry_max_seconds},
    }
    if delegated:
        sections["state"] = {"token_cache_key": TOKEN_CACHE_KEY}
    return sections
