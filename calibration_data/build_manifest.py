"""Regenerate the committed `coco128_manifest.json` (no images are committed, only the selection).

    python -m oace.calibration_data.build_manifest [--root ../shared/data/coco128-seg] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from oace.calibration_data import COCO128_MANIFEST
from oace.calibration_data.builder import build_calibration_set
from oace.errors import ToolkitError

DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco128-seg"


def build_coco128_manifest(root: str | Path = DEFAULT_ROOT, out: str | Path = COCO128_MANIFEST,
                           count: int = 200, seed: int = 0) -> Path:
    """Build the class-coverage selection from coco128-seg and write its manifest (atomically)."""
    calib = build_calibration_set(root, kind="yolo_seg", count=count, seed=seed)
    path = calib.manifest.save(out)
    s = calib.summary()
    print(f"{path}: {s['count']} samples (+{s['held_out']} held out) from {s['distinct_images']} photos, "
          f"{s['classes_covered']} classes, {s['follow_up_samples']} follow-ups, {s['build_seconds']} s")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(DEFAULT_ROOT), help="the coco128-seg folder")
    ap.add_argument("--out", default=str(COCO128_MANIFEST))
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        build_coco128_manifest(args.root, args.out, args.count, args.seed)
    except ToolkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
