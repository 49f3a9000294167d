"""Bench reports: bench.json (every figure), bench.md (verdict table), latency.png (distributions).

All three are written atomically, so a run killed while writing never leaves a half file; they are
rewritten after every measured repeat.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oace.android_bench.host_cpu import dot_product_text
from oace.android_bench.limits import strict_json
from oace.artifacts import atomic_path
from oace.reports import agg_figure, markdown_table, write_report


def _fmt(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


_HOST_FOOTER = ("These are host figures from this computer's CPU. They are not phone figures; the verdict "
                "column is an indication only. Measure on the phone with `oace bench device`.", "")
_DEVICE_FOOTER = ("Load = benchmark_model `Init` (model load + interpreter build + delegate); avg = mean over "
                  "repeats of the steady-state `Inference (avg)`; min/max over every run of every repeat. "
                  "Raw logs: `raw/`.", "")


def render_markdown(report: dict[str, Any]) -> str:
    """bench.md's text; reads the report, never changes it."""
    lines = [f"# Benchmark: {Path(report['model']['path']).name}", "", f"**{report['label']}**", ""]
    lines += _device_lines(report) if report["mode"] == "device" else _host_lines(report)
    lines += _settings_lines(report)
    lines.append(_results_table(report))
    lines += _warnings_section(report)
    if report.get("kernel_floor"):
        macs = report["model"].get("macs") or {}
        lines += _floor_section(report["kernel_floor"], report["configurations"], macs.get("precision"))
    lines += _HOST_FOOTER if report["mode"] == "host" else _DEVICE_FOOTER
    return "\n".join(lines) + "\n"


def _device_lines(report: dict[str, Any]) -> list[str]:
    """The phone and its temperatures before -> after."""
    d = report.get("device") or {}
    cpu = d.get("cpu") or {}
    clusters = ", ".join(f"{len(c['cpus'])}x{c['max_mhz']:.0f} MHz" for c in cpu.get("clusters", []))
    th = report.get("thermal") or {}
    b, a = th.get("before") or {}, th.get("after") or {}
    return [
        f"Device: {d.get('model')} ({d.get('serial')}), SoC {d.get('soc')}, Android {d.get('android_version')} "
        f"(SDK {d.get('sdk')}), ABI {d.get('abi')}, CPU {clusters or '-'}",
        f"Temperature: battery {_fmt(b.get('battery_c'))} -> {_fmt(a.get('battery_c'))} C, "
        f"hottest zone {_fmt(b.get('thermal_max_c'))} -> {_fmt(a.get('thermal_max_c'))} C",
    ]


def _host_lines(report: dict[str, Any]) -> list[str]:
    """This computer's CPU and the interpreter that ran."""
    h = report.get("host") or {}
    runtimes = sorted({r.get("runtime") for c in report["configurations"] for r in c["repeats"] if r.get("runtime")})
    isa = ", ".join(h.get("vector_isa") or []) or "-"
    return [f"Host: {h.get('cpu')} ({h.get('cores')} cores, {h.get('machine')}), "
            f"interpreter {', '.join(runtimes) or '-'}",
            f"Host vector ISA: {isa}; int8 dot-product instructions: {dot_product_text(h)}"]


def _settings_lines(report: dict[str, Any]) -> list[str]:
    """Targets, settings, where preprocessing runs, the model's MACs and the status."""
    prof, s = report["profile"], report.get("settings") or {}
    lines = [
        f"Targets ({prof['name']}): load <= {prof['load_ms']:g} ms, inference <= {prof['inference_ms']:g} ms",
        f"Settings: warmup {s.get('warmup')}, runs {s.get('runs')}"
        + (f", repeats {s.get('repeats')}, cool-down {s.get('cooldown_s')} s, cpu mask {s.get('cpu_mask') or '-'}"
           if report["mode"] == "device" else ""),
    ]
    pig = report["model"].get("preprocessing_in_graph")
    lines.append(
        "Preprocessing: " + ("in the graph (counted in inference)" if pig else
                             "outside the graph (not counted unless --preprocess-ms is given)" if pig is False else
                             "unknown (the host could not open the model)")
    )
    macs = report["model"].get("macs")
    if macs:
        lines.append(f"Model: {macs['gmacs']:.2f} GMACs per call, {macs['precision']} kernels carry most of them")
    lines.append(f"Status: **{report['status']}**" + (f" - {report['error']}" if report.get("error") else ""))
    lines.append("")
    return lines


def _delegation_text(c: dict[str, Any]) -> str:
    last = c["repeats"][-1] if c["repeats"] else {}
    if c.get("delegate") not in (None, "cpu"):
        kernels = last.get("delegate_kernels")
        return f"{last.get('delegation')}" + (f" ({kernels} kernels)" if kernels else "")
    return "CPU" + (" (XNNPACK)" if last.get("delegate") == "xnnpack" else "")


def _result_text(c: dict[str, Any], mode: str) -> str:
    v = c.get("verdict") or {}
    result = v.get("result", "-")
    if any(w.startswith("DELEGATE FELL BACK") for w in v.get("warnings", [])):
        result += " (CPU FALLBACK!)"
    if mode == "host" and result != "-":
        result = f"host: {result}"
    return result


# the two spread columns: the host's own percentiles of every sample; benchmark_model's min / max
_SPREAD = {"host": (("inference_median_ms", "median ms"), ("inference_p90_ms", "p90 ms")),
           "device": (("inference_min_ms", "min ms"), ("inference_max_ms", "max ms"))}


