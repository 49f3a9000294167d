"""The device benchmark: TFLite's `benchmark_model` on a phone over adb.

Writes bench.json / bench.md / latency.png after every measured run, so a run that dies mid-way
keeps what it measured.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm import tqdm

from android_bench import adb as adb_mod
from android_bench.common import BenchAborted, aggregate, describe_model, fail, new_report
from android_bench.limits import MAX_COOLDOWN_S, MAX_TIMEOUT_S, check_run_counts, check_seconds, check_targets
from android_bench.parse import parse_benchmark_log
from android_bench.profiles import get_profile, verdict, with_targets
from android_bench.report import write_bench_reports
from oace.artifacts import sha256_file, write_bytes_atomic
from oace.errors import InputError

__all__ = ["BenchAborted", "DELEGATE_FLAGS", "bench_device", "benchmark_command"]

DELEGATE_FLAGS = {
    "cpu": ["--use_xnnpack=true"],
    "gpu": ["--use_gpu=true"],
    "nnapi": ["--use_nnapi=true"],
}


def _parse_list(value: str | Sequence[Any], cast: Callable[[str], Any], what: str) -> list[Any]:
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    try:
        return [cast(v.strip()) for v in items if v.strip()]
    except ValueError:
        raise InputError(f"--{what} must be a comma-separated list, got {value!r}") from None


def benchmark_command(
    remote_dir: str, remote_binary: str, remote_model: str, *, delegate: str, threads: int, warmup: int,
    runs: int, cpu_mask: str | None, extra_args: Sequence[str] = (),
) -> list[str]:
    """The remote argv: [taskset MASK] BINARY --graph=... flags (run from remote_dir)."""
    argv = [remote_binary, f"--graph={remote_model}", f"--num_threads={threads}", *DELEGATE_FLAGS[delegate],
            f"--warmup_runs={warmup}", "--warmup_min_secs=0", f"--num_runs={runs}", "--min_secs=0", *extra_args]
    if cpu_mask:
        argv = ["taskset", cpu_mask, *argv]
    return argv


def bench_device(
    model: str | os.PathLike,
    *,
    benchmark_binary: str | os.PathLike,
    device: str | None = "auto",
    threads: Sequence[int] | str = (4,),
    delegates: Sequence[str] | str = ("cpu",),
    warmup: int = 5,
    runs: int = 50,
    repeats: int = 3,
    cooldown: float = 10.0,
    cpu_mask: str | None = None,
    timeout: float = 300.0,
    out: str | os.PathLike = "runs/bench",
    profile: str | None = None,
    target_load_ms: float | None = None,
    target_inference_ms: float | None = None,
    preprocess_ms: float | None = None,
    remote_dir: str = "/data/local/tmp",
    extra_args: Sequence[str] = (),
    adb: str | None = None,
    progress: bool = True,
    argv: Sequence[str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Benchmark a .tflite on a phone with TFLite's `benchmark_model`, for each delegate x threads.

    Pushes the model and binary to `remote_dir` only when the remote size/sha256 differ, runs each
    configuration `repeats` times (cool-down seconds between runs), pinned with `taskset cpu_mask`
    ("big" = every core outside the slowest cluster, read from the device), and parses every output. Writes the report
    after each repeat; on a dead device, a timeout or a crashed benchmark the partial report is
    written and BenchAborted says what happened.
    """
    threads = _parse_list(threads, int, "threads")
    delegates = [d.lower() for d in _parse_list(delegates, str, "delegates")]
    bad = [d for d in delegates if d not in DELEGATE_FLAGS]
    if bad:
        raise InputError(f"unknown delegate(s) {', '.join(bad)}: use cpu, gpu or nnapi")
    threads = check_run_counts(threads=threads, warmup=warmup, runs=runs, repeats=repeats)  # android_bench/limits.py
    check_seconds("--cooldown", cooldown, hi=MAX_COOLDOWN_S)
    check_seconds("--timeout", timeout, hi=MAX_TIMEOUT_S, allow_zero=False)
    check_targets(target_load_ms, target_inference_ms, preprocess_ms)
    if cpu_mask is not None and cpu_mask != "big" and not re.fullmatch(r"(0x)?[0-9a-fA-F]+", cpu_mask):
        raise InputError(f"--cpu-mask {cpu_mask!r} is not a hex core mask (e.g. f0) or 'big'")
    binary = Path(benchmark_binary)
    if not binary.is_file():
        raise InputError(
            f"benchmark binary {binary} does not exist: download android_aarch64_benchmark_model (see docs/bench.md) "
            "and pass --benchmark-binary PATH"
        )
    model_info = describe_model(model)
    adb_path = adb_mod.find_adb(adb)
    serial = adb_mod.select_device(adb_path, device)
    dev = adb_mod.Device(adb_path, serial)
    out_dir = Path(out)
    raw_dir = out_dir / "raw"

    facts = dev.facts()
    prof = with_targets(get_profile(profile, facts.get("model")), target_load_ms, target_inference_ms)
    report = new_report("device", model_info, prof, argv)
    report["device"] = facts
    report["tools"] = {
        "adb": adb_path, "adb_version": adb_mod.adb_version(adb_path),
        "benchmark_binary": str(binary), "benchmark_binary_sha256": sha256_file(binary),
    }
    mask = cpu_mask or prof.cpu_mask
    mask_note = None
    if mask == "big":
        mask = facts["cpu"].get("big_core_mask")
        mask_note = ("big cores: " + ",".join(map(str, facts["cpu"]["big_cores"]))) if mask else \
            "big cores unknown (no cpufreq max frequencies readable): runs are NOT pinned"
    report["settings"] = {
        "delegates": delegates, "threads": threads, "warmup": warmup, "runs": runs, "repeats": repeats,
        "cooldown_s": cooldown, "cpu_mask": mask, "cpu_mask_note": mask_note, "timeout_s": timeout, "remote_dir": remote_dir,
        "extra_args": list(extra_args), "preprocess_ms": preprocess_ms,
    }
    report["thermal"] = {"before": dev.temperatures(), "after": None}
    write_bench_reports(report, out_dir)

    remote_model = f"{remote_dir.rstrip('/')}/{Path(model).name}"
    remote_bin = f"{remote_dir.rstrip('/')}/{binary.name}"
    try:
        dev.shell(["mkdir", "-p", remote_dir])
        report["pushed"] = {
            "model": dev.push_if_changed(model, remote_model),
            "benchmark_binary": dev.push_if_changed(binary, remote_bin, executable=True),
        }
    except adb_mod.AdbError as exc:
        return fail(report, out_dir, str(exc))

    plan = [(d, t, r) for d in delegates for t in threads for r in range(1, repeats + 1)]
    configs: dict[str, dict[str, Any]] = {}
    bar = tqdm(plan, desc=f"bench on {facts.get('model') or serial}", unit="run", disable=None if progress else True)
    first = True
    for delegate, t, rep in bar:
        name = f"{delegate}-{t}t"
        cfg = configs.get(name)
        if cfg is None:
            cfg = {"name": name, "delegate": delegate, "threads": t, "repeats": [], "aggregate": None, "verdict": None}
            configs[name] = cfg
            report["configurations"].append(cfg)
        if not first and cooldown > 0:
            sleep(cooldown)
        first = False
        cmd = benchmark_command(remote_dir, remote_bin, remote_model, delegate=delegate, threads=t, warmup=warmup,
                                runs=runs, cpu_mask=mask, extra_args=extra_args)
        script = f"cd {shlex.quote(remote_dir)} && {shlex.join(cmd)} 2>&1"
        raw_path = raw_dir / f"{name}-r{rep}.log"
        error = None
        try:
            temps = dev.temperatures()
        except adb_mod.AdbError as exc:
            bar.close()
            return fail(report, out_dir, f"{exc} (before {name}, repeat {rep})")
        try:
            res = dev.shell_script(script, timeout=timeout, check=False)
            raw = (res.stdout or b"") + (res.stderr or b"")
            exit_code = res.returncode
        except adb_mod.AdbTimeout as exc:
            raw, exit_code = exc.partial_bytes, None
            error = f"benchmark_model timed out after {timeout:g} s on {serial} ({name}, repeat {rep})"
        except adb_mod.DeviceGone as exc:
            raw, exit_code = exc.partial_output.encode("utf-8"), None
            error = f"{exc} during {name}, repeat {rep}"
        write_bytes_atomic(raw_path, raw)  # the untouched bytes; the parser reads them decoded defensively
        text = adb_mod.decode(raw)
        parsed = parse_benchmark_log(text)
        if error:
            parsed["errors"].append(error)
        parsed.update(repeat=rep, raw_log=str(raw_path), exit_code=exit_code, command=script,
                      temperatures_before=temps)
        if error and parsed["status"] == "ok":
            parsed["status"] = "incomplete"
        cfg["repeats"].append(parsed)
        cfg["aggregate"] = aggregate(cfg["repeats"])
        # the worst delegation seen over the repeats decides (a fallback in any run is flagged)
        rank = {"failed": 0, "none": 1, None: 2, "partial": 3, "full": 4}
        worst = min((r.get("delegation") for r in cfg["repeats"]), key=lambda d: rank.get(d, 2))
        cfg["verdict"] = verdict(
            cfg["aggregate"]["init_ms"], cfg["aggregate"]["inference_avg_ms"], prof,
            preprocessing_in_graph=model_info.get("preprocessing_in_graph"), preprocess_ms=preprocess_ms,
            delegate=None if delegate == "cpu" else delegate,
            delegation=worst if delegate != "cpu" else None,
        )
        write_bench_reports(report, out_dir)
        if error:
            bar.close()
            return fail(report, out_dir, error)
        if exit_code is not None and (exit_code >= 128 or exit_code < 0) and parsed["status"] != "ok":
            why = (parsed["errors"] or [f"exit code {exit_code}"])[-1]
            bar.close()
            return fail(report, out_dir, f"benchmark_model crashed on {serial} ({name}, repeat {rep}, exit {exit_code}): {why}; raw log {raw_path}")
    bar.close()
    try:
        report["thermal"]["after"] = dev.temperatures()
    except adb_mod.AdbError as exc:
        return fail(report, out_dir, str(exc))
    bad_runs = [
        f"{c['name']} r{r['repeat']}: {r['status']}" + (f" ({why[-1]})" if (why := r["errors"] or r.get("invalid_figures")) else "")
        for c in report["configurations"] for r in c["repeats"] if r["status"] != "ok"
    ]
    if bad_runs:
        return fail(report, out_dir, "benchmark_model did not finish every run: " + "; ".join(bad_runs))
    report["status"] = "ok"
    write_bench_reports(report, out_dir)
    return report
