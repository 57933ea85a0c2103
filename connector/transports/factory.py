"""Choosing the transport named by ``transport:`` in the config."""

from __future__ import annotations

from connector.config import Config
from connector.ports import Transport
from connector.state.store import StateStore
from connector.transports.directory import DirectoryTransport
from mapping.errors import UsageError


def make_transport(config: Config, store: StateStore) -> Transport:
    if config.transport == "directory":
        return DirectoryTransport(config.directory.path)
    raise UsageError(detail=f"transport '{config.transport}' is not available in this build")
