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


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread: on a shared, busy CPU torch's spinning worker threads made training tests ~10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_segmenter():
    from model.registry import build_model

    return build_model("segmenter_tiny", seed=0).eval()


def write_salient_set(root: Path, pairs) -> Path:
    """Write (image uint8 HxWx3, mask bool HxW) pairs in ECSSD's layout (images/, ground_truth_mask/)."""
    import numpy as np
    from PIL import Image

    (root / "images").mkdir(parents=True)
    (root / "ground_truth_mask").mkdir()
    for i, (image, mask) in enumerate(pairs):
        Image.fromarray(image).save(root / "images" / f"{i:04d}.png")
        Image.fromarray((mask * 255).astype(np.uint8)).save(root / "ground_truth_mask" / f"{i:04d}.png")
    return root
