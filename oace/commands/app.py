"""`oace app`: a local page to tap photos and compare the masks of checkpoints and bundles (a mirror of oace.app.serve)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "app",
        help="Tap photos in a local web page and compare models' masks (Gradio, offline)",
        description="Serve a Gradio page (and a `segment` API) on this machine: tap a photo, see the mask of "
        "every loaded model side by side with its latency. Default models: runs/demo/oace_segmenter_{fp32,int8}.tflite "
        "when `make demo` wrote them, else the reference checkpoint. See docs/app.md.",
    )
    p.add_argument("--model", action="append", default=[], metavar="CKPT_OR_TFLITE",
                   help="checkpoint (.pt), `reference` or .tflite; repeat to compare (at most 4)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=None, help="port (default: the first free one from 7860)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads per model (default: the runtime's)")
    p.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace) -> int:
    from oace.app import AppConfig, serve
    from oace.errors import InputError

    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads {args.threads}: must be at least 1")
    serve(AppConfig(models=tuple(args.model), host=args.host, port=args.port, threads=args.threads))
    return 0
