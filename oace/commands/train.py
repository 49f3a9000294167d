"""`oace train`: Train the OACE prior and MSFNet."""

from __future__ import annotations

import argparse

from oace.commands._stub import register_stub


def register(sub: argparse._SubParsersAction) -> None:
    register_stub(sub, "train", "Train the OACE prior and MSFNet", issue=6)
