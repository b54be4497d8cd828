"""Shared fixtures: the project's own fixture models, and the conformance data when enabled."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["hosting_support"]  # the hosting tests' repositories, nginx and fault server

FIXTURES = Path(__file__).parent / "fixtures"
MODELS = FIXTURES / "models"


def _conformance_dir() -> Path | None:
    value = os.environ.get("EDGED_CONFORMANCE_DATA")
    if not value:
        return None
    path = Path(value).resolve()
    if not (path / "models").is_dir():
        raise pytest.UsageError(
            f"EDGED_CONFORMANCE_DATA={value} has no models/ folder; point it at ../shared/data or unset it"
        )
    return path


CONFORMANCE = _conformance_dir()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data with the third-party models; the test is skipped when the tier is not enabled."""
    if CONFORMANCE is None:
        pytest.skip("conformance tier disabled: set EDGED_CONFORMANCE_DATA=../shared/data to enable it")
    return CONFORMANCE


@pytest.fixture(scope="session")
def fixture_models() -> Path:
    return MODELS
