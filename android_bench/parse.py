"""Parse the text output of TFLite's / LiteRT's `benchmark_model` into one normalized record.

Accepted variants (any mix, line by line):
- plain lines, lines prefixed `INFO:` / `VERBOSE:` / `WARNING:` / `ERROR:` (optionally followed by
  a `[file.cc:123]` source tag), Android logcat lines from the benchmark APK (`threadtime`:
  `05-30 15:16:44.857  3380  3380 I tflite  : ...`, `brief`: `I/tflite  ( 5395): ...`), glog/absl
  prefixes (`2017-11-27 08:56:35.518210: I file.cc:291] ...`), indented lines from docs, CRLF;
- summaries: `Inference timings in us: Init: .., First inference: .., Warmup (avg): .., Inference
  (avg): ..` (TF >= 2.1 and LiteRT) and the older `Average inference timings in us: Warmup: ..,
  Init: .., Inference: ..` / `.. no stats: ..` (TF 1.x);
- statistics lines `count=N first=.. curr=.. min=.. max=.. avg=.. std=..` with or without
  `p5=.. median=.. p95=..`, numbers in plain or exponent form (`1.04176e+06`);
- memory lines: `Peak memory footprint (MB): init=.. overall=..` (old),
  `Memory footprint delta from the start of the tool (MB): init=.. overall=..` (new) and
  `Overall peak memory footprint (MB) via periodic monitoring: ..`;
- delegate status: completely / partially executed (N kernels) / not executed / failed to apply,
  `Replacing N out of M node(s) with delegate (...)`, the GPU delegate's unsupported-ops listing,
  and, for logs cut down to op-profiling tables, the delegate kernels counted there;
- LiteRT 2.x (`litert/tools` benchmark_model, CompiledModel API): the `===== BENCHMARK RESULTS =====`
  block (`Model initialization`, `Warmup (first)`, `Warmup (avg) .. (N runs)`, `Inference
  (avg|min|max|std)`, `Throughput .. MB/s`, `Memory Usage`: `Init footprint`, `Overall footprint`,
  `Peak memory` or `Peak memory usage not available`), in ms and MB, with or without the
  `INFO: [benchmark_litert_model.h:NN]` source prefix, and its `Use GPU/NPU: [1]` accelerators.

How: each line is cleaned of its prefixes (clean_line) and tried against _RULES, a table of
(pattern, handler) pairs that fill one typed record (_Scan); small functions then attribute the
statistics lines, the delegation and the status, and build the output.

Every figure is in milliseconds (the tool prints microseconds, LiteRT 2.x milliseconds). A figure
the log does not contain is None: nothing is estimated or filled in. Impossible figures (negative
or non-finite times, min > max, an average outside min..max) make the status `invalid` and are
listed in `invalid_figures`; non-finite ones become None.

Limits (say them, never run away): a log file over MAX_LOG_BYTES is refused, so is anything that is
not a regular file (a FIFO, /dev/zero, a folder); of text handed to parse_benchmark_log the first and
last MAX_LOG_BYTES / 2 characters are read; a line is read up to MAX_LINE_CHARS; at most MAX_LIST_ENTRIES errors, warnings and
unsupported ops are kept (the first ones and the last few), `*_omitted` counts the rest.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

from oace.android_bench.limits import finite_json
from oace.errors import InputError

MAX_LOG_BYTES = 16 << 20  # 16 MiB: the largest real log we hold (op profiling, 3 kB) x 5000
MAX_LINE_CHARS = 16_384  # the longest real line is a few hundred characters
MAX_LIST_ENTRIES = 100  # errors / warnings / unsupported ops kept per log
_LIST_TAIL = 10  # of which the last ones (the final error says why a run stopped)

# numbers as printf writes them, including its non-finite spellings (flagged, never trusted)
# (one way to match each digit: `\d+\.?\d*` backtracked quadratically on a line of 16k digits)
_NUM = r"(?:[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:[Ii]nf(?:inity)?|INF|[Nn]a[Nn]|NAN))"

# Prefixes stripped from each line, tried in order (each at most once).
_PREFIXES = [
    # logcat threadtime: "05-30 15:16:44.857  3380  3380 I tflite  : msg"
    re.compile(r"^\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+(?P<lvl>[VDIWEF])\s[^:]*:\s?"),
    # logcat brief / time: "[07-08 15:34:26.202 ]I/tflite  ( 5395): msg"
    re.compile(r"^(?:\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+\s+)?(?P<lvl>[VDIWEF])/[^(:]+\(\s*\d+\):\s?"),
    # glog (TF1 tools): "2017-11-27 08:56:35.518210: I tensorflow/.../benchmark_model.cc:291] msg"
    re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: (?P<lvl>[IWEF]) \S+:\d+\]\s?"),
    # absl: "I0000 00:00:1700000000.123456    1234 benchmark.cc:12] msg"
    re.compile(r"^(?P<lvl>[IWEF])\d{4} \d\d:\d\d:[\d.]+\s+\d+ \S+:\d+\]\s?"),
]
_LEVEL = re.compile(r"^(?P<lvl>INFO|VERBOSE|WARNING|WARN|ERROR|DEBUG|FATAL):\s?")
_SOURCE_TAG = re.compile(r"^\[[\w./+-]+:\d+\]\s*")
_LOGCAT_LEVELS = {"V": "VERBOSE", "D": "DEBUG", "I": "INFO", "W": "WARNING", "E": "ERROR", "F": "FATAL"}

_STAT = re.compile(r"^count=(?P<count>\d+)(?P<rest>(?:\s+\w+=" + _NUM + r")*)\s*$")
_KV = re.compile(r"(?<!\w)(\w+)=(" + _NUM + r")")  # the look-behind keeps findall linear on long words
_SUMMARY = re.compile(
    r"^Inference timings in us: Init: (?P<init>" + _NUM + r"), First inference: (?P<first>" + _NUM
    + r"), Warmup \(avg\): (?P<warmup>" + _NUM + r"), Inference \(avg\): (?P<avg>" + _NUM + r")"
)
_SUMMARY_OLD = re.compile(r"^Average inference timings in us: (?P<body>.*)$")
# a field of the TF1 summary; the look-behind keeps findall linear on a long run of letters
_OLD_FIELD = re.compile(r"(?<![A-Za-z ()])([A-Za-z ()]+):\s*(" + _NUM + r")")
_SESSION = re.compile(r"^Initialized session in (?P<ms>" + _NUM + r")\s*ms")
_RUNNING = re.compile(r"^Running benchmark for (?:at least )?(?P<n>\d+) iterations")
_MEM_OLD = re.compile(r"^Peak memory footprint \(MB\): init=(?P<init>" + _NUM + r") overall=(?P<overall>" + _NUM + r")")
_MEM_NEW = re.compile(
    r"^Memory footprint delta from the start of the tool \(MB\): init=(?P<init>" + _NUM
    + r") overall=(?P<overall>" + _NUM + r")"
)
_MEM_PEAK = re.compile(r"^Overall peak memory footprint \(MB\) via periodic monitoring: (?P<mb>" + _NUM + r")")
_MODEL_SIZE = re.compile(r"^The input model file size \(MB\): (?P<mb>" + _NUM + r")")
_PARAM = re.compile(r"^(?P<key>[#\w][\w ()#/-]*): \[(?P<value>[^\]]*)\]\s*$")  # greedy: linear on long lines
_APPLIED = re.compile(
    r"^(?:Explicitly )?[Aa]pplied (?P<name>\w[\w -]*?) delegate,? and the model graph will be "
    r"(?P<how>completely|partially) executed (?:by|w/) the delegate(?: w/ (?P<kernels>\d+) delegate kernels)?"
)
_NOT_EXECUTED = re.compile(
    r"^Though (?P<name>\w[\w -]*?) delegate is explicitly applied, the model graph will not be executed"
)
_FAILED_APPLY = re.compile(r"^Failed to apply (?P<name>\w[\w -]*?) delegate")
_CREATED = re.compile(
    r"^(?:Created TensorFlow Lite (?:(?P<a>\w+) )?delegate for (?P<b>\w+)|(?P<c>\w+) delegate created)"
)
_REPLACING = re.compile(
    r"^Replacing (?P<n>\d+) out of (?P<m>\d+) node\(s\) with delegate \((?P<kernel>[^)]+)\) node, "
    r"yielding (?P<parts>\d+) partitions"
)
_GPU_CREATED_KERNELS = re.compile(r"^Created (?P<n>\d+) GPU delegate kernels")
_UNSUPPORTED_HEAD = re.compile(r"^Following operations are not supported by (?P<name>\w[\w -]*?) delegate:?\s*$")
_UNSUPPORTED_TAIL = re.compile(
    r"^(?P<gpu>\d+) operations? will run on the (?P<on>\w+), and the remaining (?P<cpu>\d+) operations? will run on the CPU"
)
_OP_LINE = re.compile(r"^(?P<op>[A-Z][A-Z0-9_]*|CUSTOM \S+|\w+)\s*:(?P<why>.*)$")
_PROFILE_TIMINGS = re.compile(r"^Timings \(microseconds\): (?P<body>count=.*)$")
_PROFILE_INIT = re.compile(r"^Profiling Info for Benchmark Initialization")
_PROFILE_RUNS = re.compile(r"^Operator-wise Profiling Info for Regular Benchmark Runs")
_SUMMARY_BY_TYPE = re.compile(r"^=+ Summary by node type =+$")
_TYPE_ROW = re.compile(r"^(?P<type>\w+)\s+(?P<count>\d+)\s+" + _NUM + r"\s+")
# LiteRT 2.x (litert/tools/benchmark_litert_model.h): one figure per line, in ms / MB / MB/s
_LITERT_HEAD = re.compile(r"^=+ BENCHMARK RESULTS =+$")
_LITERT_FIGURE = re.compile(
    r"^(?P<key>Model initialization|Warmup \((?:first|avg)\)|Inference \((?:avg|min|max|std)\)|Throughput|"
    r"Init footprint|Overall footprint|Peak memory):\s*(?P<val>" + _NUM + r")\s*(?P<unit>ms|MB/s|MB)?"
    r"(?:\s*\((?P<runs>\d+) runs?\))?\s*$"
)
_LITERT_NOTE = re.compile(
    r"^(?P<what>Peak memory usage not available|No inference runs were performed|No throughput data available)"
)
_SIGNATURE = re.compile(r"^(?:Signature(?: to run(?: for)?)?|Using signature|Running signature):(?P<sig>.*)$")
_FATAL = re.compile(
    r"(Benchmarking failed|Segmentation fault|Aborted|CANNOT LINK EXECUTABLE|Killed|"
    r"not found|Permission denied|inaccessible or not found|Check failed|terminate called|"
    r"Failed to (?:apply|allocate|invoke|construct|initialize|load|mmap|read|compile|create)|Run failed|"
    r"Could not|Unable to|error: (?:device|closed|no devices)|failed to prepare)",
    re.IGNORECASE,
)

# Delegate kernels as they appear in op-profiling tables and "Replacing ..." lines.
_KERNEL_DELEGATE = {
    "tflitennapidelegate": "nnapi",
    "tflitegpudelegatev2": "gpu",
    "tflitegpudelegate": "gpu",
    "tflitexnnpackdelegate": "xnnpack",
    "tflitehexagondelegate": "hexagon",
    "litert_opengl": "gpu",
    "litert_cl": "gpu",
    "dispatchdelegate": "npu",  # LiteRT's NPU path (vendor dispatch library)
}

_ACCELERATORS = {"gpu", "nnapi", "xnnpack", "hexagon", "coreml", "edgetpu", "npu"}

FIELDS = (
    "status", "init_ms", "first_inference_ms", "warmup_avg_ms", "inference_avg_ms", "inference_std_ms",
    "inference_min_ms", "inference_max_ms", "runs", "peak_memory_mb", "delegate", "delegation",
    "delegate_kernels", "unsupported_ops", "errors",
)


def _field(factory):
    return dataclasses.field(default_factory=factory)


def _num(s: str | None) -> float | None:
    return None if s is None else float(s)


def _ms(us: float | None) -> float | None:
    return None if us is None else round(us / 1000.0, 6)


def _delegate_name(raw: str) -> str:
    key = raw.strip().lower().replace(" ", "")
    if key in _KERNEL_DELEGATE:
        return _KERNEL_DELEGATE[key]
    for token, name in (("nnapi", "nnapi"), ("gpu", "gpu"), ("opencl", "gpu"), ("xnnpack", "xnnpack"),
                        ("hexagon", "hexagon"), ("coreml", "coreml"), ("edgetpu", "edgetpu"), ("npu", "npu")):
        if token in key:
            return name
    return raw.strip().lower()


def clean_line(raw: str) -> tuple[str | None, str]:
    """Strip logcat/glog/level prefixes from one line; return (level or None, message)."""
    line = raw.rstrip("\r\n").strip()
    level = None
    for rx in _PREFIXES:
        m = rx.match(line)
        if m:
            level = _LOGCAT_LEVELS.get(m.group("lvl"), m.group("lvl"))
            line = line[m.end():]
            break
    m = _LEVEL.match(line)
    if m:
        level = {"WARN": "WARNING"}.get(m.group("lvl"), m.group("lvl"))
        line = line[m.end():]
    line = _SOURCE_TAG.sub("", line, count=1).strip()
    return level, line


def _stat_dict(count: str, rest: str) -> dict[str, float]:
    d = {k: float(v) for k, v in _KV.findall(rest)}
    d["count"] = float(count)
    return d


_LITERT_NOTES = {
    "Peak memory usage not available": "LiteRT printed 'Peak memory usage not available': memory_peak_monitored_mb is "
                                       "null and peak_memory_mb is the overall footprint",
    "No inference runs were performed": "LiteRT printed 'No inference runs were performed'",
    "No throughput data available": "LiteRT printed 'No throughput data available': throughput_mb_s is null",
}


def _bounded(text: str) -> tuple[str, list[str]]:
    """At most MAX_LOG_BYTES characters of the text: its first and last halves (the summary comes
    last), and a note when the middle was left out."""
    if len(text) <= MAX_LOG_BYTES:
        return text, []
    half = MAX_LOG_BYTES // 2
    note = (f"only the first and last {half} characters of {len(text)} were parsed (MAX_LOG_BYTES): "
            f"{len(text) - 2 * half} in the middle were not")
    return text[:half] + "\n" + text[-half:], [note]


def _litert_records(fig: dict[str, float], runs: dict[str, int]):
    """LiteRT 2.x's block (ms) as the summary / warmup / steady-state records older logs give (us)."""
    def us(key: str) -> float | None:
        return fig[key] * 1000.0 if key in fig else None

    for head in ("Inference", "Warmup"):  # "Inference (avg): 0.00 ms (0 runs)": no figure at all
        if runs.get(f"{head} (avg)") == 0:
            fig = {k: v for k, v in fig.items() if not k.startswith(head)}
            runs = {k: v for k, v in runs.items() if not k.startswith(head)}
    summary = None
    if "Inference (avg)" in fig:
        summary = {"init": us("Model initialization"), "first": us("Warmup (first)"),
                   "warmup": us("Warmup (avg)"), "avg": us("Inference (avg)")}
    warm = {k: v for k, v in (("count", runs.get("Warmup (avg)")), ("first", us("Warmup (first)")),
                              ("avg", us("Warmup (avg)"))) if v is not None}
    regular = {k: v for k, v in (("count", runs.get("Inference (avg)")), ("avg", us("Inference (avg)")),
                                 ("min", us("Inference (min)")), ("max", us("Inference (max)")),
                                 ("std", us("Inference (std)"))) if v is not None}
    return summary, warm or None, regular or None


