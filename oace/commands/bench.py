"""`oace bench`: Benchmark a .tflite on a phone over adb or on the host."""

from __future__ import annotations

import argparse

from oace.commands._stub import register_stub


def register(sub: argparse._SubParsersAction) -> None:
    register_stub(sub, "bench", "Benchmark a .tflite on a phone over adb or on the host", issue=5)
