from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.api import create_api
from tests.api.helpers import SECOND_TOKEN, TOKEN
from tests.support.world import CrmDb, World, make_world

with warnings.catch_warnings():
    # starlette asks for httpx2 with its TestClient; httpx is what is installed here
    warnings.filterwarnings("ignore", message="Using `httpx` with", category=UserWarning)
    from fastapi.testclient import TestClient

API_SECTION = {"tokens": [TOKEN, SECOND_TOKEN], "failed_auth_limit": 5}


@pytest.fixture
def api_world(sqlite_crm: CrmDb, tmp_path: Path) -> Iterator[World]:
    """The manual's example with two API tokens configured."""
    w = make_world(sqlite_crm, tmp_path, api=API_SECTION)
    yield w
    w.close()


@pytest.fixture
def client(api_world: World) -> Iterator[TestClient]:
    with TestClient(create_api(api_world.app)) as test_client:
        yield test_client