def _keep_stats(stats: list[tuple[int, dict[str, float]]]) -> list[tuple[int, dict[str, float]]]:
    """The statistics lines the attribution below can use: the first after marker 1, the last two."""
    first_warm = [s for s in stats[:-2] if s[0] == 1][:1]
    return first_warm + stats[-2:]


def _cap_lists(out: dict[str, Any]) -> None:
    """Keep at most MAX_LIST_ENTRIES of each list (the first ones and the last _LIST_TAIL); count the rest."""
    for key in ("errors", "warnings", "unsupported_ops", "delegate_nodes"):
        items = out[key] or []
        extra = len(items) - MAX_LIST_ENTRIES
        if extra > 0:
            out[key] = items[: MAX_LIST_ENTRIES - _LIST_TAIL] + items[-_LIST_TAIL:]
            out["notes"].append(f"{key}: {extra} more entries omitted (at most {MAX_LIST_ENTRIES} kept: "
                                f"the first {MAX_LIST_ENTRIES - _LIST_TAIL} and the last {_LIST_TAIL})")
        out[f"{key}_omitted"] = max(extra, 0)


_TIMES = ("init_ms", "first_inference_ms", "warmup_avg_ms", "inference_avg_ms", "inference_std_ms",
          "inference_min_ms", "inference_max_ms", "inference_p5_ms", "inference_median_ms", "inference_p95_ms")
