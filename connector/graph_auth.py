"""Tokens for Microsoft Graph from msal: app-only (client credentials) and delegated (per user).

* App-only: ONE long-lived ``ConfidentialClientApplication`` per process; since msal 1.23
  ``acquire_token_for_client`` answers from the application's in-memory cache, so the identity
  platform is asked once per token lifetime, not once per message.
* Delegated: ``connector login --as LOGIN`` runs the device-code flow of a
  ``PublicClientApplication`` and stores that user's ``SerializableTokenCache`` encrypted in the
  state store (:mod:`connector.token_vault`); sends use ``acquire_token_silent`` with it and
  store it back when msal refreshed it.

Every HTTP call (msal's included) goes through one ``requests.Session`` with ``trust_env`` off
and ``verify`` set explicitly: ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` and proxy variables of
the environment would otherwise silently override the configured CA bundle.
``instance_discovery`` is off whenever the authority host is not one of Microsoft's (msal would
otherwise ask login.microsoftonline.com about it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import msal
import requests

from connector.config import GraphConfig
from connector.graph_errors import Scrub, from_exception, from_token_result
from connector.token_vault import TokenVault, VaultError
from mapping.errors import DeliveryRefused, PermanentDeliveryError, Refusal

log = logging.getLogger("connector.graph.auth")

#: authority hosts of Microsoft's clouds (instance discovery stays on for these only)
MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.microsoftonline.us",
        "login.usgovcloudapi.net",
        "login-us.microsoftonline.com",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
    }
)


class TimeoutSession(requests.Session):
    """A session that gives every request a timeout unless the caller set one (msal does not)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return super().request(*args, **kwargs)


def make_session(config: GraphConfig) -> TimeoutSession:
    session = TimeoutSession(config.timeout_seconds)
    session.trust_env = False
    session.verify = str(config.ca_bundle) if config.ca_bundle else True
    if config.proxy:
        session.proxies = {"https": config.proxy, "http": config.proxy}
    session.headers["User-Agent"] = "bpmsoft-invite-connector"
    return session


def instance_discovery(config: GraphConfig) -> bool:
    host = (urlsplit(config.authority_host).hostname or "").lower()
    return host in MICROSOFT_AUTHORITY_HOSTS


def app_scope(config: GraphConfig) -> str:
    """``https://graph.microsoft.com/.default`` for the cloud of ``graph.base_url``."""
    parts = urlsplit(config.base_url)
    return f"{parts.scheme}://{parts.netloc}/.default"


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def client_credential(config: GraphConfig) -> str | dict[str, Any]:
    """msal's ``client_credential``: the secret, or the certificate in one of its forms."""
    if config.client_secret is not None:
        return config.client_secret.get_secret_value()
    cert = config.certificate
    if cert is None:
        raise PermanentDeliveryError(detail="graph: no client_secret or certificate configured")
    credential: dict[str, Any] = {}
    if cert.passphrase is not None:
        credential["passphrase"] = cert.passphrase.get_secret_value()
    if cert.pfx_path is not None:
        credential["private_key_pfx_path"] = str(cert.pfx_path)
        return credential
    assert cert.pem_path is not None
    credential["private_key"] = _read(cert.pem_path)
    if cert.public_certificate_path is not None:
        credential["public_certificate"] = _read(cert.public_certificate_path)
    elif cert.thumbprint:
        credential["thumbprint"] = cert.thumbprint
    return credential


class TokenSource(Protocol):
    """Where the Graph transport gets bearer tokens from."""

    mode: str

    def token(self, login: str) -> str:
        """A bearer token to send as ``login``; raises DeliveryError."""
        ...

    def invalidate(self, login: str, token: str) -> None:
        """Forget ``token`` (Graph answered 401): the next :meth:`token` gets a fresh one."""
        ...

    def require_login(self, login: str) -> None:
        """Raise Refusal('not_logged_in') when ``login`` cannot send (delegated mode only)."""
        ...


