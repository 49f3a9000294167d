"""Print the bundle's size, load time and latency on this machine against PyTorch and ONNX Runtime.

    python benchmarks/bench_export.py --export-dir runs/demo_full [--runs 5] [--threads 1,2]   # after `oace demo --untrained --out runs/demo_full`
    python benchmarks/bench_export.py --export-dir runs/demo --checkpoint model/weights/oace_reference_v1_fp16.pt   # after `make demo`

Reads the files `oace export` / `make demo` wrote (oace_segmenter.onnx, saved_model/,
oace_segmenter_{fp32,fp16,int8}.tflite; fp16 is converted from saved_model/ when absent) and
rebuilds the same network in PyTorch (from --checkpoint, else the seeded preset the export used).
Figures are host figures (this CPU), not phone figures. Writes bench_export.json beside the files.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from oace.artifacts import write_json_atomic  # noqa: E402
from oace.reports import markdown_table, provenance  # noqa: E402

PRACTICAL_FLOOR_MS_PER_GMAC = 2.6  # TFLite int8 conv on this CPU at 2 threads (../shared/design/TOOLCHAIN.md)


def timed(fn, warmup: int, runs: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def inputs(seed: int = 0):
    from model.segmenter import pack_clicks

    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (1, 512, 512, 3), dtype=np.uint8),
            pack_clicks([(256, 256, True), (100, 120, False)], 24),
            rng.random((1, 512, 512, 1), dtype=np.float32))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--export-dir", default="runs/demo")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--model", default="segmenter", help="preset when no checkpoint (must match the export)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()

    import onnxruntime as ort
    import torch

    from export.tflite_convert import saved_model_to_tflite
    from model.registry import build_model, load_model
    from model.summary import count_macs
    from oace.litert import SegmentRunner

    d = Path(args.export_dir)
    if not (d / "oace_segmenter_fp16.tflite").exists() and (d / "saved_model").is_dir():
        saved_model_to_tflite(d / "saved_model", d / "oace_segmenter_fp16.tflite", precision="fp16")
    model = (load_model(args.checkpoint) if args.checkpoint else build_model(args.model)).eval()
    gmacs = count_macs("segmenter", model.cfg, model.cfg.input_size) / 1e9
    image, clicks, prev = inputs()
    threads = [int(t) for t in args.threads.split(",")]
    rows, results = [], {"gmacs": gmacs, "runs": args.runs, "warmup": args.warmup, "configs": []}

    def record(name: str, n: int, load_ms: float | None, times: list[float], size: int | None) -> None:
        entry = {"name": name, "threads": n, "load_ms": load_ms, "avg_ms": statistics.mean(times),
                 "p50_ms": statistics.median(times), "std_ms": statistics.pstdev(times), "bytes": size,
                 "ms_per_gmac": statistics.mean(times) / gmacs}
        results["configs"].append(entry)
        print(f"{name:>14} {n} thr: load {load_ms if load_ms is None else round(load_ms, 1)} ms, "
              f"avg {entry['avg_ms']:.1f} ms (p50 {entry['p50_ms']:.1f}, std {entry['std_ms']:.1f})", flush=True)

    for n in threads:
        torch.set_num_threads(n)
        ti, tc, tp = (torch.from_numpy(a) for a in (image, clicks, prev))
        with torch.no_grad():
            record("torch fp32", n, None, timed(lambda: model(ti, tc, tp), args.warmup, args.runs), None)
        so = ort.SessionOptions()
        so.intra_op_num_threads = n
        t0 = time.perf_counter()
        sess = ort.InferenceSession(str(d / "oace_segmenter.onnx"), so, providers=["CPUExecutionProvider"])
        load = (time.perf_counter() - t0) * 1e3
        feed = {"image": image, "clicks": clicks, "prev_mask": prev}
        record("onnxruntime fp32", n, load, timed(lambda: sess.run(None, feed), args.warmup, args.runs),
               (d / "oace_segmenter.onnx").stat().st_size)
        for prec in ("fp32", "fp16", "int8"):
            path = d / f"oace_segmenter_{prec}.tflite"
            if not path.exists():
                continue
            t0 = time.perf_counter()
            runner = SegmentRunner(path, num_threads=n)
            load = (time.perf_counter() - t0) * 1e3
            record(f"tflite {prec}", n, load, timed(lambda: runner(image, clicks, prev), args.warmup, args.runs),
                   path.stat().st_size)

    by = {(c["name"], c["threads"]): c for c in results["configs"]}
    for c in results["configs"]:
        int8 = by.get(("tflite int8", c["threads"]))
        c["x_slower_than_int8"] = c["avg_ms"] / int8["avg_ms"] if int8 else None
        rows.append((c["name"], c["threads"], f"{c['bytes'] / 1e6:.2f}" if c["bytes"] else "-",
                     f"{c['load_ms']:.1f}" if c["load_ms"] is not None else "-", f"{c['avg_ms']:.1f}",
                     f"{c['ms_per_gmac']:.2f}", f"{c['x_slower_than_int8']:.2f}x" if int8 else "-"))
    results.update(provenance())
    write_json_atomic(d / "bench_export.json", results)
    print(f"\nsegmenter: {gmacs:.2f} GMACs at 512x512; host figures (this CPU), not a phone\n")
    print(markdown_table(["config", "threads", "MB", "load ms", "avg ms", "ms/GMAC", "time vs int8"], rows))
    for n in threads:
        i8, tq, ox = by.get(("tflite int8", n)), by.get(("torch fp32", n)), by.get(("onnxruntime fp32", n))
        if i8 and tq and ox:
            print(f"{n} thread(s): int8 is {tq['avg_ms'] / i8['avg_ms']:.1f}x faster than torch fp32 (target >= 5x), "
                  f"{ox['avg_ms'] / i8['avg_ms']:.1f}x faster than ONNX Runtime fp32 (target >= 3x), "
                  f"{i8['ms_per_gmac']:.2f} ms/GMAC (floor {PRACTICAL_FLOOR_MS_PER_GMAC}, target within 15%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