_NON_NEGATIVE = _TIMES + ("peak_memory_mb", "memory_peak_monitored_mb", "model_size_mb", "throughput_mb_s")
_FINITE = _NON_NEGATIVE + ("memory_init_mb", "memory_overall_mb")  # footprint deltas may be below 0
_ORDERED = (("inference_min_ms", "inference_max_ms"), ("inference_p5_ms", "inference_median_ms"),
            ("inference_median_ms", "inference_p95_ms"))  # each pair from one statistics line
_AVG_IN_RANGE = (("inference_min_ms", "inference_avg_ms"), ("inference_avg_ms", "inference_max_ms"))


def _check_figures(out: dict[str, Any], avg_with_min_max: bool = True) -> None:
    """Flag figures no benchmark can produce; non-finite ones become None. Any flag: status `invalid`.

    avg_with_min_max: the average comes from the same statistics as min / max (not so in TF1 logs,
    whose `no stats` average is another run than the `count=` line), so it must lie between them."""
    bad: list[str] = []
    for key in _FINITE:
        v = out.get(key)
        if v is not None and not math.isfinite(v):
            bad.append(f"{key} is {v} (not a finite number): set to null")
            out[key] = None
        elif v is not None and v < 0 and key in _NON_NEGATIVE:
            bad.append(f"{key} = {v:g} is negative")
    for lo, hi in _ORDERED + (_AVG_IN_RANGE if avg_with_min_max else ()):
        a, b = out.get(lo), out.get(hi)
        if a is not None and b is not None and a > b * (1 + 1e-9):
            bad.append(f"{lo} = {a:g} > {hi} = {b:g}")
    clean, rest = finite_json(out)  # whatever else the log printed as inf / nan (op profile, ...)
    out.update(clean)
    bad += [f"{path[2:]} is not a finite number: set to null" for path in rest]
    out["invalid_figures"] = bad
    if bad and out["status"] == "ok":
        out["status"] = "invalid"