@dataclass
class Counters:
    """Thread-safe increments of a shared ``stats`` dict."""

    stats: dict[str, int]
    lock: threading.Lock

    def add(self, key: str, amount: int = 1) -> None:
        with self.lock:
            self.stats[key] = self.stats.get(key, 0) + amount


class AppTokens:
    """App-only tokens from one long-lived ConfidentialClientApplication."""

    mode = "app"

    def __init__(
        self, config: GraphConfig, session: requests.Session, counters: Counters, scrub: Scrub
    ) -> None:
        self.config = config
        self.session = session
        self.counters = counters
        self.scrub = scrub
        self.scopes = [app_scope(config)]
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()
        self._acquire = threading.Lock()

    def application(self) -> msal.ConfidentialClientApplication:
        """The application, built on first use (building it fetches the OpenID configuration)."""
        with self._lock:
            if self._app is None:
                try:
                    self._app = msal.ConfidentialClientApplication(
                        self.config.client_id,
                        client_credential=client_credential(self.config),
                        authority=self.config.authority,
                        http_client=self.session,
                        instance_discovery=instance_discovery(self.config),
                        token_cache=msal.TokenCache(),
                    )
                except Exception as error:
                    raise from_exception(
                        error, what="identity platform", scrub=self.scrub
                    ) from None
                log.info(
                    "event=graph_app_ready mode=app client_id=%s tenant=%s",
                    self.config.client_id,
                    self.config.tenant_id,
                )
            return self._app

    def token(self, login: str) -> str:
        app = self.application()
        try:
            # one caller at a time: concurrent first sends make one token request, not four
            with self._acquire:
                result = app.acquire_token_for_client(self.scopes)
        except Exception as error:
            raise from_exception(error, what="token", scrub=self.scrub) from None
        if result and "access_token" in result:
            if result.get("token_source") != "cache":
                self.counters.add("token_requests")
                log.info(
                    "event=graph_token_acquired mode=app expires_in=%s",
                    result.get("expires_in", "-"),
                )
            return str(result["access_token"])
        self.counters.add("token_failures")
        raise from_token_result(result, login=login, scrub=self.scrub)

    def invalidate(self, login: str, token: str) -> None:
        app = self.application()
        app.remove_tokens_for_client()

    def require_login(self, login: str) -> None:
        return None


