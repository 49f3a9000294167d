"""The device benchmark: TFLite's `benchmark_model` on a phone over adb.

Writes bench.json / bench.md / latency.png after every measured run, so a run that dies mid-way
keeps what it measured.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm import tqdm

from oace.android_bench import adb as adb_mod
from oace.android_bench.common import BenchAborted, aggregate, describe_model, fail, new_report
from oace.android_bench.config import DeviceBenchConfig
from oace.android_bench.limits import MAX_COOLDOWN_S, MAX_TIMEOUT_S, check_run_counts, check_seconds, check_targets
from oace.android_bench.parse import parse_benchmark_log
from oace.android_bench.profiles import DeviceProfile, get_profile, verdict, with_targets
from oace.android_bench.report import write_bench_reports
from oace.artifacts import sha256_file, write_bytes_atomic
from oace.errors import InputError

__all__ = ["BenchAborted", "DELEGATE_FLAGS", "DeviceBenchConfig", "RemoteTarget", "bench_device", "benchmark_command"]

DELEGATE_FLAGS = {
    "cpu": ["--use_xnnpack=true"],
    "gpu": ["--use_gpu=true"],
    "nnapi": ["--use_nnapi=true"],
}
# the worst delegation seen over the repeats decides (a fallback in any run is flagged)
_DELEGATION_RANK = {"failed": 0, "none": 1, None: 2, "partial": 3, "full": 4}


@dataclass(frozen=True)
class RemoteTarget:
    """Where the model and benchmark_model sit on the phone, and the taskset mask every run is pinned with."""

    dir: str
    binary: str
    model: str
    cpu_mask: str | None


@dataclass(frozen=True)
class _Session:
    """What every run of one bench shares: the checked options, the phone, the targets."""

    config: DeviceBenchConfig
    dev: adb_mod.Device
    serial: str
    prof: DeviceProfile
    model_info: dict[str, Any]
    target: RemoteTarget
    out_dir: Path


def _parse_list(value: str | Sequence[Any], cast: Callable[[str], Any], what: str) -> list[Any]:
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    try:
        return [cast(v.strip()) for v in items if v.strip()]
    except ValueError:
        raise InputError(f"--{what} must be a comma-separated list, got {value!r}") from None


def benchmark_command(target: RemoteTarget, config: DeviceBenchConfig, *, delegate: str, threads: int) -> list[str]:
    """The remote argv: [taskset MASK] BINARY --graph=... flags (run from target.dir)."""
    argv = [target.binary, f"--graph={target.model}", f"--num_threads={threads}", *DELEGATE_FLAGS[delegate],
            f"--warmup_runs={config.warmup}", "--warmup_min_secs=0", f"--num_runs={config.runs}", "--min_secs=0",
            *config.extra_args]
    if target.cpu_mask:
        argv = ["taskset", target.cpu_mask, *argv]
    return argv


def bench_device(
    model: str | os.PathLike,
    config: DeviceBenchConfig,
    *,
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
    config = _checked(config)
    session, report = _start(model, config, argv)
    _push(session, report, model)
    _measure(session, report, sleep)
    return _finish(session, report)


# --- before anything is measured -------------------------------------------------------------------
def _checked(config: DeviceBenchConfig) -> DeviceBenchConfig:
    """The config with threads and delegates as lists, once every option is in range (else InputError)."""
    threads = _parse_list(config.threads, int, "threads")
    delegates = [d.lower() for d in _parse_list(config.delegates, str, "delegates")]
    bad = [d for d in delegates if d not in DELEGATE_FLAGS]
    if bad:
        raise InputError(f"unknown delegate(s) {', '.join(bad)}: use cpu, gpu or nnapi")
    threads = check_run_counts(threads=threads, warmup=config.warmup, runs=config.runs, repeats=config.repeats)
    check_seconds("--cooldown", config.cooldown, hi=MAX_COOLDOWN_S)
    check_seconds("--timeout", config.timeout, hi=MAX_TIMEOUT_S, allow_zero=False)
    check_targets(config.target_load_ms, config.target_inference_ms, config.preprocess_ms)
    mask = config.cpu_mask
    if mask is not None and mask != "big" and not re.fullmatch(r"(0x)?[0-9a-fA-F]+", mask):
        raise InputError(f"--cpu-mask {mask!r} is not a hex core mask (e.g. f0) or 'big'")
    binary = Path(config.benchmark_binary)
    if not binary.is_file():
        raise InputError(
            f"benchmark binary {binary} does not exist: download android_aarch64_benchmark_model (see docs/bench.md) "
            "and pass --benchmark-binary PATH"
        )
    return dataclasses.replace(config, threads=threads, delegates=delegates)


def _resolve_mask(mask: str | None, facts: dict[str, Any]) -> tuple[str | None, str | None]:
    """The mask "big" becomes the device's big-core mask; returns (mask, note for the report)."""
    if mask != "big":
        return mask, None
    big = facts["cpu"].get("big_core_mask")
    note = ("big cores: " + ",".join(map(str, facts["cpu"]["big_cores"]))) if big else \
        "big cores unknown (no cpufreq max frequencies readable): runs are NOT pinned"
    return big, note


