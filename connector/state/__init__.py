"""The connector's own store: the UID map, the outbox and message log, sync bookkeeping."""
