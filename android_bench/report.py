"""Bench reports: bench.json (every figure), bench.md (verdict table), latency.png (distributions).

All three are written atomically, so a run killed while writing never leaves a half file; they are
rewritten after every measured repeat.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oace.artifacts import atomic_path
from oace.reports import markdown_table, write_report


def _fmt(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def render_markdown(report: dict[str, Any]) -> str:
    mode = report["mode"]
    prof = report["profile"]
    lines = [f"# Benchmark: {Path(report['model']['path']).name}", "", f"**{report['label']}**", ""]
    if mode == "device":
        d = report.get("device") or {}
        cpu = d.get("cpu") or {}
        clusters = ", ".join(f"{len(c['cpus'])}x{c['max_mhz']:.0f} MHz" for c in cpu.get("clusters", []))
        lines += [
            f"Device: {d.get('model')} ({d.get('serial')}), SoC {d.get('soc')}, Android {d.get('android_version')} "
            f"(SDK {d.get('sdk')}), ABI {d.get('abi')}, CPU {clusters or '-'}",
        ]
        th = report.get("thermal") or {}
        b, a = th.get("before") or {}, th.get("after") or {}
        lines += [
            f"Temperature: battery {_fmt(b.get('battery_c'))} -> {_fmt(a.get('battery_c'))} C, "
            f"hottest zone {_fmt(b.get('thermal_max_c'))} -> {_fmt(a.get('thermal_max_c'))} C",
        ]
    else:
        h = report.get("host") or {}
        runtimes = sorted({r.get("runtime") for c in report["configurations"] for r in c["repeats"] if r.get("runtime")})
        lines += [f"Host: {h.get('cpu')} ({h.get('cores')} cores, {h.get('machine')}), "
                  f"interpreter {', '.join(runtimes) or '-'}"]
    s = report.get("settings") or {}
    lines += [
        f"Targets ({prof['name']}): load <= {prof['load_ms']:g} ms, inference <= {prof['inference_ms']:g} ms",
        f"Settings: warmup {s.get('warmup')}, runs {s.get('runs')}"
        + (f", repeats {s.get('repeats')}, cool-down {s.get('cooldown_s')} s, cpu mask {s.get('cpu_mask') or '-'}"
           if mode == "device" else ""),
    ]
    pig = report["model"].get("preprocessing_in_graph")
    lines.append(
        "Preprocessing: " + ("in the graph (counted in inference)" if pig else
                             "outside the graph (not counted unless --preprocess-ms is given)" if pig is False else
                             "unknown (the host could not open the model)")
    )
    lines.append(f"Status: **{report['status']}**" + (f" - {report['error']}" if report.get("error") else ""))
    lines.append("")
    rows = []
    warnings = []
    for c in report["configurations"]:
        a = c.get("aggregate") or {}
        v = c.get("verdict") or {}
        last = c["repeats"][-1] if c["repeats"] else {}
        deleg = last.get("delegation")
        if c.get("delegate") not in (None, "cpu"):
            deleg_txt = f"{deleg}" + (f" ({last.get('delegate_kernels')} kernels)" if last.get("delegate_kernels") else "")
        else:
            deleg_txt = "CPU" + (" (XNNPACK)" if last.get("delegate") == "xnnpack" else "")
        result = v.get("result", "-")
        if any(w.startswith("DELEGATE FELL BACK") for w in v.get("warnings", [])):
            result += " (CPU FALLBACK!)"
        if mode == "host" and result != "-":
            result = f"host: {result}"
        rows.append([
            c["name"], c["threads"], deleg_txt, f"{a.get('repeats_ok', 0)}/{a.get('repeats', 0)}",
            _fmt(a.get("init_ms")), _fmt(a.get("first_inference_ms")), _fmt(a.get("inference_avg_ms")),
            _fmt(a.get("inference_std_ms"), 2), _fmt(a.get("inference_p50_ms") or a.get("inference_min_ms")),
            _fmt(a.get("inference_p90_ms") or a.get("inference_max_ms")), _fmt(a.get("peak_memory_mb")), result,
        ])
        for w in v.get("warnings", []):
            warnings.append(f"- **{c['name']}: {w}**")
    head2 = "p50 ms" if mode == "host" else "min ms"
    head3 = "p90 ms" if mode == "host" else "max ms"
    lines.append(markdown_table(
        ["config", "threads", "delegation", "repeats ok", "load ms", "first ms", "avg ms", "std ms", head2, head3,
         "peak MB", "verdict"],
        rows,
    ))
    if warnings:
        lines += ["## Warnings", "", *warnings, ""]
    if mode == "host":
        lines += ["These are host figures from this computer's CPU. They are not phone figures; the verdict "
                  "column is an indication only. Measure on the phone with `oace bench --device`.", ""]
    else:
        lines += ["Load = benchmark_model `Init` (model load + interpreter build + delegate); avg = mean over "
                  "repeats of the steady-state `Inference (avg)`; min/max over every run of every repeat. "
                  "Raw logs: `raw/`.", ""]
    return "\n".join(lines) + "\n"


def render_plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = [c for c in report["configurations"] if c["repeats"]]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.4 * len(configs) + 2), 4))
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
    plt.close(fig)


def write_bench_reports(report: dict[str, Any], out_dir: str | Path) -> dict[str, str]:
    """Write bench.json, bench.md and latency.png into out_dir; return their paths."""
    out = Path(out_dir)
    files = {"json": str(out / "bench.json"), "md": str(out / "bench.md"), "png": str(out / "latency.png")}
    report["files"] = files
    write_report(out, "bench", report, render_markdown(report))
    render_plot(report, out / "latency.png")
    return files
