"""`oace quantize`: Quantize to an int8 TFLite bundle."""

from __future__ import annotations

import argparse

from oace.commands._stub import register_stub


def register(sub: argparse._SubParsersAction) -> None:
    register_stub(sub, "quantize", "Quantize to an int8 TFLite bundle", issue=4)