def _start(
    model: str | os.PathLike, config: DeviceBenchConfig, argv: Sequence[str] | None,
) -> tuple[_Session, dict[str, Any]]:
    """Find the phone, read its facts and write the first report (no measurement yet)."""
    model_info = describe_model(model)
    adb_path = adb_mod.find_adb(config.adb)
    serial = adb_mod.select_device(adb_path, config.serial)
    dev = adb_mod.Device(adb_path, serial)
    facts = dev.facts()
    prof = with_targets(get_profile(config.profile, facts.get("model")), config.target_load_ms,
                        config.target_inference_ms)
    mask, mask_note = _resolve_mask(config.cpu_mask or prof.cpu_mask, facts)
    remote = config.remote_dir.rstrip("/")
    target = RemoteTarget(dir=config.remote_dir, binary=f"{remote}/{Path(config.benchmark_binary).name}",
                          model=f"{remote}/{Path(model).name}", cpu_mask=mask)
    session = _Session(config, dev, serial, prof, model_info, target, Path(config.out))
    report = _first_report(session, facts, adb_path, mask_note, argv)
    write_bench_reports(report, session.out_dir)
    return session, report


def _first_report(
    session: _Session, facts: dict[str, Any], adb_path: str, mask_note: str | None, argv: Sequence[str] | None,
) -> dict[str, Any]:
    config, binary = session.config, Path(session.config.benchmark_binary)
    report = new_report("device", session.model_info, session.prof, argv)
    report["device"] = facts
    report["tools"] = {
        "adb": adb_path, "adb_version": adb_mod.adb_version(adb_path),
        "benchmark_binary": str(binary), "benchmark_binary_sha256": sha256_file(binary),
    }
    report["settings"] = {
        "delegates": config.delegates, "threads": config.threads, "warmup": config.warmup, "runs": config.runs,
        "repeats": config.repeats, "cooldown_s": config.cooldown, "cpu_mask": session.target.cpu_mask,
        "cpu_mask_note": mask_note, "timeout_s": config.timeout, "remote_dir": config.remote_dir,
        "extra_args": list(config.extra_args), "preprocess_ms": config.preprocess_ms,
    }
    report["thermal"] = {"before": session.dev.temperatures(), "after": None}
    return report


def _push(session: _Session, report: dict[str, Any], model: str | os.PathLike) -> None:
    """Model and binary onto the phone, each only when the remote copy differs."""
    dev, target = session.dev, session.target
    try:
        dev.shell(["mkdir", "-p", target.dir])
        report["pushed"] = {
            "model": dev.push_if_changed(model, target.model),
            "benchmark_binary": dev.push_if_changed(Path(session.config.benchmark_binary), target.binary,
                                                    executable=True),
        }
    except adb_mod.AdbError as exc:
        fail(report, session.out_dir, str(exc))


# --- the runs -------------------------------------------------------------------------------------
def _measure(session: _Session, report: dict[str, Any], sleep: Callable[[float], None]) -> None:
    """Every delegate x threads x repeat in turn; stops (BenchAborted) at the first run that cannot go on."""
    config = session.config
    plan = [(d, t, r) for d in config.delegates for t in config.threads for r in range(1, config.repeats + 1)]
    entries: dict[str, dict[str, Any]] = {}
    bar = tqdm(plan, desc=f"bench on {report['device'].get('model') or session.serial}", unit="run",
               disable=None if config.progress else True)
    for i, (delegate, threads, rep) in enumerate(bar):
        entry = _entry(report, entries, delegate, threads)
        if i and config.cooldown > 0:
            sleep(config.cooldown)
        stop = _run_repeat(session, report, entry, rep)
        if stop:
            bar.close()
            fail(report, session.out_dir, stop)
    bar.close()


def _entry(report: dict[str, Any], entries: dict[str, dict[str, Any]], delegate: str, threads: int) -> dict[str, Any]:
    """The report's configuration for delegate x threads, added on first use."""
    name = f"{delegate}-{threads}t"
    if name not in entries:
        entries[name] = {"name": name, "delegate": delegate, "threads": threads, "repeats": [], "aggregate": None,
                         "verdict": None}
        report["configurations"].append(entries[name])
    return entries[name]


