"""The HTTP API and the invitation dialog (issue 5): :func:`create_api` and :class:`ApiServer`."""

from connector.api.app import create_api
from connector.api.server import ApiServer, server_for

__all__ = ["ApiServer", "create_api", "server_for"]
