"""A TCP relay on 127.0.0.1 in front of a server (the fake Graph), whose behaviour a test
switches while a client (a ``connector`` process) keeps using it: network faults that the fake
itself cannot produce, because they happen below HTTP.

Modes, applied to every connection accepted from then on (switching also cuts the connections
being relayed, so a client's kept-alive connection does not outlive the change):

``forward``     relay bytes both ways, untouched (TLS stays end to end with the server)
``refuse``      nothing listens on the port: connection refused (the service is down)
``reset``       accept, then reset the connection (RST) without reading anything
``blackhole``   accept and never answer (a dead route or a hung server: the client times out)
``untrusted``   answer the TLS handshake with a certificate of a CA the client does not trust
                (e.g. a TLS-inspecting proxy whose CA is not in ``graph.ca_bundle``)
``not_tls``     answer a TLS ClientHello with plain HTTP (the handshake fails: wrong version)
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
from collections import Counter
from pathlib import Path

import trustme

MODES = ("forward", "refuse", "reset", "blackhole", "untrusted", "not_tls")


class TcpProxy:
    def __init__(self, upstream_port: int, folder: Path, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        folder.mkdir(parents=True, exist_ok=True)
        other_ca = trustme.CA()  # not the CA the client trusts
        self.untrusted_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        other_ca.issue_cert("127.0.0.1", "localhost").configure_cert(self.untrusted_context)
        self.mode = "forward"
        self.accepted: Counter[str] = Counter()  # connections accepted, by mode
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()
        self.port = 0
        self._listen()

    # -- control --------------------------------------------------------------------------
    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def set_mode(self, mode: str) -> None:
        assert mode in MODES, mode
        with self._lock:
            previous, self.mode = self.mode, mode
            sockets, self._open = set(self._open), set()
        for sock in sockets:
            _close(sock)
        if mode == "refuse" and previous != "refuse":
            self._unlisten()
        elif mode != "refuse" and previous == "refuse":
            self._listen()

    def stop(self) -> None:
        self._stopped.set()
        self._unlisten()
        with self._lock:
            sockets, self._open = set(self._open), set()
        for sock in sockets:
            _close(sock)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- listening ------------------------------------------------------------------------
    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))  # the same port again after "refuse"
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept_loop, args=(listener,), daemon=True).start()

    def _unlisten(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            _close(listener)

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                mode = self.mode
                self.accepted[mode] += 1
            threading.Thread(target=self._serve, args=(client, mode), daemon=True).start()

    # -- one connection -------------------------------------------------------------------
    def _track(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._open.update(sockets)

    def _serve(self, client: socket.socket, mode: str) -> None:
        if mode in ("reset", "refuse"):
            _reset(client)
        elif mode == "blackhole":
            self._track(client)  # closed when the mode changes or the proxy stops
        elif mode == "not_tls":
            with contextlib.suppress(OSError):
                client.settimeout(5)
                client.recv(4096)
                client.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            _close(client)
        elif mode == "untrusted":
            client.settimeout(5)
            try:
                tls = self.untrusted_context.wrap_socket(client, server_side=True)
            except (OSError, ssl.SSLError):
                _close(client)  # the client refused the certificate, as it should
                return
            _close(tls)
        else:
            self._forward(client)

    def _forward(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _reset(client)
            return
        server.settimeout(None)
        self._track(client, server)
        threading.Thread(target=_pump, args=(server, client), daemon=True).start()
        _pump(client, server)


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    _close(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
