"""`oace bench`: benchmark a .tflite on a phone over adb or on the host, or parse a benchmark log.

    oace bench --host MODEL.tflite [--threads 1,2] [--warmup N] [--runs N] [--out DIR]
    oace bench --device [SERIAL|auto] MODEL.tflite --benchmark-binary PATH [--delegates cpu,gpu] ...
    oace bench parse LOG [--json]

A thin mirror of android_bench.runner.bench_host / bench_device and android_bench.parse.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from oace.errors import InputError


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
    p.add_argument("--out", default="runs/bench", help="output directory (default runs/bench)")
    p.add_argument("--threads", default=None,
                   help="comma-separated thread counts, each 1..64 (host default 1,2; device default 4)")
    p.add_argument("--warmup", type=int, default=None, help="warmup runs, 0..10000 (default 5)")
    p.add_argument("--runs", type=int, default=None, help="timed runs, 1..100000 (host default 30, device default 50)")
    p.add_argument("--seed", type=int, default=0, help="(host) seed of the random inputs")
    p.add_argument("--profile", default=None, help="device profile name (e.g. 'Galaxy S23') or JSON file")
    p.add_argument("--target-load-ms", type=float, default=None, help="override the profile's load target")
    p.add_argument("--target-inference-ms", type=float, default=None, help="override the profile's inference target")
    p.add_argument("--kernel-floor", action="store_true",
                   help="(host) also measure this CPU's int8/fp32 convolution floor, to read the model's ms/GMAC against")
    p.add_argument("--preprocess-ms", type=float, default=None,
                   help="app-side preprocessing time to add when the model has no in-graph preprocessing")
    dev = p.add_argument_group("device options")
    dev.add_argument("--benchmark-binary", default=None, metavar="PATH",
                     help="TFLite/LiteRT benchmark_model built for the phone (e.g. android_aarch64_benchmark_model)")
    dev.add_argument("--delegates", default="cpu", help="comma-separated: cpu (XNNPACK), gpu, nnapi (default cpu)")
    dev.add_argument("--repeats", type=int, default=3, help="benchmark_model runs per configuration, 1..100 (default 3)")
    dev.add_argument("--cooldown", type=float, default=10.0, help="seconds to wait between runs, 0..3600 (default 10)")
    dev.add_argument("--cpu-mask", default=None,
                     help="taskset hex mask for benchmark_model (e.g. f0), or 'big': every core outside the slowest cluster")
    dev.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per benchmark_model run (> 0, <= 86400)")
    dev.add_argument("--remote-dir", default="/data/local/tmp", help="where model and binary go on the phone")
    dev.add_argument("--extra-arg", dest="extra_args", action="append", default=[], metavar="FLAG",
                     help="extra benchmark_model flag, repeatable (e.g. --extra-arg=--gpu_precision_loss_allowed=false)")
    dev.add_argument("--adb", default=None, help="adb executable (default: $ADB or adb on PATH)")
    p.set_defaults(handler=run)


def _threads(value: str | None, default: tuple[int, ...]) -> tuple[int, ...]:
    if value is None:
        return default
    try:
        out = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise InputError(f"--threads must be comma-separated integers, got {value!r}") from None
    if not out:
        raise InputError("--threads is empty")
    return out


def _print_parse(result: dict, as_json: bool) -> None:
    if as_json:
        from android_bench.limits import dumps_strict

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
        from android_bench.parse import parse_log_file

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

    if args.host:
        from android_bench.host import bench_host

        report = bench_host(
            model, threads=_threads(args.threads, (1, 2)), warmup=5 if args.warmup is None else args.warmup,
            runs=30 if args.runs is None else args.runs, seed=args.seed, out=args.out, profile=args.profile,
            target_load_ms=args.target_load_ms, target_inference_ms=args.target_inference_ms,
            preprocess_ms=args.preprocess_ms, kernel_floor=args.kernel_floor, argv=sys.argv,
        )
    else:
        if args.kernel_floor:
            raise InputError("--kernel-floor measures this computer's CPU: use it with --host")
        if not args.benchmark_binary:
            raise InputError(
                "--device needs --benchmark-binary PATH (TFLite's android_aarch64_benchmark_model; see docs/bench.md)"
            )
        from android_bench.runner import bench_device

        report = bench_device(
            model, benchmark_binary=args.benchmark_binary, device=device,
            threads=_threads(args.threads, (4,)), delegates=args.delegates,
            warmup=5 if args.warmup is None else args.warmup, runs=50 if args.runs is None else args.runs,
            repeats=args.repeats, cooldown=args.cooldown, cpu_mask=args.cpu_mask, timeout=args.timeout,
            out=args.out, profile=args.profile, target_load_ms=args.target_load_ms,
            target_inference_ms=args.target_inference_ms, preprocess_ms=args.preprocess_ms,
            remote_dir=args.remote_dir, extra_args=args.extra_args, adb=args.adb, argv=sys.argv,
        )
    _summary(report)
    return 0