@dataclasses.dataclass
class _Scan:
    """What one pass over a log collects, before any attribution: the typed record the rules fill."""

    started: bool = False
    text_seen: bool = False
    fatal: bool = False
    phase_markers: int = 0
    stats: list[tuple[int, dict[str, float]]] = _field(list)  # (phase marker index at the time, values)
    summary: dict[str, float | None] | None = None  # microseconds: init, first, warmup, avg
    session_ms: float | None = None
    mem_init: float | None = None
    mem_overall: float | None = None
    mem_peak: float | None = None
    model_size_mb: float | None = None
    params: dict[str, str] = _field(dict)
    requested: list[str] = _field(list)
    created: list[str] = _field(list)
    status_lines: list[tuple[str, str, int | None]] = _field(list)  # (delegate, full|partial|none|failed, kernels)
    replacing: list[dict[str, Any]] = _field(list)
    gpu_kernels_created: int | None = None
    unsupported: list[str] = _field(list)
    unsupported_split: dict[str, int] | None = None
    in_unsupported: bool = False
    profile_section: str | None = None
    profile: dict[str, Any] = _field(dict)
    in_type_summary: bool = False
    type_counts: dict[str, int] = _field(dict)
    errors: list[str] = _field(list)
    warnings: list[str] = _field(list)
    litert: dict[str, float] = _field(dict)  # LiteRT 2.x block: label -> value (ms, MB, MB/s)
    litert_runs: dict[str, int] = _field(dict)
    litert_notes: list[str] = _field(list)
    litert_seen: bool = False
    signature: str | None = None
    long_lines: int = 0
    bad_numbers: int = 0  # lines whose numbers no int() takes (thousands of digits)


