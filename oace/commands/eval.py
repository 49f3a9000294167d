"""`oace eval`: Evaluate a checkpoint or .tflite with the NoC/mIoU protocol."""

from __future__ import annotations

import argparse

from oace.commands._stub import register_stub


def register(sub: argparse._SubParsersAction) -> None:
    register_stub(sub, "eval", "Evaluate a checkpoint or .tflite with the NoC/mIoU protocol", issue=3)
