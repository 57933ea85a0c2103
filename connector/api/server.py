"""Serving the API with uvicorn in a thread of its own, stoppable from any thread.

``connector serve`` runs it alone; ``connector run`` runs it beside the scheduler::

    server = server_for(app)      # checks api.tokens, builds the FastAPI app
    server.start()                # returns once the socket listens (ConfigError if it cannot)
    ...                           # the scheduler, if any
    wait_for_signal(server.stop, extra=server.finished)   # SIGINT/SIGTERM, or the server died
                                  # stop(): requests in flight finish (graceful_seconds)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from connector.api.app import create_api
from connector.app import App
from mapping.errors import ConfigError

log = logging.getLogger("connector.api.server")


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) into host and port."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def server_for(app: App, listen: str | None = None) -> ApiServer:
    """The server ``api:`` describes for ``app`` (``listen`` overrides ``api.listen``), not yet
    started. Refuses without a token: nothing but ``/healthz`` could be used."""
    settings = app.config.api
    if not settings.tokens:
        raise ConfigError([("api.tokens", "at least one token is needed to serve the API")])
    return ApiServer(
        create_api(app), listen or settings.listen, trusted_proxies=settings.trusted_proxies
    )


class ApiServer:
    def __init__(
        self,
        api: FastAPI,
        listen: str,
        *,
        trusted_proxies: Sequence[str] = (),
        graceful_seconds: int = 10,
    ) -> None:
        self.listen = listen
        host, port = split_listen(listen)
        self.config = uvicorn.Config(
            api,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            proxy_headers=bool(trusted_proxies),
            forwarded_allow_ips=list(trusted_proxies) or None,
            timeout_graceful_shutdown=graceful_seconds,
        )
        self.server = uvicorn.Server(self.config)
        self._thread: threading.Thread | None = None
        self._stopping = False
        #: set when the serving thread has ended, whether stopped or failed
        self.finished = threading.Event()

    def start(self, timeout: float = 15.0) -> None:
        """Start serving; return once the socket listens. Raises ConfigError when it cannot."""
        thread = threading.Thread(target=self._run, name="api-server", daemon=True)
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not thread.is_alive():
                raise ConfigError([("api.listen", f"cannot listen on {self.listen}")])
            if time.monotonic() > deadline:
                self.stop()
                raise ConfigError([("api.listen", f"not listening on {self.listen} in time")])
            time.sleep(0.02)
        log.info("event=api_listening url=%s", self.base_url)

    def _run(self) -> None:
        try:
            self.server.run()
        except SystemExit as exit_:  # uvicorn exits when it cannot bind or start up
            log.error("event=api_start_failed listen=%s code=%s", self.listen, exit_.code)
        except Exception:
            log.exception("event=api_crashed listen=%s", self.listen)
        finally:
            self.finished.set()

    @property
    def failed(self) -> bool:
        """The serving thread ended without being asked to."""
        return self.finished.is_set() and not self._stopping

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def port(self) -> int:
        for server in self.server.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return self.config.port

    @property
    def base_url(self) -> str:
        host = self.config.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    def stop(self, timeout: float = 20.0) -> None:
        """Stop accepting, let requests in flight finish, and wait for the thread."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self.server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            self.server.force_exit = True
            thread.join(5.0)
        log.info("event=api_stopped clean=%s", not thread.is_alive())
        self._thread = None

    def __enter__(self) -> ApiServer:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