# --- the rules: (pattern, handler), tried in order on each cleaned line; a handler that returns
# False did not consume the line and the next rule is tried ---------------------------------------
def _on_started(s: _Scan, m: re.Match, line: str) -> None:
    s.started = True


def _on_litert_head(s: _Scan, m: re.Match, line: str) -> None:
    s.litert_seen = True


def _on_litert_figure(s: _Scan, m: re.Match, line: str) -> None:
    s.litert_seen = True
    s.litert[m.group("key")] = float(m.group("val"))
    if m.group("runs") is not None:
        s.litert_runs[m.group("key")] = int(m.group("runs"))


def _on_litert_note(s: _Scan, m: re.Match, line: str) -> None:
    s.litert_notes.append(m.group("what"))


def _on_signature(s: _Scan, m: re.Match, line: str) -> None:
    s.signature = m.group("sig").strip().removeprefix("[").removesuffix("]").strip() or None


def _on_summary(s: _Scan, m: re.Match, line: str) -> None:
    s.summary = {k: _num(v) for k, v in m.groupdict().items()}


def _on_summary_old(s: _Scan, m: re.Match, line: str) -> None:
    body = dict((k.strip(), _num(v)) for k, v in _OLD_FIELD.findall(m.group("body")))
    s.summary = {"init": body.get("Init"), "first": None, "warmup": body.get("Warmup"),
                 "avg": body.get("Inference", body.get("no stats"))}


def _on_profile_timings(s: _Scan, m: re.Match, line: str) -> None:
    target = "init" if s.profile_section == "init" else "runs"
    s.profile[target] = {k: float(v) for k, v in _KV.findall(m.group("body"))}


def _on_profile_init(s: _Scan, m: re.Match, line: str) -> None:
    s.profile_section = "init"


def _on_profile_runs(s: _Scan, m: re.Match, line: str) -> None:
    s.profile_section = "runs"


def _on_type_summary(s: _Scan, m: re.Match, line: str) -> None:
    s.in_type_summary = s.profile_section == "runs" or s.profile_section is None


def _on_type_table(s: _Scan, m: re.Match, line: str) -> bool | None:
    """Rows of the op profiler's 'Summary by node type' table, while inside it."""
    if not s.in_type_summary:
        return False
    if (row := _TYPE_ROW.match(line)):
        s.type_counts[row.group("type")] = int(row.group("count"))
        return None
    if line.startswith("[Node type]"):
        return None
    s.in_type_summary = False
    return False


def _on_stat(s: _Scan, m: re.Match, line: str) -> None:
    s.stats.append((s.phase_markers, _stat_dict(m.group("count"), m.group("rest"))))
    if len(s.stats) > 8:  # only the first warmup line and the last two are ever used
        s.stats = _keep_stats(s.stats)


def _on_running(s: _Scan, m: re.Match, line: str) -> None:
    s.phase_markers += 1


def _on_session(s: _Scan, m: re.Match, line: str) -> None:
    s.session_ms = float(m.group("ms"))


def _on_mem_peak(s: _Scan, m: re.Match, line: str) -> None:
    s.mem_peak = float(m.group("mb"))


def _on_mem(s: _Scan, m: re.Match, line: str) -> None:
    s.mem_init, s.mem_overall = float(m.group("init")), float(m.group("overall"))


def _on_model_size(s: _Scan, m: re.Match, line: str) -> None:
    s.model_size_mb = float(m.group("mb"))


def _on_applied(s: _Scan, m: re.Match, line: str) -> None:
    how = "full" if m.group("how") == "completely" else "partial"
    kernels = int(m.group("kernels")) if m.group("kernels") else None
    s.status_lines.append((_delegate_name(m.group("name")), how, kernels))


def _on_not_executed(s: _Scan, m: re.Match, line: str) -> None:
    s.status_lines.append((_delegate_name(m.group("name")), "none", 0))


def _on_failed_apply(s: _Scan, m: re.Match, line: str) -> None:
    s.status_lines.append((_delegate_name(m.group("name")), "failed", None))
    s.errors.append(line)
    s.fatal = True


def _on_replacing(s: _Scan, m: re.Match, line: str) -> None:
    s.replacing.append({
        "delegate": _delegate_name(m.group("kernel")), "kernel": m.group("kernel"),
        "nodes_delegated": int(m.group("n")), "nodes_total": int(m.group("m")), "partitions": int(m.group("parts")),
    })


def _on_gpu_kernels(s: _Scan, m: re.Match, line: str) -> None:
    s.gpu_kernels_created = int(m.group("n"))


def _on_unsupported_head(s: _Scan, m: re.Match, line: str) -> None:
    s.in_unsupported = True


def _on_created(s: _Scan, m: re.Match, line: str) -> None:
    # "Created TensorFlow Lite XNNPACK delegate for CPU." names the delegate first
    s.created.append(_delegate_name(m.group("a") or m.group("b") or m.group("c")))


