"""Choosing the transport named by ``transport:`` in the config."""

from __future__ import annotations

from connector.config import Config
from connector.logs import Scrubber
from connector.ports import Transport
from connector.state.store import StateStore
from connector.transports.directory import DirectoryTransport
from mapping.errors import UsageError


def make_transport(config: Config, store: StateStore) -> Transport:
    if config.transport == "directory":
        return DirectoryTransport(config.directory.path)
    if config.transport == "graph" and config.graph is not None:
        from connector.transports.graph import graph_transport

        return graph_transport(config, store)
    if config.transport == "smtp" and config.smtp is not None:
        from connector.transports.smtp import SmtpTransport

        return SmtpTransport(config.smtp, Scrubber(config.secrets()))
    raise UsageError(detail=f"transport '{config.transport}' is not available in this build")
