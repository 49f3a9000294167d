"""`oace bench`: benchmark a .tflite on a phone over adb or on the host, or parse a benchmark log.

    oace bench --host MODEL.tflite [--threads 1,2] [--warmup N] [--runs N] [--out DIR]
    oace bench --device [SERIAL|auto] MODEL.tflite --benchmark-binary PATH [--delegates cpu,gpu] ...
    oace bench parse LOG [--json]

A thin mirror of android_bench.host.bench_host, android_bench.runner.bench_device and android_bench.parse;
the options' defaults live in android_bench.config.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, TypeVar

from oace.android_bench.config import BenchConfig, DeviceBenchConfig, HostBenchConfig
from oace.errors import InputError

C = TypeVar("C", bound=BenchConfig)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="Benchmark a .tflite on a phone over adb or on the host; parse benchmark_model logs",
        description="Benchmark a .tflite on a phone (benchmark_model over adb) or on this computer "
        "(LiteRT interpreter), against load / inference targets. `oace bench parse LOG --json` "
        "normalizes a benchmark_model log. See docs/bench.md.",
    )
    p.add_argument("target", nargs="*", metavar="MODEL.tflite | parse LOG",
                   help="the model to benchmark, or `parse LOG` to parse a benchmark_model output")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--host", action="store_true", help="measure on this computer (host figures, not phone figures)")
    mode.add_argument("--device", nargs="?", const="auto", default=None, metavar="SERIAL|auto",
                      help="measure on a phone over adb (default: the only connected device)")
    p.add_argument("--json", action="store_true", help="(parse) print the normalized result as JSON")
    p.add_argument("--out", default=_default(BenchConfig, "out"), help="output directory (default runs/bench)")
    # --threads / --warmup / --runs: unset (None) takes the host's or the device's default
    p.add_argument("--threads", default=None,
                   help="comma-separated thread counts, each 1..64 (host default 1,2; device default 4)")
    p.add_argument("--warmup", type=int, default=None, help="warmup runs, 0..10000 (default 5)")
    p.add_argument("--runs", type=int, default=None, help="timed runs, 1..100000 (host default 30, device default 50)")
    p.add_argument("--seed", type=int, default=_default(HostBenchConfig, "seed"), help="(host) seed of the random inputs")
    p.add_argument("--profile", default=_default(BenchConfig, "profile"),
                   help="device profile name (e.g. 'Galaxy S23') or JSON file")
    p.add_argument("--target-load-ms", type=float, default=_default(BenchConfig, "target_load_ms"),
                   help="override the profile's load target")
    p.add_argument("--target-inference-ms", type=float, default=_default(BenchConfig, "target_inference_ms"),
                   help="override the profile's inference target")
    p.add_argument("--kernel-floor", action="store_true",
                   help="(host) also measure this CPU's int8/fp32 convolution floor, to read the model's ms/GMAC against")
    p.add_argument("--preprocess-ms", type=float, default=_default(BenchConfig, "preprocess_ms"),
                   help="app-side preprocessing time to add when the model has no in-graph preprocessing")
    _register_device_options(p.add_argument_group("device options"))
    p.set_defaults(handler=run)


def _default(config: type, name: str) -> Any:
    """The default of one option, kept once: in the config dataclass's field."""
    return config.__dataclass_fields__[name].default


def _register_device_options(dev: argparse._ArgumentGroup) -> None:
    dev.add_argument("--benchmark-binary", default=None, metavar="PATH",
                     help="TFLite/LiteRT benchmark_model built for the phone (e.g. android_aarch64_benchmark_model)")
    dev.add_argument("--delegates", default=_default(DeviceBenchConfig, "delegates"),
                     help="comma-separated: cpu (XNNPACK), gpu, nnapi (default cpu)")
    dev.add_argument("--repeats", type=int, default=_default(DeviceBenchConfig, "repeats"),
                     help="benchmark_model runs per configuration, 1..100 (default 3)")
    dev.add_argument("--cooldown", type=float, default=_default(DeviceBenchConfig, "cooldown"),
                     help="seconds to wait between runs, 0..3600 (default 10)")
    dev.add_argument("--cpu-mask", default=_default(DeviceBenchConfig, "cpu_mask"),
                     help="taskset hex mask for benchmark_model (e.g. f0), or 'big': every core outside the slowest cluster")
    dev.add_argument("--timeout", type=float, default=_default(DeviceBenchConfig, "timeout"),
                     help="seconds allowed per benchmark_model run (> 0, <= 86400)")
    dev.add_argument("--remote-dir", default=_default(DeviceBenchConfig, "remote_dir"),
                     help="where model and binary go on the phone")
    # None when no --extra-arg is given (append needs a list): the config's default applies
    dev.add_argument("--extra-arg", dest="extra_args", action="append", default=None, metavar="FLAG",
                     help="extra benchmark_model flag, repeatable (e.g. --extra-arg=--gpu_precision_loss_allowed=false)")
    dev.add_argument("--adb", default=_default(DeviceBenchConfig, "adb"),
                     help="adb executable (default: $ADB or adb on PATH)")


