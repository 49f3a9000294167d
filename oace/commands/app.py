"""`oace app`: a local page to tap photos and compare the masks of checkpoints and bundles (a mirror of oace.app.serve).

The options' defaults live in oace.app.AppConfig."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from oace.commands.options import UNSET, default_of, defaults_help, given


def _defaults() -> dict[str, Any]:
    from oace.app import AppConfig

    return {f.name: default_of(AppConfig, f.name) for f in dataclasses.fields(AppConfig)}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "app",
        help="Tap photos in a local web page and compare models' masks (Gradio, offline)",
        description="Serve a Gradio page (and a `segment` API) on this machine: tap a photo, see the mask of "
        "every loaded model side by side with its latency. Default models: runs/demo/oace_segmenter_{fp32,int8}.tflite "
        "when `make demo` wrote them, else the reference checkpoint. See docs/app.md.",
        formatter_class=defaults_help(_defaults),
    )
    p.add_argument("--checkpoint", action="append", default=UNSET, metavar="CKPT_OR_TFLITE",
                   help="checkpoint (.pt), `reference` or .tflite; repeat to compare (at most 4)")
    p.add_argument("--host", default=UNSET, help="address to bind; 127.0.0.1 is this machine only")
    p.add_argument("--port", type=int, default=UNSET, help="port (default: the first free one from 7860)")
    p.add_argument("--threads", type=int, default=UNSET, metavar="N", help="CPU threads per model (default: the runtime's)")
    p.add_argument("--zoom-in", action="store_const", const=True, default=UNSET,
                   help="follow-up taps run on a crop around the mask (RITM's zoom-in, as `oace eval --zoom-in`)")
    p.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace) -> int:
    from oace.app import AppConfig, serve
    from oace.errors import InputError

    options = given(args, models="checkpoint", host="host", port="port", threads="threads", zoom_in="zoom_in")
    if options.get("threads") is not None and options["threads"] < 1:
        raise InputError(f"--threads {options['threads']}: must be at least 1")
    if "models" in options:
        options["models"] = tuple(options["models"])
    serve(AppConfig(**options))
    return 0
