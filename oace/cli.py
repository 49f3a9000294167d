"""The `oace` command: one subcommand per pipeline stage, each a thin mirror of plain functions.

Each subcommand lives in `oace/commands/<name>.py` with `register(subparsers)`; its handler calls
the stage's Python functions with the same argument names. A ToolkitError becomes one line on
stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from oace import __version__
from oace.artifacts import storage_error
from oace.errors import ToolkitError

COMMANDS = ("models", "demo", "train", "eval", "export", "quantize", "bench", "app")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oace",
        description="Deployment toolkit for click-based interactive segmentation (OACE prior + MSFNet).",
    )
    parser.add_argument("--version", action="version", version=f"oace {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"oace.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ToolkitError as exc:
        print(f"oace {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, quota or read-only filesystem mid-run: no file is left half-written
        line = storage_error(exc)
        if line is None:
            raise
        print(f"oace {args.command}: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"oace {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