def _threads(value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise InputError(f"--threads must be comma-separated integers, got {value!r}") from None
    if not out:
        raise InputError("--threads is empty")
    return out


def _config(config: type[C], args: argparse.Namespace, **given: Any) -> C:
    """`config` from the parsed options named like its fields (an unset one, None, keeps the field's
    default), with `given` taking precedence."""
    names = {f.name for f in dataclasses.fields(config)}
    options = {k: v for k, v in vars(args).items() if k in names and v is not None}
    return config(**{**options, **given})


def _print_parse(result: dict, as_json: bool) -> None:
    if as_json:
        from oace.android_bench.limits import dumps_strict

        print(dumps_strict(result, indent=2))  # RFC 8259: never NaN / Infinity
        return
    keys = ("status", "init_ms", "first_inference_ms", "warmup_avg_ms", "inference_avg_ms", "inference_std_ms",
            "inference_min_ms", "inference_max_ms", "runs", "peak_memory_mb", "delegate", "delegation",
            "delegate_kernels")
    for k in keys:
        print(f"{k:20s} {result[k] if result[k] is not None else '-'}")
    for op in result["unsupported_ops"]:
        print(f"unsupported op       {op}")
    for e in result["errors"]:
        print(f"error                {e}")
    if result.get("errors_omitted"):
        print(f"error                ... {result['errors_omitted']} more error lines omitted")
    for e in result.get("invalid_figures", []):
        print(f"invalid figure       {e}")
    if result.get("fell_back_to_cpu"):
        print(f"WARNING: the {result['delegate']} delegate did not run the model: these are CPU figures")


def _summary(report: dict) -> None:
    print(report["label"])
    for c in report["configurations"]:
        a, v = c.get("aggregate") or {}, c.get("verdict") or {}
        def f(x):  # noqa: E306
            return "-" if x is None else f"{x:.1f}"
        per = f"  ({c['ms_per_gmac']:.2f} ms/GMAC)" if c.get("ms_per_gmac") else ""
        print(f"  {c['name']:16s} load {f(a.get('init_ms'))} ms  avg {f(a.get('inference_avg_ms'))} ms{per}  -> {v.get('result')}")
        for w in v.get("warnings", []):
            print(f"  WARNING {c['name']}: {w}")
    floor = report.get("kernel_floor")
    for t, fl in sorted((floor or {}).get("threads", {}).items(), key=lambda kv: int(kv[0])):
        print(f"  this CPU's conv floor at {t} thread(s): int8 {fl['int8_ms_per_gmac']:.2f} ms/GMAC, "
              f"fp32 {fl['fp32_ms_per_gmac']:.2f} ms/GMAC (int8 {fl['int8_speedup_over_fp32']:.2f}x fp32)")
    note = (report.get("host") or {}).get("int8_note")
    if note:
        print(f"  WARNING: {note}")
    print(f"report: {report['files']['md']}")


def run(args: argparse.Namespace) -> int:
    target = list(args.target)
    if target and target[0] == "parse":
        if args.host or args.device is not None:
            raise InputError("`oace bench parse LOG` takes no --host/--device")
        if len(target) != 2:
            raise InputError("usage: oace bench parse LOG [--json]")
        from oace.android_bench.parse import parse_log_file

        _print_parse(parse_log_file(target[1]), args.json)
        return 0

    from oace.artifacts import check_output_dir

    check_output_dir(args.out, "--out")  # before any measurement (docs/limits.md, "Output paths")
    device = args.device
    # `--device MODEL.tflite` (no serial): argparse took the model as the serial
    if device is not None and not target and (device.endswith(".tflite") or Path(device).is_file()):
        target, device = [device], "auto"
    if len(target) != 1:
        raise InputError("give exactly one MODEL.tflite (or `parse LOG`); see `oace bench --help`")
    model = target[0]
    if not args.host and device is None:
        raise InputError("choose where to measure: --host, or --device [SERIAL|auto] with --benchmark-binary PATH")

    report = _run_host(model, args) if args.host else _run_device(model, device, args)
    _summary(report)
    return 0


def _run_host(model: str, args: argparse.Namespace) -> dict:
    from oace.android_bench.host import bench_host

    threads = _threads(args.threads)
    given = {} if threads is None else {"threads": threads}
    return bench_host(model, _config(HostBenchConfig, args, **given), argv=sys.argv)


def _run_device(model: str, device: str, args: argparse.Namespace) -> dict:
    if args.kernel_floor:
        raise InputError("--kernel-floor measures this computer's CPU: use it with --host")
    if not args.benchmark_binary:
        raise InputError(
            "--device needs --benchmark-binary PATH (TFLite's android_aarch64_benchmark_model; see docs/bench.md)"
        )
    from oace.android_bench.runner import bench_device

    threads = _threads(args.threads)
    given = {"device": device} if threads is None else {"device": device, "threads": threads}
    return bench_device(model, _config(DeviceBenchConfig, args, **given), argv=sys.argv)