def _run_repeat(session: _Session, report: dict[str, Any], entry: dict[str, Any], rep: int) -> str | None:
    """One benchmark_model run, recorded, judged and written; returns why the bench must stop, if it must."""
    try:
        temps = session.dev.temperatures()
    except adb_mod.AdbError as exc:
        return f"{exc} (before {entry['name']}, repeat {rep})"
    parsed, error = _run_benchmark(session, entry, rep, temps)
    entry["repeats"].append(parsed)
    _judge(session, entry)
    write_bench_reports(report, session.out_dir)
    return error or _crash(session, parsed, entry["name"], rep)


def _run_benchmark(
    session: _Session, entry: dict[str, Any], rep: int, temps: dict[str, Any],
) -> tuple[dict[str, Any], str | None]:
    """Run benchmark_model, keep its raw bytes, parse them; returns (the run's record, its error or None)."""
    cmd = benchmark_command(session.target, session.config, delegate=entry["delegate"], threads=entry["threads"])
    script = f"cd {shlex.quote(session.target.dir)} && {shlex.join(cmd)} 2>&1"
    raw_path = session.out_dir / "raw" / f"{entry['name']}-r{rep}.log"
    raw, exit_code, error = _shell(session, script, entry["name"], rep)
    write_bytes_atomic(raw_path, raw)  # the untouched bytes; the parser reads them decoded defensively
    parsed = parse_benchmark_log(adb_mod.decode(raw))
    if error:
        parsed["errors"].append(error)
    parsed.update(repeat=rep, raw_log=str(raw_path), exit_code=exit_code, command=script,
                  temperatures_before=temps)
    if error and parsed["status"] == "ok":
        parsed["status"] = "incomplete"
    return parsed, error


def _shell(session: _Session, script: str, name: str, rep: int) -> tuple[bytes, int | None, str | None]:
    """(output bytes, exit code, error): a timeout or a vanished device keeps the partial output."""
    timeout = session.config.timeout
    try:
        res = session.dev.shell_script(script, timeout=timeout, check=False)
        return (res.stdout or b"") + (res.stderr or b""), res.returncode, None
    except adb_mod.AdbTimeout as exc:
        return exc.partial_bytes, None, \
            f"benchmark_model timed out after {timeout:g} s on {session.serial} ({name}, repeat {rep})"
    except adb_mod.DeviceGone as exc:
        return exc.partial_output.encode("utf-8"), None, f"{exc} during {name}, repeat {rep}"


def _judge(session: _Session, entry: dict[str, Any]) -> None:
    """The configuration's aggregate over its repeats so far, and its verdict against the targets."""
    entry["aggregate"] = aggregate(entry["repeats"])
    delegate = entry["delegate"]
    worst = min((r.get("delegation") for r in entry["repeats"]), key=lambda d: _DELEGATION_RANK.get(d, 2))
    entry["verdict"] = verdict(
        entry["aggregate"]["init_ms"], entry["aggregate"]["inference_avg_ms"], session.prof,
        preprocessing_in_graph=session.model_info.get("preprocessing_in_graph"),
        preprocess_ms=session.config.preprocess_ms,
        delegate=None if delegate == "cpu" else delegate,
        delegation=worst if delegate != "cpu" else None,
    )


def _crash(session: _Session, parsed: dict[str, Any], name: str, rep: int) -> str | None:
    """Why a run killed by a signal (exit >= 128 or < 0) without figures stops the bench; None otherwise."""
    exit_code = parsed["exit_code"]
    if exit_code is None or not (exit_code >= 128 or exit_code < 0) or parsed["status"] == "ok":
        return None
    why = (parsed["errors"] or [f"exit code {exit_code}"])[-1]
    return (f"benchmark_model crashed on {session.serial} ({name}, repeat {rep}, exit {exit_code}): {why}; "
            f"raw log {parsed['raw_log']}")


# --- after the runs -------------------------------------------------------------------------------
def _finish(session: _Session, report: dict[str, Any]) -> dict[str, Any]:
    """The temperatures after; `ok` only when every run finished with sound figures."""
    try:
        report["thermal"]["after"] = session.dev.temperatures()
    except adb_mod.AdbError as exc:
        return fail(report, session.out_dir, str(exc))
    bad_runs = _bad_runs(report)
    if bad_runs:
        return fail(report, session.out_dir, "benchmark_model did not finish every run: " + "; ".join(bad_runs))
    report["status"] = "ok"
    return write_bench_reports(report, session.out_dir)


def _bad_runs(report: dict[str, Any]) -> list[str]:
    return [
        f"{c['name']} r{r['repeat']}: {r['status']}" + (f" ({why[-1]})" if (why := r["errors"] or r.get("invalid_figures")) else "")
        for c in report["configurations"] for r in c["repeats"] if r["status"] != "ok"
    ]
