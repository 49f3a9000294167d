"""`oace models`: registered networks with parameter and MAC counts at 512x512."""

from __future__ import annotations

import argparse
import json
from typing import Any

from oace.commands.options import UNSET, default_of, defaults_help, given


def _defaults() -> dict[str, Any]:
    from oace.model.summary import summarize

    return {"size": default_of(summarize, "size")}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list registered networks: params and MACs", description=__doc__,
                       formatter_class=defaults_help(_defaults))
    p.add_argument("--json", action="store_true", help="print JSON keyed by network name")
    p.add_argument("--size", type=int, default=UNSET, help="input side for prior/msfnet MACs")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from oace.model.registry import PRESETS
    from oace.model.summary import summarize
    from oace.errors import InputError
    from oace.reports import markdown_table

    size = given(args, size="size")
    if size and (size["size"] <= 0 or size["size"] % 32):
        raise InputError(f"--size {size['size']}: must be a positive multiple of 32")
    summaries = [summarize(name, **size) for name in PRESETS]
    if args.json:
        print(json.dumps({s.name: s.to_json() for s in summaries}, indent=2))
    else:
        print(markdown_table(
            ["name", "arch", "params (M)", "GMACs", "input", "what"],
            [(s.name, s.arch, f"{s.params / 1e6:.3f}", f"{s.macs / 1e9:.2f}", f"{s.input_size}", s.summary) for s in summaries],
        ), end="")
    return 0
