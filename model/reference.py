"""The reference checkpoints shipped with the package: where they live and how to ask for them.

`oace demo` uses the current reference by default, and every command that takes a segmenter
checkpoint accepts the word `reference` for it: v2, the chained prior + MSFNet with its click
refiner. Versioned names (`reference_v1`, `reference_v2`) stay valid when a newer reference
replaces one: v2 is built from v1 (model/chain.py), its function-preserving test compares the two,
and the fine-tunes that keep first-click quality (`--anchor reference_v1`) name v1. How each was trained and what it scores:
docs/model_card.md.
"""

from __future__ import annotations

from pathlib import Path

from oace.errors import CheckpointError

WEIGHTS = Path(__file__).resolve().parent / "weights"
REFERENCE_NAME = "reference"
REFERENCE_PATH = WEIGHTS / "oace_reference_v2_fp16.pt"
# every name a command accepts for a shipped checkpoint, and its file
NAMED = {"reference_v1": WEIGHTS / "oace_reference_v1_fp16.pt", "reference_v2": REFERENCE_PATH}


def reference_checkpoint() -> Path | None:
    """The shipped reference checkpoint, or None when this install has none."""
    return REFERENCE_PATH if REFERENCE_PATH.is_file() else None


def resolve_checkpoint(name: str) -> str:
    """`reference` / `reference_v1` / `reference_v2` -> the shipped checkpoint's path (CheckpointError when absent); any other name as is."""
    if name == REFERENCE_NAME:
        path = reference_checkpoint()
        if path is None:
            raise CheckpointError(f"{REFERENCE_PATH}: the reference checkpoint is not in this install")
        return str(path)
    if name in NAMED:
        if not NAMED[name].is_file():
            raise CheckpointError(f"{NAMED[name]}: the {name} checkpoint is not in this install")
        return str(NAMED[name])
    return name
