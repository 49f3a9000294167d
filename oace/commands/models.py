"""`oace models`: List registered networks with params and MACs."""

from __future__ import annotations

import argparse

from oace.commands._stub import register_stub


def register(sub: argparse._SubParsersAction) -> None:
    register_stub(sub, "models", "List registered networks with params and MACs", issue=2)