def _results_table(report: dict[str, Any]) -> str:
    """One row per configuration: delegation, repeats ok, load / latency figures, ms/GMAC, verdict."""
    mode = report["mode"]
    (low, low_head), (high, high_head) = _SPREAD[mode]
    rows = []
    for c in report["configurations"]:
        a = c.get("aggregate") or {}
        rows.append([
            c["name"], c["threads"], _delegation_text(c), f"{a.get('repeats_ok', 0)}/{a.get('repeats', 0)}",
            _fmt(a.get("init_ms")), _fmt(a.get("first_inference_ms")), _fmt(a.get("inference_avg_ms")),
            _fmt(a.get("inference_std_ms"), 2), _fmt(a.get(low)), _fmt(a.get(high)), _fmt(a.get("peak_memory_mb")),
            _fmt(c.get("ms_per_gmac"), 2), _result_text(c, mode),
        ])
    return markdown_table(
        ["config", "threads", "delegation", "repeats ok", "load ms", "first ms", "avg ms", "std ms", low_head,
         high_head, "peak MB", "ms/GMAC", "verdict"],
        rows,
    )


def _warnings_section(report: dict[str, Any]) -> list[str]:
    """Every configuration's verdict warnings, then the host's int8 note; nothing when there are none."""
    warnings = [f"- **{c['name']}: {w}**" for c in report["configurations"]
                for w in (c.get("verdict") or {}).get("warnings", [])]
    note = (report.get("host") or {}).get("int8_note")
    if note:
        warnings.append(f"- **{note}**")
    return ["## Warnings", "", *warnings, ""] if warnings else []


def _floor_section(floor: dict[str, Any], configs: list[dict[str, Any]], precision: str | None) -> list[str]:
    """This CPU's conv floor (android_bench/kernel_floor.py) beside the model's ms/GMAC."""
    own = {c["threads"]: c.get("ms_per_gmac") for c in configs}
    key = "int8_ms_per_gmac" if precision == "int8" else "fp32_ms_per_gmac"
    rows = []
    for t, f in sorted(floor["threads"].items(), key=lambda kv: int(kv[0])):
        mine = own.get(int(t))
        rows.append([t, _fmt(f["int8_ms_per_gmac"], 2), _fmt(f["fp32_ms_per_gmac"], 2), f"{f['int8_speedup_over_fp32']:.2f}x",
                     _fmt(mine, 2), f"{mine / f[key]:.2f}x" if mine and precision in ("int8", "float32") else "-"])
    return [
        "## This CPU's convolution floor", "",
        f"3x3 convolutions alone at HRNet-W18's widths ({floor['gmacs']:.2f} GMACs; android_bench/kernel_floor.py), "
        "int8 and fp32, same interpreter. The model column over the floor of its own precision is its overhead here.", "",
        markdown_table(["threads", "int8 floor ms/GMAC", "fp32 floor ms/GMAC", "int8 speed-up over fp32",
                        "model ms/GMAC", "model / floor"], rows),
    ]


def render_plot(report: dict[str, Any], path: Path) -> None:
    configs = [c for c in report["configurations"] if c["repeats"]]
    fig = agg_figure((max(4.0, 1.4 * len(configs) + 2), 4))
    ax = fig.subplots()
    target = report["profile"]["inference_ms"]
    if report["mode"] == "host":
        data = [c["repeats"][0].get("samples_ms") or [float("nan")] for c in configs]
        if configs:
            ax.boxplot(data, showmeans=True)
        ax.set_title("HOST latency per configuration (not phone figures)")
    else:
        for i, c in enumerate(configs, start=1):
            for r in c["repeats"]:
                if r.get("inference_avg_ms") is None:
                    continue
                lo = r.get("inference_min_ms")
                hi = r.get("inference_max_ms")
                ax.errorbar([i], [r["inference_avg_ms"]], yerr=[[r["inference_avg_ms"] - (lo if lo is not None else r["inference_avg_ms"])],
                                                                [(hi if hi is not None else r["inference_avg_ms"]) - r["inference_avg_ms"]]],
                            fmt="o", capsize=4, color="tab:blue", alpha=0.8)
        dev = report.get("device") or {}
        ax.set_title(f"Device latency on {dev.get('model') or dev.get('serial')}: avg (min..max) per repeat")
    ax.axhline(target, color="tab:red", linestyle="--", label=f"target {target:g} ms")
    ax.set_xticks(range(1, len(configs) + 1))
    ax.set_xticklabels([c["name"] for c in configs], rotation=20)
    ax.set_ylabel("inference ms")
    ax.legend(loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def ms_per_gmac(ms: float | None, model_info: dict[str, Any]) -> float | None:
    """Milliseconds per billion multiply-accumulates of the model (None when its MACs are unknown)."""
    macs = model_info.get("macs") or {}
    return round(ms / macs["gmacs"], 4) if ms is not None and macs.get("gmacs") else None


def _completed_report(report: dict[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """A new report: `report` with each configuration's ms_per_gmac and the paths of the files written
    into out_dir (`files`). `report` itself is left as it is."""
    out = Path(out_dir)
    configurations = [
        {**c, "ms_per_gmac": ms_per_gmac((c.get("aggregate") or {}).get("inference_avg_ms"), report["model"])}
        for c in report["configurations"]
    ]
    files = {"json": str(out / "bench.json"), "md": str(out / "bench.md"), "png": str(out / "latency.png")}
    return {**report, "configurations": configurations, "files": files}


def write_bench_reports(report: dict[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """Write bench.json, bench.md and latency.png into out_dir; return the report they hold
    (ms/GMAC per configuration, `files`). `report` itself is left as it is."""
    full = _completed_report(report, out_dir)
    out = Path(out_dir)
    clean, _ = strict_json(full)  # RFC 8259: a non-finite figure is written as null and listed
    write_report(out, "bench", clean, render_markdown(full))
    render_plot(full, out / "latency.png")
    return full
