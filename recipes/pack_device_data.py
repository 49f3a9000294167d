#!/usr/bin/env python3
"""Pack training sets small enough to travel to a lent accelerator (recipes/train_v2_h200.sh).

The device machine receives only the working tree (64 MiB in all; the tracked files, mostly the
two reference checkpoints, take about 52 MiB of it), never `../shared`. This writes a smaller copy
of each training folder into an ignored folder of the repo, to be named in the run's `carry`:

- the same layout and file names, so the same readers (`salient:`, `yolo_seg:`) read it;
- every image at most `--max-side` px on its long side, re-encoded as JPEG (`--quality`); masks
  (.png) resized with nearest-neighbour, so their levels stay; label and text files copied as they
  are (YOLO-seg polygons are in normalized coordinates and survive the resize);
- a deterministic subset of each folder's stems (every k-th in sorted order, the same k for all
  folders) so that the whole pack stays under `--budget-mib`; an image keeps its masks and labels.

    .venv/bin/python recipes/pack_device_data.py --out .devdata --budget-mib 10 \\
        ../shared/data-train/ECSSD ../shared/data-train/DUTS-TR-subset \\
        ../shared/data-train/COCO-train-mini ../shared/data/coco128-seg

It writes `<out>/pack.json` (what was kept) and `<out>/DATA`, the `--data` spec of the packed folders.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import shutil
import sys
from pathlib import Path

from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg")
MASK_SUFFIXES = (".png",)


def encode(path: Path, max_side: int, quality: int) -> bytes:
    """The file's packed bytes: a resized JPEG for a photo, a resized (nearest) PNG for a mask, else a copy."""
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES + MASK_SUFFIXES:
        return path.read_bytes()
    with Image.open(path) as im:
        im.load()
        scale = max_side / max(im.size)
        if scale < 1:
            size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
            im = im.resize(size, Image.BILINEAR if suffix in IMAGE_SUFFIXES else Image.NEAREST)
        buf = io.BytesIO()
        if suffix in IMAGE_SUFFIXES:
            im.convert("RGB").save(buf, "JPEG", quality=quality)
        else:
            im.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def kind_of(folder: Path) -> str:
    """The reader a folder takes: `yolo_seg` when it has a labels/ folder (YOLO-seg polygons), else `salient`."""
    return "yolo_seg" if (folder / "labels").is_dir() else "salient"


def stems(folder: Path) -> dict[str, list[Path]]:
    """Every file below `folder` by stem (an image, its masks and labels share one); top-level files apart."""
    by_stem: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.parent != folder:
            by_stem.setdefault(path.stem, []).append(path)
    return by_stem


def pack(folders: list[Path], out: Path, budget_mib: float, max_side: int = 320, quality: int = 85) -> dict:
    """Write the packed folders under `out` (replaced); returns the record written to pack.json."""
    if out.exists() and not (out / "pack.json").is_file():
        raise ValueError(f"{out}: exists and is not an earlier pack (no pack.json); choose another --out")
    groups = {f: stems(f) for f in folders}
    total = sum(len(g) for g in groups.values())
    if not total:
        raise ValueError(f"no files below {', '.join(map(str, folders))}")
    probe = [p for g in groups.values() for s in list(g)[:: max(1, len(g) // 8)][:8] for p in g[s]]
    per_stem = sum(len(encode(p, max_side, quality)) for p in probe) / max(1, len({p.stem for p in probe}))
    every = max(1, math.ceil(per_stem * total / (budget_mib * 2**20 * 0.95)))
    if out.exists():
        shutil.rmtree(out)
    record = {"max_side": max_side, "quality": quality, "every": every, "folders": []}
    for folder, group in groups.items():
        kept = sorted(group)[::every]
        for stem in kept:
            for path in group[stem]:
                dest = out / folder.name / path.relative_to(folder)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(encode(path, max_side, quality))
        record["folders"].append({"source": str(folder), "packed": str(out / folder.name), "stems": len(kept),
                                  "of": len(group), "kind": kind_of(folder)})
    record["bytes"] = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    (out / "pack.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    (out / "DATA").write_text(data_spec(record) + "\n", encoding="utf-8")  # what recipes/train_v2_h200.sh reads
    return record


def data_spec(record: dict) -> str:
    """The packed folders as a training --data spec."""
    return ",".join(f"{f['kind']}:{f['packed']}" for f in record["folders"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path(".devdata"))
    ap.add_argument("--budget-mib", type=float, default=10.0)
    ap.add_argument("--max-side", type=int, default=320)
    ap.add_argument("--quality", type=int, default=85)
    args = ap.parse_args(argv)
    missing = [str(f) for f in args.folders if not f.is_dir()]
    if missing:
        print(f"pack_device_data: not a folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        rec = pack(args.folders, args.out, args.budget_mib, args.max_side, args.quality)
    except ValueError as exc:
        print(f"pack_device_data: {exc}", file=sys.stderr)
        return 2
    print(f"{rec['bytes'] / 2**20:.1f} MiB in {args.out} (every {rec['every']}. stem)")
    print("DATA=" + data_spec(rec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
