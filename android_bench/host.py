"""The host benchmark: the LiteRT interpreter on this computer, labelled as host figures."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from oace.android_bench.common import aggregate, describe_model, fail, interpreter_class, new_report, verify_tflite
from oace.android_bench.config import HostBenchConfig
from oace.android_bench.host_cpu import cpu_facts, int8_note
from oace.android_bench.limits import check_run_counts, check_targets
from oace.android_bench.profiles import DeviceProfile, get_profile, verdict, with_targets
from oace.android_bench.report import write_bench_reports
from oace.errors import ToolkitError
from oace.litert import segment_signature


def random_inputs(details: dict[str, dict[str, Any]], seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random data of the right dtype/shape for each input; click-like int inputs get valid rows."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, d in details.items():
        shape = [max(1, int(s)) for s in d["shape"]]
        dtype = np.dtype(d["dtype"])
        if dtype == np.uint8:
            a = rng.integers(0, 256, size=shape, dtype=np.uint8)
        elif dtype == np.int8:
            a = rng.integers(-128, 128, size=shape, dtype=np.int8)
        elif np.issubdtype(dtype, np.integer):
            if len(shape) == 3 and shape[-1] == 3:  # clicks: (x, y, label) rows, padding label -1
                a = np.zeros(shape, dtype=dtype)
                a[..., 2] = -1
                a[:, 0, 0] = rng.integers(0, 256, size=shape[0])
                a[:, 0, 1] = rng.integers(0, 256, size=shape[0])
                a[:, 0, 2] = 1
            else:
                a = rng.integers(0, 8, size=shape).astype(dtype)
        elif dtype == np.bool_:
            a = rng.integers(0, 2, size=shape).astype(np.bool_)
        else:
            a = rng.random(size=shape).astype(dtype)
        out[name] = a
    return out


def _stats_ms(samples: Sequence[float]) -> dict[str, Any]:
    a = np.asarray(samples, dtype=np.float64)
    return {
        "inference_avg_ms": round(float(a.mean()), 4),
        "inference_median_ms": round(float(np.percentile(a, 50)), 4),
        "inference_p90_ms": round(float(np.percentile(a, 90)), 4),
        "inference_std_ms": round(float(a.std()), 4),
        "inference_min_ms": round(float(a.min()), 4),
        "inference_max_ms": round(float(a.max()), 4),
        "runs": int(a.size),
    }


def _load(model: Path, threads: int) -> tuple[Any, str, dict[str, float]]:
    """The interpreter with its tensors allocated, its runtime's name, and the load times (ms)."""
    Interpreter, runtime = interpreter_class()
    verify_tflite(model)  # cached: the file was checked once in a capped child process
    t0 = time.perf_counter()
    data = model.read_bytes()
    t1 = time.perf_counter()
    interp = Interpreter(model_content=data, num_threads=threads)
    t2 = time.perf_counter()
    interp.allocate_tensors()
    t3 = time.perf_counter()
    times = {
        "read_ms": round((t1 - t0) * 1000, 4),
        "build_ms": round((t2 - t1) * 1000, 4),
        "allocate_ms": round((t3 - t2) * 1000, 4),
        "init_ms": round((t3 - t0) * 1000, 4),
    }
    return interp, runtime, times


def _signature_call(interp: Any, key: str, seed: int) -> Callable[[], None]:
    """One call of signature `key` on seeded random inputs."""
    runner = interp.get_signature_runner(key)
    inputs = random_inputs(runner.get_input_details(), seed)

    def call() -> None:
        runner(**inputs)

    return call


def _tensor_call(interp: Any, seed: int) -> Callable[[], None]:
    """Set every input (seeded random), invoke, read every output: for a model without signatures."""
    details = interp.get_input_details()
    inputs = random_inputs({d["name"]: d for d in details}, seed)
    index = {d["name"]: d["index"] for d in details}
    outs = interp.get_output_details()

    def call() -> None:
        for n, a in inputs.items():
            interp.set_tensor(index[n], a)
        interp.invoke()
        for o in outs:
            interp.get_tensor(o["index"])

    return call


def _invoker(interp: Any, model: Path, seed: int) -> tuple[Callable[[], None], str]:
    """One inference call and how it addresses the model: the signature a bundle runs through, chosen
    as every stage chooses it (`oace.litert.segment_signature`), else input/output details."""
    if interp.get_signature_list():
        key = segment_signature(interp, model)
        return _signature_call(interp, key, seed), f"signature runner '{key}'"
    return _tensor_call(interp, seed), "input/output details (no signature)"


def _call_ms(call: Callable[[], None]) -> float:
    s = time.perf_counter()
    call()
    return (time.perf_counter() - s) * 1000


