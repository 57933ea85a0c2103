"""The Microsoft Graph transport: ``POST {base_url}/users/{sender}/sendMail`` with the MIME.

The body is the base64 of the whole RFC 5322 message with ``Content-Type: text/plain``; Graph
answers ``202 Accepted``. One request per message (no ``$batch``). A 401 makes the token source
forget the token and the request is sent once more with a fresh one; every other failure is
mapped by :mod:`connector.graph_errors` and retried (or not) by the deliverer.

``stats`` counts what happened, for the metrics endpoint: ``requests`` (sendMail requests),
``accepted``, ``throttled`` (429), ``transient``, ``permanent``, ``retries_401``,
``token_requests`` (tokens fetched from the identity platform, not from msal's cache) and
``token_failures``.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from urllib.parse import quote

import requests

from connector.config import Config, GraphConfig
from connector.graph_auth import (
    AppTokens,
    Counters,
    DelegatedTokens,
    build_token_source,
    make_session,
)
from connector.graph_errors import from_exception, from_response
from connector.logs import Scrubber
from connector.ports import Envelope
from connector.state.store import StateStore
from connector.token_vault import TokenVault
from mapping.errors import DeliveryError, TransientDeliveryError

log = logging.getLogger("connector.graph")

STAT_KEYS = (
    "requests",
    "accepted",
    "throttled",
    "transient",
    "permanent",
    "retries_401",
    "token_requests",
    "token_failures",
)


@dataclass(frozen=True)
class MailboxLookup:
    """What ``GET /users/{address}`` said about a mailbox (for ``connector check``)."""

    address: str
    outcome: str  # found | unknown | forbidden | error
    status: int | None = None
    code: str | None = None
    detail: str = ""


class GraphTransport:
    name = "graph"

    def __init__(
        self,
        config: GraphConfig,
        session: requests.Session,
        tokens: AppTokens | DelegatedTokens,
        counters: Counters,
        scrubber: Scrubber,
    ) -> None:
        self.config = config
        self.session = session
        self.tokens = tokens
        self.counters = counters
        self.stats = counters.stats
        self.scrub = scrubber

    @property
    def mode(self) -> str:
        return self.tokens.mode

    def _user_url(self, address: str) -> str:
        return f"{self.config.base_url}/users/{quote(address, safe='@')}"

    # -- sending ----------------------------------------------------------------------------
    def send(self, envelope: Envelope) -> str:
        url = self._user_url(envelope.sender) + "/sendMail"
        body = base64.b64encode(envelope.mime)
        login = envelope.sender_login
        response = self._post(url, body, login, envelope)
        if response.status_code == 401:
            self.counters.add("retries_401")
            log.warning(
                "event=graph_unauthorized mailbox=%s action=refresh_token_once", envelope.sender
            )
            self.tokens.invalidate(login, "")
            response = self._post(url, body, login, envelope)
        if 200 <= response.status_code < 300:
            self.counters.add("accepted")
            request_id = response.headers.get("request-id", "-")
            return f"graph {response.status_code} request-id={request_id}"
        error = from_response(response, login=login, mailbox=envelope.sender, scrub=self.scrub)
        self._count(error)
        raise error

    def _post(self, url: str, body: bytes, login: str, envelope: Envelope) -> requests.Response:
        token = self._token(login)
        started = time.monotonic()
        self.counters.add("requests")
        try:
            response = self.session.post(
                url,
                data=body,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "text/plain",
                    # a GUID, the same for every attempt of this message (for support cases)
                    "client-request-id": str(uuid.uuid5(uuid.NAMESPACE_URL, envelope.message_id)),
                },
                timeout=self.config.timeout_seconds,
            )
        except Exception as exc:
            error = from_exception(exc, what="sendMail", scrub=self.scrub)
            self._count(error)
            log.warning(
                "event=graph_send_failed mailbox=%s code=%s ms=%d",
                envelope.sender,
                error.remote_code,
                (time.monotonic() - started) * 1000,
            )
            raise error from None
        if response.status_code == 429:
            self.counters.add("throttled")
        log.info(
            "event=graph_send mailbox=%s status=%d bytes=%d ms=%d request_id=%s",
            envelope.sender,
            response.status_code,
            len(body),
            (time.monotonic() - started) * 1000,
            response.headers.get("request-id", "-"),
        )
        return response

    def _token(self, login: str) -> str:
        try:
            return self.tokens.token(login)
        except DeliveryError as error:
            self._count(error)
            raise

    def _count(self, error: DeliveryError) -> None:
        self.counters.add("transient" if isinstance(error, TransientDeliveryError) else "permanent")

    # -- checks -----------------------------------------------------------------------------
    def check_sender(self, login: str, mailbox: str) -> None:
        """Refuse before anything is recorded when ``login`` cannot send at all."""
        self.tokens.require_login(login)

    def ready(self) -> None:
        """For ``/readyz``: app-only mode can obtain its token (msal's cache answers while the
        token is valid, so probes cost no request); delegated mode has no token of its own, each
        user's sign-in is checked when they send. Raises DeliveryError."""
        if self.mode == "app":
            self._token("")

    def token_for_check(self, login: str) -> str:
        """A token (for ``connector check``); raises DeliveryError."""
        return self._token(login)

    def lookup_mailbox(self, address: str, login: str = "") -> MailboxLookup:
        """``GET /users/{address}``: does Microsoft 365 know this mailbox?"""
        try:
            token = self._token(login)
            response = self.session.get(
                self._user_url(address),
                params={"$select": "id,mail,userPrincipalName"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=self.config.timeout_seconds,
            )
        except DeliveryError as error:
            return MailboxLookup(address, "error", error.status, error.remote_code, error.detail)
        except Exception as exc:
            failure = from_exception(exc, what="GET /users", scrub=self.scrub)
            return MailboxLookup(address, "error", None, failure.remote_code, failure.detail)
        if response.status_code == 200:
            return MailboxLookup(address, "found", 200)
        mapped = from_response(
            response, login=login, mailbox=address, what="GET /users", scrub=self.scrub
        )
        outcome = {404: "unknown", 403: "forbidden"}.get(response.status_code, "error")
        return MailboxLookup(
            address, outcome, response.status_code, mapped.remote_code, mapped.detail
        )

    def close(self) -> None:
        self.session.close()


def graph_transport(config: Config, store: StateStore) -> GraphTransport:
    """The transport for ``transport: graph`` (tokens built lazily, on the first send)."""
    graph = config.graph
    assert graph is not None
    session = make_session(graph)
    counters = Counters({key: 0 for key in STAT_KEYS}, threading.Lock())
    scrubber = Scrubber(config.secrets())
    vault = None
    if config.state.token_cache_key is not None:
        vault = TokenVault(store, config.state.token_cache_key.get_secret_value())
    tokens = build_token_source(graph, session, counters, scrubber, vault)
    return GraphTransport(graph, session, tokens, counters, scrubber)