def _on_param(s: _Scan, m: re.Match, line: str) -> None:
    key, value = m.group("key").strip(), m.group("value")
    s.params[key] = value
    low = key.lower().replace(" ", "")
    if low.startswith("use") and value.strip() in ("1", "true"):
        name = _delegate_name(low[3:])
        if name in _ACCELERATORS:  # not "Use caching", "Use dynamic tensor ...", ...
            s.requested.append(name)


_ANY = re.compile("")
_RULES: tuple[tuple[re.Pattern, Any], ...] = (
    (re.compile(r"^STARTING!$"), _on_started),
    (_LITERT_HEAD, _on_litert_head),
    (_LITERT_FIGURE, _on_litert_figure),
    (_LITERT_NOTE, _on_litert_note),
    (_SIGNATURE, _on_signature),
    (_SUMMARY, _on_summary),
    (_SUMMARY_OLD, _on_summary_old),
    (_PROFILE_TIMINGS, _on_profile_timings),
    (_PROFILE_INIT, _on_profile_init),
    (_PROFILE_RUNS, _on_profile_runs),
    (_SUMMARY_BY_TYPE, _on_type_summary),
    (_ANY, _on_type_table),
    (_STAT, _on_stat),
    (_RUNNING, _on_running),
    (_SESSION, _on_session),
    (_MEM_PEAK, _on_mem_peak),
    (_MEM_OLD, _on_mem),
    (_MEM_NEW, _on_mem),
    (_MODEL_SIZE, _on_model_size),
    (_APPLIED, _on_applied),
    (_NOT_EXECUTED, _on_not_executed),
    (_FAILED_APPLY, _on_failed_apply),
    (_REPLACING, _on_replacing),
    (_GPU_CREATED_KERNELS, _on_gpu_kernels),
    (_UNSUPPORTED_HEAD, _on_unsupported_head),
    (_CREATED, _on_created),
    (_PARAM, _on_param),
)


def _in_unsupported_listing(s: _Scan, line: str) -> bool:
    """Lines of the GPU delegate's unsupported-ops listing; True when the line belonged to it."""
    if (m := _UNSUPPORTED_TAIL.match(line)):
        if max(len(m.group("gpu")), len(m.group("cpu"))) < 19:  # op counts, not thousands of digits
            s.unsupported_split = {"delegate_ops": int(m.group("gpu")), "cpu_ops": int(m.group("cpu"))}
        s.in_unsupported = False
        return True
    if _OP_LINE.match(line) and not _STAT.match(line):
        s.unsupported.append(line)
        return True
    s.in_unsupported = False  # the listing ended without the tail line
    return False


def _unmatched(s: _Scan, level: str | None, line: str) -> None:
    """A line no rule took: errors, warnings, unprefixed crash messages."""
    if level in ("ERROR", "FATAL"):
        s.errors.append(line)
        s.fatal = s.fatal or bool(_FATAL.search(line))
    elif level == "WARNING" or line.startswith("Duplicate flags") or line.startswith("Unconsumed"):
        s.warnings.append(line)
    elif level is None and _FATAL.search(line):  # unprefixed shell/loader messages: crash, not found, ...
        s.errors.append(line)
        s.fatal = True


def _scan_line(s: _Scan, raw: str) -> None:
    if len(raw) > MAX_LINE_CHARS:
        raw = raw[:MAX_LINE_CHARS]
        s.long_lines += 1
    level, line = clean_line(raw)
    if not line:
        s.in_type_summary = False
        return
    if line.startswith("# source:"):  # our fixtures' provenance note
        return
    s.text_seen = True
    if s.in_unsupported and _in_unsupported_listing(s, line):
        return
    for rx, handler in _RULES:
        if not (m := rx.match(line)):
            continue
        try:
            if handler(s, m, line) is not False:
                return
        except (ValueError, OverflowError):  # a count of thousands of digits: not a figure
            s.bad_numbers += 1
            return
    _unmatched(s, level, line)


# --- from what was collected to figures ------------------------------------------------------------
def _attribute_stats(s: _Scan, notes: list[str]) -> tuple[dict[str, float] | None, dict[str, float] | None]:
    """(warmup, steady-state) statistics lines, by phase markers or, without them, by position."""
    warm = regular = None
    summary = s.summary
    if s.phase_markers:
        for marker, d in s.stats:
            if marker == 1 and warm is None:
                warm = d
            elif marker >= 2:
                regular = d
        if s.phase_markers == 1 and s.stats and summary is not None and warm is not None:
            # TF1-era logs print one marker per phase only sometimes; trust the summary to tell.
            if summary.get("avg") is not None and warm.get("avg") == summary["avg"]:
                regular, warm = warm, None
    elif len(s.stats) >= 2:
        warm, regular = s.stats[-2][1], s.stats[-1][1]
    elif len(s.stats) == 1:
        only = s.stats[0][1]
        if summary is not None and summary.get("avg") is not None and only.get("avg") == summary["avg"]:
            regular = only
        elif summary is not None and summary.get("warmup") is not None and (
            only.get("avg") == summary["warmup"] or only.get("curr") == summary["warmup"]
        ):
            warm = only
        else:
            notes.append("one statistics line without phase markers: not attributed to warmup or steady state")
    return warm, regular


