"""`oace models`: registered networks with parameter and MAC counts at 512x512."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list registered networks: params and MACs", description=__doc__)
    p.add_argument("--json", action="store_true", help="print JSON keyed by network name")
    p.add_argument("--size", type=int, default=512, help="input side for prior/msfnet MACs (default 512)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from oace.model.registry import PRESETS
    from oace.model.summary import summarize
    from oace.errors import InputError
    from oace.reports import markdown_table

    if args.size <= 0 or args.size % 32:
        raise InputError(f"--size {args.size}: must be a positive multiple of 32")
    summaries = [summarize(name, args.size) for name in PRESETS]
    if args.json:
        print(json.dumps({s.name: s.to_json() for s in summaries}, indent=2))
    else:
        print(markdown_table(
            ["name", "arch", "params (M)", "GMACs", "input", "what"],
            [(s.name, s.arch, f"{s.params / 1e6:.3f}", f"{s.macs / 1e9:.2f}", f"{s.input_size}", s.summary) for s in summaries],
        ), end="")
    return 0
