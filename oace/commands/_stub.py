"""A subcommand that is not built yet: it says so and exits 2, it does not pretend."""

from __future__ import annotations

import argparse

from oace.errors import NotBuiltError


def register_stub(sub: argparse._SubParsersAction, name: str, summary: str, issue: int) -> None:
    p = sub.add_parser(name, help=f"{summary} (not built yet, issue #{issue})", description=summary)

    def handler(args: argparse.Namespace) -> int:
        raise NotBuiltError(f"`oace {name}` is not built yet in this version (tracked in issue #{issue})")

    p.set_defaults(handler=handler, accepts_unknown=True)  # whatever was typed, say it is not built
