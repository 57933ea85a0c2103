"""The I/O shell of the connector: config, CRM adapter, state store, transports, CLI."""

__version__ = "0.1.0"
