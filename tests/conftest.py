from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_graph import FakeGraph
from tests.support.graph_env import graph_sections, register_example
from tests.support.pg import new_schema, temporary_database
from tests.support.world import CrmDb, World, make_world


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A database of its own on the local PostgreSQL server for this test session."""
    with temporary_database() as url:
        yield url


@pytest.fixture
def pg_schema_url(pg_url: str) -> tuple[str, str]:
    """A fresh schema in the session database, and a URL whose search_path points at it."""
    schema = new_schema(pg_url)
    return schema, f"{pg_url}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgres"])
def crm_db(request: pytest.FixtureRequest, tmp_path: Path) -> CrmDb:
    """The BPMSoft database, on SQLite and on PostgreSQL (quoted CamelCase names)."""
    if request.param == "sqlite":
        return CrmDb(f"sqlite:///{tmp_path / 'crm.db'}", None, "sqlite")
    url = request.getfixturevalue("pg_url")
    return CrmDb(url, new_schema(url), "postgres")


@pytest.fixture
def sqlite_crm(tmp_path: Path) -> CrmDb:
    return CrmDb(f"sqlite:///{tmp_path / 'crm.db'}", None, "sqlite")


@pytest.fixture
def world(sqlite_crm: CrmDb, tmp_path: Path) -> Iterator[World]:
    """The manual's example on SQLite, wired with the directory transport."""
    w = make_world(sqlite_crm, tmp_path)
    yield w
    w.close()


@pytest.fixture
def any_world(crm_db: CrmDb, tmp_path: Path) -> Iterator[World]:
    """The manual's example on SQLite and on PostgreSQL."""
    w = make_world(crm_db, tmp_path)
    yield w
    w.close()


@pytest.fixture
def fake_graph(tmp_path: Path) -> Iterator[FakeGraph]:
    """The fake identity platform + Graph (HTTPS, 127.0.0.1, ephemeral port), with the
    example's app registrations and mailboxes."""
    with FakeGraph(tmp_path / "fake-graph") as fake:
        register_example(fake)
        yield fake


@pytest.fixture
def graph_world(sqlite_crm: CrmDb, tmp_path: Path, fake_graph: FakeGraph) -> Iterator[World]:
    """The manual's example wired with ``transport: graph`` (app-only, client secret)."""
    w = make_world(sqlite_crm, tmp_path, **graph_sections(fake_graph))
    yield w
    w.close()
