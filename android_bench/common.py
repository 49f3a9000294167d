"""What the host and the device benchmarks share: the model description, the report skeleton,
aggregation over repeats, and the abort that keeps a partial report."""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from oace.android_bench.profiles import DeviceProfile
from oace.android_bench.report import write_bench_reports
from oace.artifacts import sha256_file
from oace.errors import InputError, ToolkitError
from oace.litert import interpreter_class, verify_tflite  # noqa: F401  (re-exported for android_bench.host)
from oace.reports import provenance

HOST_LABEL = "HOST figures (this computer's CPU, LiteRT interpreter): NOT phone figures"
DEVICE_LABEL = "DEVICE figures (benchmark_model on the phone)"


# --- the model ---------------------------------------------------------------------------------
def _check_model(model: str | os.PathLike) -> Path:
    p = Path(model)
    if not p.is_file():
        raise InputError(f"model {p} does not exist or is not a file")
    with open(p, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise InputError(f"model {p} is not a .tflite flatbuffer (no TFL3 identifier)")
    return p


def describe_model(model: str | os.PathLike) -> dict[str, Any]:
    """Path, size, sha256 and inputs of a .tflite; whether image preprocessing is in the graph.

    Preprocessing counts as in-graph when an input is a uint8 NHWC image with 3 channels (the
    bundle contract: raw 0..255 RGB in, normalization inside). None when the file cannot be read.
    """
    p = verify_tflite(_check_model(model), require_loadable=False)  # a corrupt file never reaches LiteRT here
    info: dict[str, Any] = {"path": str(p), "bytes": p.stat().st_size, "sha256": sha256_file(p)}
    try:
        Interpreter, _ = interpreter_class()
        interp = Interpreter(model_path=str(p))
        inputs = [
            {"name": d["name"], "dtype": np.dtype(d["dtype"]).name, "shape": [int(s) for s in d["shape"]]}
            for d in interp.get_input_details()
        ]
        info["inputs"] = inputs
        info["signatures"] = list(interp.get_signature_list())
        info["preprocessing_in_graph"] = any(
            i["dtype"] == "uint8" and len(i["shape"]) == 4 and i["shape"][-1] == 3 for i in inputs
        )
    except Exception as exc:  # noqa: BLE001 - a model the host cannot open is still benchmarkable on the phone
        info["inputs"] = None
        info["preprocessing_in_graph"] = None
        info["inspect_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    try:
        from oace.tflite.inspection import tflite_macs

        info["macs"] = tflite_macs(p).to_json()  # ms per GMAC in the report; which kernels (int8 / float) run
    except Exception as exc:  # noqa: BLE001 - MACs only add a column; a file TensorFlow cannot read still runs
        info["macs"] = None
        info["macs_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return info


def timed_ms(fn: Callable[[], Any], warmup: int, runs: int) -> list[float]:
    """`warmup` untimed calls of fn, then the milliseconds of `runs` back-to-back timed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def new_report(mode: str, model_info: dict[str, Any], prof: DeviceProfile, argv: Sequence[str] | None) -> dict[str, Any]:
    return {
        "kind": "oace.bench",
        "mode": mode,
        "label": DEVICE_LABEL if mode == "device" else HOST_LABEL,
        "status": "running",
        "error": None,
        "model": model_info,
        "profile": dataclasses.asdict(prof),
        "configurations": [],
        "provenance": provenance(argv),
    }


def fail(report: dict[str, Any], out_dir: Path, message: str) -> dict[str, Any]:
    """Mark the report `incomplete` (something was measured) or `failed`, write it and raise BenchAborted
    with the report written attached."""
    any_ok = any(r.get("status") == "ok" for c in report["configurations"] for r in c["repeats"])
    report["status"] = "incomplete" if any_ok else "failed"
    report["error"] = message
    written = write_bench_reports(report, out_dir)
    raise BenchAborted(f"{message} (what was measured is saved in {out_dir / 'bench.json'})", written)


class BenchAborted(ToolkitError):
    """The run stopped mid-way; the partial report was written and is attached."""

    def __init__(self, message: str, report: dict[str, Any]):
        super().__init__(message)
        self.report = report


def aggregate(repeats: Sequence[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in repeats if r.get("status") == "ok" and r.get("inference_avg_ms") is not None]
    agg: dict[str, Any] = {"repeats": len(repeats), "repeats_ok": len(ok)}
    if not ok:
        agg.update(init_ms=None, inference_avg_ms=None)
        return agg
    avgs = [r["inference_avg_ms"] for r in ok]
    inits = [r["init_ms"] for r in ok if r.get("init_ms") is not None]
    agg.update(
        init_ms=round(statistics.median(inits), 4) if inits else None,
        init_max_ms=round(max(inits), 4) if inits else None,
        inference_avg_ms=round(statistics.fmean(avgs), 4),
        inference_avg_min_ms=round(min(avgs), 4),
        inference_avg_max_ms=round(max(avgs), 4),
        inference_avg_spread_ms=round(statistics.pstdev(avgs), 4) if len(avgs) > 1 else 0.0,
    )
    for key in ("inference_std_ms", "inference_min_ms", "inference_max_ms", "peak_memory_mb", "first_inference_ms",
                "inference_median_ms", "inference_p90_ms"):
        vals = [r[key] for r in ok if r.get(key) is not None]
        agg[key] = (round(max(vals), 4) if key in ("inference_max_ms", "peak_memory_mb") else
                    round(min(vals), 4) if key == "inference_min_ms" else round(statistics.fmean(vals), 4)) if vals else None
    return agg
