"""PostgreSQL for the tests: the server at 127.0.0.1:5432 (database ``test``, user
``postgres``, trust auth). Each test session gets its own database, dropped at the end, so
parallel runs on one server never see each other's rows."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from tests.support.deps import missing

SERVER = os.environ.get("TEST_PG_SERVER", "postgresql+psycopg://postgres@127.0.0.1:5432")
ADMIN_DB = os.environ.get("TEST_PG_DB", "test")


def _admin_engine():  # type: ignore[no-untyped-def]
    return create_engine(f"{SERVER}/{ADMIN_DB}", isolation_level="AUTOCOMMIT")


@contextmanager
def temporary_database(prefix: str = "conn_test") -> Iterator[str]:
    """Create a fresh database; yield its SQLAlchemy URL; drop it afterwards."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        missing("PostgreSQL at 127.0.0.1:5432", str(exc).splitlines()[0])
    try:
        yield f"{SERVER}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def new_schema(url: str) -> str:
    """A fresh schema inside the session database (one per test keeps tests apart)."""
    name = f"s_{uuid.uuid4().hex[:12]}"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    engine.dispose()
    return name