def _one_host_config(model: Path, threads: int, config: HostBenchConfig) -> dict[str, Any]:
    """Load the model at `threads` threads, then time max(1, warmup) warm-up calls and `runs` calls."""
    interp, runtime, load_times = _load(model, threads)
    call, addressing = _invoker(interp, model, config.seed)
    warm = [_call_ms(call) for _ in range(max(1, config.warmup))]
    bar = tqdm(range(config.runs), desc=f"host {threads} thread(s)", unit="run",
               disable=None if config.progress else True, leave=False)
    samples = [_call_ms(call) for _ in bar]
    return {
        "status": "ok",
        **load_times,
        "first_inference_ms": round(warm[0], 4),
        "warmup_avg_ms": round(float(np.mean(warm)), 4),
        "warmup_runs": len(warm),
        **_stats_ms(samples),
        "samples_ms": [round(x, 4) for x in samples],
        "runtime": runtime,
        "addressing": addressing,
        "delegate": None,
        "delegation": "none",
    }


def _host_configuration(
    model: Path, threads: int, config: HostBenchConfig, prof: DeviceProfile, model_info: dict[str, Any],
) -> dict[str, Any]:
    """One thread count measured, aggregated and judged (the verdict scoped as a host check)."""
    res = _one_host_config(model, threads, config)
    cfg = {"name": f"host-cpu-{threads}t", "delegate": "cpu", "threads": threads, "repeats": [res],
           "aggregate": aggregate([res])}
    cfg["verdict"] = verdict(
        cfg["aggregate"]["init_ms"], cfg["aggregate"]["inference_avg_ms"], prof,
        preprocessing_in_graph=model_info.get("preprocessing_in_graph"), preprocess_ms=config.preprocess_ms,
    )
    cfg["verdict"]["scope"] = "host check only: the targets apply to the phone"
    return cfg


def _first_report(
    model_info: dict[str, Any], prof: DeviceProfile, config: HostBenchConfig, threads: list[int],
    argv: Sequence[str] | None,
) -> dict[str, Any]:
    report = new_report("host", model_info, prof, argv)
    facts = cpu_facts()
    int8_model = (model_info.get("macs") or {}).get("precision") == "int8"
    report["host"] = {**facts, "int8_note": int8_note(facts) if int8_model else None}  # only int8 figures mislead
    report["settings"] = {"threads": list(threads), "warmup": config.warmup, "runs": config.runs,
                          "seed": config.seed, "preprocess_ms": config.preprocess_ms}
    return report


def _measure(
    model: Path, config: HostBenchConfig, threads: list[int], prof: DeviceProfile, report: dict[str, Any],
) -> None:
    """Every thread count in turn (the report written after each), then the kernel floor if asked."""
    out_dir = Path(config.out)
    for t in threads:
        report["configurations"].append(_host_configuration(model, t, config, prof, report["model"]))
        write_bench_reports(report, out_dir)
    if config.kernel_floor:
        from oace.android_bench.kernel_floor import build_probe, measure_floor

        with tempfile.TemporaryDirectory(prefix="oace_floor_") as tmp:
            report["kernel_floor"] = measure_floor(build_probe(tmp), threads)
        write_bench_reports(report, out_dir)


def bench_host(
    model: str | os.PathLike, config: HostBenchConfig = HostBenchConfig(), *, argv: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Benchmark a .tflite with the LiteRT interpreter on this computer, for each thread count.

    load = model read + interpreter build + allocate_tensors; inference = one signature-runner call
    (input copy-in, invoke, output copy-out), `warmup` calls then `runs` timed calls.
    config.kernel_floor: also measure this CPU's int8 and fp32 convolution floor at the same thread counts
    (android_bench/kernel_floor.py, under half a minute), so the model's ms/GMAC can be read against it.
    """
    threads = check_run_counts(threads=config.threads, warmup=config.warmup, runs=config.runs)  # bounded: see android_bench/limits.py
    check_targets(config.target_load_ms, config.target_inference_ms, config.preprocess_ms)
    model_info = describe_model(model)
    prof = with_targets(get_profile(config.profile), config.target_load_ms, config.target_inference_ms)
    report = _first_report(model_info, prof, config, threads, argv)
    out_dir = Path(config.out)
    try:
        _measure(Path(model), config, threads, prof, report)
    except ToolkitError as exc:
        return fail(report, out_dir, str(exc))
    except Exception as exc:  # noqa: BLE001 - the interpreter raises plain RuntimeError/ValueError
        return fail(report, out_dir, f"host interpreter failed on {model}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    report["status"] = "ok"
    return write_bench_reports(report, out_dir)
