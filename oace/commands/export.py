"""`oace export`: Export a checkpoint to ONNX and TFLite."""

from __future__ import annotations

import argparse

from oace.commands._stub import register_stub


def register(sub: argparse._SubParsersAction) -> None:
    register_stub(sub, "export", "Export a checkpoint to ONNX and TFLite", issue=4)
