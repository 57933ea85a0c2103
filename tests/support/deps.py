"""Optional test dependencies: skipped on a developer machine, a failure in CI (CI=true)."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def missing(what: str, why: str) -> None:
    """Fail in CI, skip elsewhere: a missing dependency must never pass silently in CI."""
    text = f"{what} is not available: {why}"
    if in_ci():
        pytest.fail(f"{text} (CI=true: this test must run)", pytrace=False)
    pytest.skip(text)
