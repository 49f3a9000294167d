"""`oace demo`: Run the main job on embedded defaults."""

from __future__ import annotations

import argparse

from oace.commands._stub import register_stub


def register(sub: argparse._SubParsersAction) -> None:
    register_stub(sub, "demo", "Run the main job on embedded defaults", issue=2)