def _apply_litert(s: _Scan, warm, regular):
    """LiteRT 2.x: its block fills what the older lines did not give."""
    if not s.litert:
        return warm, regular
    lit_summary, lit_warm, lit_regular = _litert_records(s.litert, s.litert_runs)
    s.summary = s.summary or lit_summary
    s.mem_init = s.litert.get("Init footprint") if s.mem_init is None else s.mem_init
    s.mem_overall = s.litert.get("Overall footprint") if s.mem_overall is None else s.mem_overall
    s.mem_peak = s.litert.get("Peak memory") if s.mem_peak is None else s.mem_peak
    s.session_ms = s.litert.get("Model initialization") if s.session_ms is None else s.session_ms
    return warm or lit_warm, regular or lit_regular


def _stat_of(d: dict[str, float] | None, key: str) -> float | None:
    """d[key] ("first" or "avg") of a statistics line; a single run's "curr" stands for either."""
    if d is None:
        return None
    if key in d:
        return d[key]
    return d.get("curr") if d.get("count") == 1 else None


def _timings(s: _Scan, warm, regular) -> dict[str, Any]:
    """init / first / warmup / avg (ms): the summary line first, the statistics lines otherwise."""
    summary = s.summary or {}
    init_us = summary.get("init")

    def pick(key: str, fallback: float | None) -> float | None:
        return summary[key] if summary.get(key) is not None else fallback

    return {"init_ms": _ms(init_us) if init_us is not None else s.session_ms,
            "first_inference_ms": _ms(pick("first", _stat_of(warm, "first"))),
            "warmup_avg_ms": _ms(pick("warmup", _stat_of(warm, "avg"))),
            "inference_avg_ms": _ms(pick("avg", _stat_of(regular, "avg")))}


def _from_status_lines(s: _Scan) -> tuple[str, str, int | None, str]:
    # the accelerator the user asked for decides; XNNPACK is the CPU path
    explicit = [x for x in s.status_lines if x[0] != "xnnpack"] or s.status_lines
    worst = {"failed": 0, "none": 1, "partial": 2, "full": 3}
    name, how, kernels = min(explicit, key=lambda x: worst[x[1]])
    if how == "full" and kernels is None:
        kernels = s.gpu_kernels_created if name == "gpu" and s.gpu_kernels_created else 1
    return name, how, kernels, "status line"


def _from_type_counts(s: _Scan) -> tuple[str | None, str, int | None, str | None]:
    delegate_types = {t: c for t, c in s.type_counts.items() if t.lower() in _KERNEL_DELEGATE}
    if not delegate_types:
        return None, "none", None, None
    t = max(delegate_types, key=delegate_types.get)
    other = sum(c for tt, c in s.type_counts.items() if tt not in delegate_types)
    return _KERNEL_DELEGATE[t.lower()], "partial" if other else "full", delegate_types[t], "op profiling table"


def _delegation(s: _Scan, notes: list[str]) -> tuple[str | None, str | None, int | None, str | None]:
    """(delegate, delegation, kernels, source): status lines, else replacing lines, else flags, ..."""
    accel = [r for r in s.requested if r != "xnnpack"]
    if s.status_lines:
        return _from_status_lines(s)
    if s.replacing and (not accel or any(r["delegate"] in accel for r in s.replacing)):
        # no status line (e.g. XNNPACK applied by default): the node-replacement line tells
        rep = [r for r in s.replacing if not accel or r["delegate"] in accel][-1]
        how = "full" if rep["nodes_delegated"] == rep["nodes_total"] else "partial"
        return rep["delegate"], how, rep["partitions"], "replacing line"
    if s.requested:
        delegate = accel[-1] if accel else s.requested[-1]
        if s.fatal:
            return delegate, "failed", None, "flags + failure"
        notes.append(f"{delegate} was requested but the log does not say whether it ran the graph")
        return delegate, None, None, "flags only"  # requested, but the log does not say: not guessed
    if s.type_counts:
        return _from_type_counts(s)
    if s.created:
        return s.created[-1], None, None, "created line only"
    return None, "none", None, None


def _status(s: _Scan, notes: list[str]) -> str:
    if s.summary is not None and s.summary.get("avg") is not None:  # a summary with no average is no result
        return "ok"
    if s.fatal:
        return "failed"
    if not s.text_seen:
        s.errors.append("no benchmark_model output")
    elif s.started or s.stats or s.profile or s.litert_seen:
        notes.append("no 'Inference timings' summary line: the run did not finish or the log was cut")
    else:
        notes.append("no benchmark_model summary found in this text")
    return "incomplete"


def _op_profile(profile: dict[str, Any]) -> dict[str, Any] | None:
    if not profile:
        return None
    out: dict[str, Any] = {}
    if "init" in profile:
        out["init_total_ms"] = _ms(profile["init"].get("curr") or profile["init"].get("avg"))
    if "runs" in profile:
        r = profile["runs"]
        out.update(runs=_count(r), avg_ms=_ms(r.get("avg")),
                   std_ms=_ms(r.get("std")), min_ms=_ms(r.get("min")), max_ms=_ms(r.get("max")))
    out["note"] = "sums of per-op times from --enable_op_profiling, not wall-clock inference figures"
    return out


