"""Shared fixtures. Real data lives in ../shared beside the checkout; tests skip cleanly without it."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: real-data tests skipped")
    return SHARED


@pytest.fixture(scope="session")
def tiny_segmenter():
    from model.registry import build_model

    return build_model("segmenter_tiny", seed=0).eval()
