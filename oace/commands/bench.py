"""`oace bench`: benchmark a .tflite on the host or on a phone over adb, or parse a benchmark log.

    oace bench host MODEL.tflite [--threads 1,2] [--warmup N] [--runs N] [--seed N] [--kernel-floor] [--out DIR] ...
    oace bench device MODEL.tflite --benchmark-binary PATH [--serial SERIAL|auto] [--delegates cpu,gpu]
        [--threads 4] [--repeats N] [--cooldown S] [--cpu-mask MASK|big] [--out DIR] ...
    oace bench parse LOG [--json]

A thin mirror of android_bench.host.bench_host, android_bench.runner.bench_device and android_bench.parse;
each subcommand offers only the options that apply to it, and their defaults live in android_bench.config.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, TypeVar

from oace.android_bench.config import BenchConfig, DeviceBenchConfig, HostBenchConfig
from oace.commands.options import default_of
from oace.errors import InputError

C = TypeVar("C", bound=BenchConfig)

_USAGE = ("give a subcommand: `oace bench host MODEL.tflite`, `oace bench device MODEL.tflite --benchmark-binary PATH` "
          "or `oace bench parse LOG [--json]` (see `oace bench --help`)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="Benchmark a .tflite on a phone over adb or on the host; parse benchmark_model logs",
        description="Benchmark a .tflite on this computer (`host`: LiteRT interpreter) or on a phone "
        "(`device`: benchmark_model over adb), against load / inference targets, or normalize a "
        "benchmark_model log (`parse`). See docs/bench.md.",
    )
    p.set_defaults(handler=_no_subcommand)
    modes = p.add_subparsers(dest="mode", metavar="{host,device,parse}")
    _register_host(modes)
    _register_device(modes)
    _register_parse(modes)


def _csv(values: Any) -> str:
    return ",".join(map(str, values))


def _register_host(modes: argparse._SubParsersAction) -> None:
    p = modes.add_parser(
        "host", help="measure on this computer (host figures, not phone figures)",
        description="Benchmark MODEL.tflite with the LiteRT interpreter on this computer's CPU, per thread "
        "count. Host figures: an indication only, the targets apply to the phone.",
    )
    _add_measure_options(p, HostBenchConfig)
    p.add_argument("--seed", type=int, default=default_of(HostBenchConfig, "seed"),
                   help=f"seed of the random inputs (default {default_of(HostBenchConfig, 'seed')})")
    p.add_argument("--kernel-floor", action="store_true",
                   help="also measure this CPU's int8/fp32 convolution floor, to read the model's ms/GMAC against")
    p.set_defaults(handler=_run_host)


def _register_device(modes: argparse._SubParsersAction) -> None:
    p = modes.add_parser(
        "device", help="measure on a phone over adb with benchmark_model",
        description="Benchmark MODEL.tflite on a phone with TFLite's benchmark_model over adb, per "
        "delegate x thread count, `--repeats` runs each.",
    )
    _add_measure_options(p, DeviceBenchConfig)
    _add_device_options(p)
    p.set_defaults(handler=_run_device)


def _register_parse(modes: argparse._SubParsersAction) -> None:
    p = modes.add_parser(
        "parse", help="normalize a benchmark_model log",
        description="Normalize one benchmark_model output (a terminal copy, a logcat dump from the APK, ...).",
    )
    p.add_argument("log", metavar="LOG", help="the benchmark_model output to parse")
    p.add_argument("--json", action="store_true", help="print the normalized result as JSON")
    p.set_defaults(handler=_run_parse)


def _add_measure_options(p: argparse.ArgumentParser, config: type[BenchConfig]) -> None:
    """What host and device share, with `config`'s defaults (an unset --threads keeps the config's)."""
    p.add_argument("model", metavar="MODEL.tflite", help="the model to benchmark")
    p.add_argument("--out", default=default_of(config, "out"),
                   help=f"output directory (default {default_of(config, 'out')})")
    p.add_argument("--threads", default=None,
                   help=f"comma-separated thread counts, each 1..64 (default {_csv(default_of(config, 'threads'))})")
    p.add_argument("--warmup", type=int, default=default_of(config, "warmup"),
                   help=f"warmup runs, 0..10000 (default {default_of(config, 'warmup')})")
    p.add_argument("--runs", type=int, default=default_of(config, "runs"),
                   help=f"timed runs, 1..100000 (default {default_of(config, 'runs')})")
    p.add_argument("--profile", default=default_of(config, "profile"),
                   help="device profile name (e.g. 'Galaxy S23') or JSON file")
    p.add_argument("--target-load-ms", type=float, default=default_of(config, "target_load_ms"),
                   help="override the profile's load target")
    p.add_argument("--target-inference-ms", type=float, default=default_of(config, "target_inference_ms"),
                   help="override the profile's inference target")
    p.add_argument("--preprocess-ms", type=float, default=default_of(config, "preprocess_ms"),
                   help="app-side preprocessing time to add when the model has no in-graph preprocessing")


def _add_device_options(p: argparse.ArgumentParser) -> None:
    d = DeviceBenchConfig
    p.add_argument("--benchmark-binary", default=None, metavar="PATH",
                   help="(required) TFLite/LiteRT benchmark_model built for the phone "
                   "(e.g. android_aarch64_benchmark_model)")
    p.add_argument("--serial", default=default_of(d, "serial"), metavar="SERIAL|auto",
                   help="the phone's adb serial (default auto: the only connected device)")
    p.add_argument("--delegates", default=default_of(d, "delegates"),
                   help=f"comma-separated: cpu (XNNPACK), gpu, nnapi (default {_csv(default_of(d, 'delegates'))})")
    p.add_argument("--repeats", type=int, default=default_of(d, "repeats"),
                   help=f"benchmark_model runs per configuration, 1..100 (default {default_of(d, 'repeats')})")
    p.add_argument("--cooldown", type=float, default=default_of(d, "cooldown"),
                   help=f"seconds to wait between runs, 0..3600 (default {default_of(d, 'cooldown'):g})")
    p.add_argument("--cpu-mask", default=default_of(d, "cpu_mask"),
                   help="taskset hex mask for benchmark_model (e.g. f0), or 'big': every core outside the slowest "
                   "cluster (default: the profile's)")
    p.add_argument("--timeout", type=float, default=default_of(d, "timeout"),
                   help=f"seconds allowed per benchmark_model run, > 0 and <= 86400 "
                   f"(default {default_of(d, 'timeout'):g})")
    p.add_argument("--remote-dir", default=default_of(d, "remote_dir"),
                   help=f"where model and binary go on the phone (default {default_of(d, 'remote_dir')})")
    # None when no --extra-arg is given (append needs a list): the config's default applies
    p.add_argument("--extra-arg", dest="extra_args", action="append", default=None, metavar="FLAG",
                   help="extra benchmark_model flag, repeatable (e.g. --extra-arg=--gpu_precision_loss_allowed=false)")
    p.add_argument("--adb", default=default_of(d, "adb"), help="adb executable (default: $ADB or adb on PATH)")


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
    default), with `given` taking precedence; --threads parsed here (InputError on a bad list)."""
    names = {f.name for f in dataclasses.fields(config)}
    options = {k: v for k, v in vars(args).items() if k in names and v is not None}
    threads = _threads(args.threads)
    if threads is not None:
        options["threads"] = threads
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


def _no_subcommand(args: argparse.Namespace) -> int:
    raise InputError(_USAGE)


def _run_parse(args: argparse.Namespace) -> int:
    from oace.android_bench.parse import parse_log_file

    _print_parse(parse_log_file(args.log), args.json)
    return 0


def _run_host(args: argparse.Namespace) -> int:
    from oace.android_bench.host import bench_host
    from oace.artifacts import check_output_dir

    check_output_dir(args.out, "--out")  # before any measurement (docs/limits.md, "Output paths")
    _summary(bench_host(args.model, _config(HostBenchConfig, args), argv=sys.argv))
    return 0


def _run_device(args: argparse.Namespace) -> int:
    from oace.artifacts import check_output_dir

    check_output_dir(args.out, "--out")  # before any measurement (docs/limits.md, "Output paths")
    if not args.benchmark_binary:
        raise InputError("`oace bench device` needs --benchmark-binary PATH "
                         "(TFLite's android_aarch64_benchmark_model; see docs/bench.md)")
    from oace.android_bench.runner import bench_device

    _summary(bench_device(args.model, _config(DeviceBenchConfig, args), argv=sys.argv))
    return 0
