"""Shared fixtures for the vision tests: the real photo set beside the repository, models."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA

REPO_ROOT = Path(__file__).resolve().parents[2]
PILLS_DIR = SHARED_DATA / "pills"


@pytest.fixture(scope="session")
def pills_dir() -> Path:
    """The real NIH photo set; a missing data folder is a failure, not a skip."""
    assert (PILLS_DIR / "labels.csv").is_file(), f"dataset missing at {PILLS_DIR}"
    return PILLS_DIR


@pytest.fixture(scope="session")
def engine():  # type: ignore[no-untyped-def]
    """One engine (models loaded once) for every test that needs inference."""
    from service.config import LimitSettings, ModelSettings
    from service.models.registry import ModelRegistry
    from service.vision.pills.engine import PillEngine

    return PillEngine(ModelRegistry(ModelSettings()).load(), LimitSettings())
