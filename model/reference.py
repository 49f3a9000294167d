"""The reference checkpoint shipped with the package: where it lives and how to ask for it.

`oace demo` uses it by default, and every command that takes a segmenter checkpoint accepts the
word `reference` for it. How it was trained and what it scores: docs/model_card.md.
"""

from __future__ import annotations

from pathlib import Path

from oace.errors import CheckpointError

REFERENCE_NAME = "reference"
REFERENCE_PATH = Path(__file__).resolve().parent / "weights" / "oace_reference_v1_fp16.pt"


def reference_checkpoint() -> Path | None:
    """The shipped reference checkpoint, or None when this install has none."""
    return REFERENCE_PATH if REFERENCE_PATH.is_file() else None


def resolve_checkpoint(name: str) -> str:
    """`reference` -> the shipped checkpoint's path (CheckpointError when absent); any other name as is."""
    if name != REFERENCE_NAME:
        return name
    path = reference_checkpoint()
    if path is None:
        raise CheckpointError(f"{REFERENCE_PATH}: the reference checkpoint is not in this install")
    return str(path)
