"""Transports: where finished messages go (a folder, Microsoft Graph, an SMTP server)."""
