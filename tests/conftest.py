"""Shared fixtures: the committed sample radiographs and the (optional) shared data folder.

Keep this small; test-specific helpers belong in the test modules.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from boneage.paths import FIXTURES_DIR, shared_data_dir

HIRES_PATHS = sorted((FIXTURES_DIR / "hires").glob("*.png"))  # 8 segmented left hands, ~800×1040
THUMB_PATHS = sorted((FIXTURES_DIR / "thumbs").glob("*.png"))  # 64 raw 100×100 thumbnails


@pytest.fixture(scope="session")
def hires_paths() -> list[Path]:
    assert HIRES_PATHS, f"no fixtures in {FIXTURES_DIR / 'hires'}"
    return HIRES_PATHS


@pytest.fixture(scope="session")
def thumb_paths() -> list[Path]:
    assert THUMB_PATHS, f"no fixtures in {FIXTURES_DIR / 'thumbs'}"
    return THUMB_PATHS


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The RSNA data folder (``../shared/data/rsna-bone-age`` or $BONEAGE_DATA); skips when absent."""
    d = shared_data_dir()
    if not d.is_dir():
        pytest.skip(f"shared data not present ({d}); runs in CI where ../shared exists")
    return d