def _stat_ms(d: dict[str, float] | None, key: str) -> float | None:
    return _ms(d.get(key)) if d else None


def _count(d: dict[str, float] | None) -> int | None:
    return int(d["count"]) if d and "count" in d and math.isfinite(d["count"]) else None


def _record(s: _Scan, status: str, warm, regular, deleg, notes: list[str]) -> dict[str, Any]:
    """The output: the FIELDS first, then the extras."""
    delegate, delegation, kernels, source = deleg
    fell_back = bool(delegate not in (None, "xnnpack")
                     and (delegation == "none" or (delegation == "failed" and status == "ok")))
    t = _timings(s, warm, regular)
    p = s.params
    return {
        "status": status, **t,
        "inference_std_ms": _stat_ms(regular, "std"), "inference_min_ms": _stat_ms(regular, "min"),
        "inference_max_ms": _stat_ms(regular, "max"), "runs": _count(regular),
        "peak_memory_mb": s.mem_peak if s.mem_peak is not None else s.mem_overall,
        "delegate": delegate, "delegation": delegation, "delegate_kernels": kernels,
        "unsupported_ops": s.unsupported, "errors": s.errors,
        # extras
        "inference_p5_ms": _stat_ms(regular, "p5"), "inference_median_ms": _stat_ms(regular, "median"),
        "inference_p95_ms": _stat_ms(regular, "p95"), "warmup_runs": _count(warm),
        "memory_init_mb": s.mem_init, "memory_overall_mb": s.mem_overall, "memory_peak_monitored_mb": s.mem_peak,
        "model_size_mb": s.model_size_mb,
        "threads": int(p["Num threads"]) if p.get("Num threads", "").isdigit() and len(p["Num threads"]) < 10 else None,
        "graph": p.get("Graph"),
        "signature": s.signature or p.get("Signature to run") or p.get("Signature to run for") or None,
        "throughput_mb_s": s.litert.get("Throughput"),
        "log_format": "litert2" if s.litert_seen else ("tflite" if s.text_seen else None),
        "delegates_requested": sorted(set(s.requested)), "delegation_source": source,
        "delegate_nodes": s.replacing or None, "unsupported_split": s.unsupported_split,
        "fell_back_to_cpu": fell_back, "op_profile": _op_profile(s.profile),
        "warnings": s.warnings, "notes": notes,
    }


def parse_benchmark_log(text: str) -> dict[str, Any]:
    """Normalize one `benchmark_model` output (any variant above) into a JSON-able dict.

    Keys in FIELDS come first; extra keys carry what else the log said (p5/median/p95, memory
    details, requested delegates, node counts, op-profiling totals, warnings, notes).
    """
    text, read_notes = _bounded(text)
    s = _Scan()
    for raw in text.splitlines():
        _scan_line(s, raw)
    notes: list[str] = []
    warm, regular = _attribute_stats(s, notes)
    warm, regular = _apply_litert(s, warm, regular)
    notes += [_LITERT_NOTES[n] for n in dict.fromkeys(s.litert_notes)]
    if s.bad_numbers:
        read_notes.append(f"{s.bad_numbers} line(s) with numbers too long to be figures were skipped")
    if s.long_lines:
        read_notes.append(f"{s.long_lines} line(s) longer than {MAX_LINE_CHARS} characters (MAX_LINE_CHARS) were cut there")
    deleg = _delegation(s, notes)
    status = _status(s, notes)
    out = _record(s, status, warm, regular, deleg, read_notes + notes)
    _cap_lists(out)
    summary_avg = (s.summary or {}).get("avg")
    _check_figures(out, avg_with_min_max=bool(regular) and summary_avg in (None, regular.get("avg")))
    return out


def read_log_file(path: str | Path, max_bytes: int = MAX_LOG_BYTES) -> str:
    """The text of one benchmark log (undecodable bytes replaced); InputError naming the file when it
    cannot be read, is not a regular file (a FIFO, a device such as /dev/zero, a folder) or holds
    more than max_bytes."""
    p = Path(path)
    limit = f"the limit of {max_bytes} bytes ({max_bytes >> 20} MiB)"
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opened to be refused must not block
    except OSError as exc:
        raise InputError(f"cannot read benchmark log {p}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"benchmark log {p} is not a regular file (a pipe, device or folder): "
                             f"give a saved log within {limit}")
        if st.st_size > max_bytes:
            raise InputError(f"benchmark log {p} is {st.st_size} bytes, over {limit}: "
                             "give the output of one benchmark_model run")
        data = _read_at_most(fd, max_bytes + 1)
    except OSError as exc:
        raise InputError(f"cannot read benchmark log {p}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # it grew while being read
        raise InputError(f"benchmark log {p} grew over {limit} while being read")
    return data.decode("utf-8", errors="replace")


def _read_at_most(fd: int, n: int) -> bytes:
    chunks, left = [], n
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def parse_log_file(path: str | Path) -> dict[str, Any]:
    """Read (read_log_file: regular files up to MAX_LOG_BYTES) and parse one log file."""
    return parse_benchmark_log(read_log_file(path))