class DelegatedTokens:
    """Per-CRM-user tokens from the encrypted token caches written by ``connector login``."""

    mode = "delegated"

    def __init__(
        self,
        config: GraphConfig,
        session: requests.Session,
        vault: TokenVault,
        counters: Counters,
        scrub: Scrub,
    ) -> None:
        self.config = config
        self.session = session
        self.vault = vault
        self.counters = counters
        self.scrub = scrub
        self.scopes = list(config.scopes)
        self._users: dict[str, _UserCache] = {}
        self._lock = threading.Lock()

    # -- signing in -------------------------------------------------------------------------
    def public_application(self, cache: msal.TokenCache) -> msal.PublicClientApplication:
        try:
            return msal.PublicClientApplication(
                self.config.client_id,
                authority=self.config.authority,
                http_client=self.session,
                instance_discovery=instance_discovery(self.config),
                token_cache=cache,
            )
        except Exception as error:
            raise from_exception(error, what="identity platform", scrub=self.scrub) from None

    def login(
        self,
        login: str,
        show: Callable[[dict[str, Any]], None],
        *,
        timeout_seconds: float | None = None,
    ) -> str:
        """Run the device-code flow for ``login``; store its token cache; return the account.

        ``show`` receives msal's flow (``verification_uri``, ``user_code``, ``expires_in``) to
        tell the person what to do. Raises DeliveryError when the platform says no.
        """
        cache = msal.SerializableTokenCache()
        app = self.public_application(cache)
        try:
            flow = app.initiate_device_flow(scopes=self.scopes)
        except Exception as error:
            raise from_exception(error, what="device code", scrub=self.scrub) from None
        if "user_code" not in flow:
            raise from_token_result(flow, login=login, what="device code", scrub=self.scrub)
        if timeout_seconds is not None:
            flow["expires_at"] = min(float(flow["expires_at"]), time.time() + timeout_seconds)
        show(flow)
        try:
            result = app.acquire_token_by_device_flow(flow)
        except Exception as error:
            raise from_exception(error, what="device code", scrub=self.scrub) from None
        if "access_token" not in result:
            raise from_token_result(result, login=login, what="sign-in", scrub=self.scrub)
        self.counters.add("token_requests")
        self.vault.save(login, cache.serialize())
        with self._lock:
            self._users.pop(login.lower(), None)
        claims = result.get("id_token_claims") or {}
        account = str(claims.get("preferred_username") or claims.get("name") or "?")
        log.info("event=graph_login_stored login=%s account=%s", login, account)
        return account

    # -- sending ----------------------------------------------------------------------------
    def require_login(self, login: str) -> None:
        if not self.vault.has(login):
            raise Refusal("not_logged_in", login=login)

    def _user(self, login: str) -> _UserCache:
        key = login.lower()
        with self._lock:
            user = self._users.get(key)
            if user is None:
                cache = msal.SerializableTokenCache()
                user = _UserCache(key, cache, None, threading.Lock())
                self._users[key] = user
            return user

    def token(self, login: str) -> str:
        user = self._user(login)
        with user.lock:
            force_refresh, user.force_next = user.force_next, False
            blob = self.vault.store.get_token_cache(login)
            if blob is None:
                raise DeliveryRefused("not_logged_in", login=login, detail="no stored sign-in")
            if blob != user.blob:
                try:
                    user.cache.deserialize(self.vault.open(login, blob))
                except VaultError as error:
                    raise PermanentDeliveryError(
                        remote_code="token_cache", detail=f"token cache of {login}: {error}"
                    ) from None
                user.blob = blob
            if user.app is None:
                user.app = self.public_application(user.cache)
            accounts = user.app.get_accounts()
            if not accounts:
                raise DeliveryRefused("not_logged_in", login=login, detail="no account")
            try:
                result = user.app.acquire_token_silent_with_error(
                    self.scopes, accounts[0], force_refresh=force_refresh
                )
            except Exception as error:
                raise from_exception(error, what="token", scrub=self.scrub) from None
            if user.cache.has_state_changed:
                self.counters.add("token_requests")
                user.blob = self.vault.save(login, user.cache.serialize())
                log.info("event=graph_token_refreshed mode=delegated login=%s", login)
            if result and "access_token" in result:
                return str(result["access_token"])
            self.counters.add("token_failures")
            raise from_token_result(result, login=login, scrub=self.scrub)

    def invalidate(self, login: str, token: str) -> None:
        """The next :meth:`token` for ``login`` redeems the refresh token for a new one."""
        user = self._user(login)
        with user.lock:
            user.force_next = True

    def signed_in(self) -> list[str]:
        """The logins with a stored sign-in."""
        return self.vault.logins()


@dataclass
class _UserCache:
    login: str
    cache: msal.SerializableTokenCache
    blob: bytes | None
    lock: threading.Lock
    app: msal.PublicClientApplication | None = None
    force_next: bool = False


def build_token_source(
    config: GraphConfig,
    session: requests.Session,
    counters: Counters,
    scrub: Scrub,
    vault: TokenVault | None,
) -> AppTokens | DelegatedTokens:
    if config.mode == "delegated":
        if vault is None:
            raise PermanentDeliveryError(detail="graph: delegated mode needs state.token_cache_key")
        return DelegatedTokens(config, session, vault, counters, scrub)
    return AppTokens(config, session, counters, scrub)
