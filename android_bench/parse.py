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
  and, for logs cut down to op-profiling tables, the delegate kernels counted there.

Every figure is in milliseconds (the tool prints microseconds). A figure the log does not contain
is None: nothing is estimated or filled in.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from oace.errors import InputError

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"

# Prefixes stripped from each line, tried in order (each at most once).
_PREFIXES = [
    # logcat threadtime: "05-30 15:16:44.857  3380  3380 I tflite  : msg"
    re.compile(r"^\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+(?P<lvl>[VDIWEF])\s+[^:]*?\s*:\s?"),
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
_KV = re.compile(r"(\w+)=(" + _NUM + r")")
_SUMMARY = re.compile(
    r"^Inference timings in us: Init: (?P<init>" + _NUM + r"), First inference: (?P<first>" + _NUM
    + r"), Warmup \(avg\): (?P<warmup>" + _NUM + r"), Inference \(avg\): (?P<avg>" + _NUM + r")"
)
_SUMMARY_OLD = re.compile(r"^Average inference timings in us: (?P<body>.*)$")
_SESSION = re.compile(r"^Initialized session in (?P<ms>" + _NUM + r")\s*ms")
_RUNNING = re.compile(r"^Running benchmark for (?:at least )?(?P<n>\d+) iterations")
_MEM_OLD = re.compile(r"^Peak memory footprint \(MB\): init=(?P<init>" + _NUM + r") overall=(?P<overall>" + _NUM + r")")
_MEM_NEW = re.compile(
    r"^Memory footprint delta from the start of the tool \(MB\): init=(?P<init>" + _NUM
    + r") overall=(?P<overall>" + _NUM + r")"
)
_MEM_PEAK = re.compile(r"^Overall peak memory footprint \(MB\) via periodic monitoring: (?P<mb>" + _NUM + r")")
_MODEL_SIZE = re.compile(r"^The input model file size \(MB\): (?P<mb>" + _NUM + r")")
_PARAM = re.compile(r"^(?P<key>[#\w][\w ()#/-]*?)\s*: \[(?P<value>[^\]]*)\]\s*$")
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
_FATAL = re.compile(
    r"(Benchmarking failed|Segmentation fault|Aborted|CANNOT LINK EXECUTABLE|Killed|"
    r"not found|Permission denied|inaccessible or not found|Check failed|terminate called|"
    r"Failed to (?:apply|allocate|invoke|construct|initialize|load|mmap|read)|"
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
}

_ACCELERATORS = {"gpu", "nnapi", "xnnpack", "hexagon", "coreml", "edgetpu", "npu"}

FIELDS = (
    "status", "init_ms", "first_inference_ms", "warmup_avg_ms", "inference_avg_ms", "inference_std_ms",
    "inference_min_ms", "inference_max_ms", "runs", "peak_memory_mb", "delegate", "delegation",
    "delegate_kernels", "unsupported_ops", "errors",
)


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


def parse_benchmark_log(text: str) -> dict[str, Any]:
    """Normalize one `benchmark_model` output (any variant above) into a JSON-able dict.

    Keys in FIELDS come first; extra keys carry what else the log said (p5/median/p95, memory
    details, requested delegates, node counts, op-profiling totals, warnings, notes).
    """
    started = False
    phase_markers = 0
    stats: list[tuple[int, dict[str, float]]] = []  # (phase marker index at the time, values)
    summary: dict[str, float | None] | None = None
    session_ms = None
    mem_init = mem_overall = mem_peak = None
    model_size_mb = None
    params: dict[str, str] = {}
    requested: list[str] = []
    created: list[str] = []
    status_lines: list[tuple[str, str, int | None]] = []  # (delegate, full|partial|none|failed, kernels)
    replacing: list[dict[str, Any]] = []
    gpu_kernels_created = None
    unsupported: list[str] = []
    unsupported_split: dict[str, int] | None = None
    in_unsupported = False
    profile_section = None
    profile: dict[str, Any] = {}
    in_type_summary = False
    type_counts: dict[str, int] = {}
    errors: list[str] = []
    warnings: list[str] = []
    fatal = False
    text_seen = False

    for raw in text.splitlines():
        level, line = clean_line(raw)
        if not line:
            in_type_summary = False
            continue
        if line.startswith("# source:"):  # our fixtures' provenance note
            continue
        text_seen = True

        if in_unsupported:
            m = _UNSUPPORTED_TAIL.match(line)
            if m:
                unsupported_split = {"delegate_ops": int(m.group("gpu")), "cpu_ops": int(m.group("cpu"))}
                in_unsupported = False
                continue
            if _OP_LINE.match(line) and not _STAT.match(line):
                unsupported.append(line)
                continue
            in_unsupported = False  # listing ended without the tail line

        if line == "STARTING!":
            started = True
            continue
        if (m := _SUMMARY.match(line)):
            summary = {k: _num(v) for k, v in m.groupdict().items()}
            continue
        if (m := _SUMMARY_OLD.match(line)):
            body = dict((k.strip(), _num(v)) for k, v in re.findall(r"([A-Za-z ()]+):\s*(" + _NUM + r")", m.group("body")))
            summary = {
                "init": body.get("Init"),
                "first": None,
                "warmup": body.get("Warmup"),
                "avg": body.get("Inference", body.get("no stats")),
            }
            continue
        if (m := _PROFILE_TIMINGS.match(line)):
            vals = dict(_KV.findall(m.group("body")))
            target = "init" if profile_section == "init" else "runs"
            profile[target] = {k: float(v) for k, v in vals.items()}
            continue
        if _PROFILE_INIT.match(line):
            profile_section = "init"
            continue
        if _PROFILE_RUNS.match(line):
            profile_section = "runs"
            continue
        if _SUMMARY_BY_TYPE.match(line):
            in_type_summary = profile_section == "runs" or profile_section is None
            continue
        if in_type_summary:
            m = _TYPE_ROW.match(line)
            if m:
                type_counts[m.group("type")] = int(m.group("count"))
                continue
            if line.startswith("[Node type]"):
                continue
            in_type_summary = False
        if (m := _STAT.match(line)):
            stats.append((phase_markers, _stat_dict(m.group("count"), m.group("rest"))))
            continue
        if (m := _RUNNING.match(line)):
            phase_markers += 1
            continue
        if (m := _SESSION.match(line)):
            session_ms = float(m.group("ms"))
            continue
        if (m := _MEM_PEAK.match(line)):
            mem_peak = float(m.group("mb"))
            continue
        if (m := _MEM_OLD.match(line)) or (m := _MEM_NEW.match(line)):
            mem_init, mem_overall = float(m.group("init")), float(m.group("overall"))
            continue
        if (m := _MODEL_SIZE.match(line)):
            model_size_mb = float(m.group("mb"))
            continue
        if (m := _APPLIED.match(line)):
            how = "full" if m.group("how") == "completely" else "partial"
            kernels = int(m.group("kernels")) if m.group("kernels") else None
            status_lines.append((_delegate_name(m.group("name")), how, kernels))
            continue
        if (m := _NOT_EXECUTED.match(line)):
            status_lines.append((_delegate_name(m.group("name")), "none", 0))
            continue
        if (m := _FAILED_APPLY.match(line)):
            status_lines.append((_delegate_name(m.group("name")), "failed", None))
            errors.append(line)
            fatal = True
            continue
        if (m := _REPLACING.match(line)):
            replacing.append({
                "delegate": _delegate_name(m.group("kernel")), "kernel": m.group("kernel"),
                "nodes_delegated": int(m.group("n")), "nodes_total": int(m.group("m")),
                "partitions": int(m.group("parts")),
            })
            continue
        if (m := _GPU_CREATED_KERNELS.match(line)):
            gpu_kernels_created = int(m.group("n"))
            continue
        if (m := _UNSUPPORTED_HEAD.match(line)):
            in_unsupported = True
            continue
        if (m := _CREATED.match(line)):
            name = m.group("a") or m.group("b") or m.group("c")
            if m.group("a"):  # "Created TensorFlow Lite XNNPACK delegate for CPU."
                name = m.group("a")
            created.append(_delegate_name(name))
            continue
        if (m := _PARAM.match(line)):
            key, value = m.group("key").strip(), m.group("value")
            params[key] = value
            low = key.lower().replace(" ", "")
            if low.startswith("use") and value.strip() in ("1", "true"):
                name = _delegate_name(low[3:])
                if name in _ACCELERATORS:  # not "Use caching", "Use dynamic tensor ...", ...
                    requested.append(name)
            continue
        if level in ("ERROR", "FATAL"):
            errors.append(line)
            if _FATAL.search(line):
                fatal = True
            continue
        if level == "WARNING" or line.startswith("Duplicate flags") or line.startswith("Unconsumed"):
            warnings.append(line)
            continue
        if level is None and _FATAL.search(line):  # unprefixed shell/loader messages: crash, not found, ...
            errors.append(line)
            fatal = True

    # --- steady-state and warmup statistics -------------------------------------------------
    warm: dict[str, float] | None = None
    regular: dict[str, float] | None = None
    notes: list[str] = []
    if phase_markers:
        for marker, d in stats:
            if marker == 1 and warm is None:
                warm = d
            elif marker >= 2:
                regular = d
        if phase_markers == 1 and stats and summary is not None and warm is not None:
            # TF1-era logs print one marker per phase only sometimes; trust the summary to tell.
            if summary.get("avg") is not None and warm.get("avg") == summary["avg"]:
                regular, warm = warm, None
    elif len(stats) >= 2:
        warm, regular = stats[-2][1], stats[-1][1]
    elif len(stats) == 1:
        only = stats[0][1]
        if summary is not None and summary.get("avg") is not None and only.get("avg") == summary["avg"]:
            regular = only
        elif summary is not None and summary.get("warmup") is not None and (
            only.get("avg") == summary["warmup"] or only.get("curr") == summary["warmup"]
        ):
            warm = only
        else:
            notes.append("one statistics line without phase markers: not attributed to warmup or steady state")

    def first_of(d: dict[str, float] | None) -> float | None:
        if d is None:
            return None
        if "first" in d:
            return d["first"]
        return d.get("curr") if d.get("count") == 1 else None

    def avg_of(d: dict[str, float] | None) -> float | None:
        if d is None:
            return None
        if "avg" in d:
            return d["avg"]
        return d.get("curr") if d.get("count") == 1 else None

    init_us = summary.get("init") if summary else None
    init_ms = _ms(init_us) if init_us is not None else session_ms
    first_us = summary.get("first") if summary and summary.get("first") is not None else first_of(warm)
    warm_us = summary.get("warmup") if summary and summary.get("warmup") is not None else avg_of(warm)
    avg_us = summary.get("avg") if summary and summary.get("avg") is not None else avg_of(regular)

    # --- delegation ----------------------------------------------------------------------------
    delegate = None
    delegation = "none"
    kernels: int | None = None
    source = None
    explicit = [s for s in status_lines if s[0] != "xnnpack"] or status_lines
    accel = [r for r in requested if r != "xnnpack"]
    if explicit:
        # the accelerator the user asked for decides; XNNPACK is the CPU path
        worst = {"failed": 0, "none": 1, "partial": 2, "full": 3}
        name, how, k = min(explicit, key=lambda s: worst[s[1]])
        delegate, delegation, kernels, source = name, how, k, "status line"
        if how == "full" and kernels is None:
            kernels = gpu_kernels_created if name == "gpu" and gpu_kernels_created else 1
    elif replacing and (not accel or any(r["delegate"] in accel for r in replacing)):
        # no status line (e.g. XNNPACK applied by default): the node-replacement line tells
        rep = [r for r in replacing if not accel or r["delegate"] in accel][-1]
        delegate = rep["delegate"]
        delegation = "full" if rep["nodes_delegated"] == rep["nodes_total"] else "partial"
        kernels, source = rep["partitions"], "replacing line"
    elif requested:
        delegate = accel[-1] if accel else requested[-1]
        if fatal:
            delegation = "failed"
            source = "flags + failure"
        else:
            delegation = None  # requested, but the log does not say what happened: not guessed
            source = "flags only"
            notes.append(f"{delegate} was requested but the log does not say whether it ran the graph")
    elif type_counts:
        delegate_types = {t: c for t, c in type_counts.items() if t.lower() in _KERNEL_DELEGATE}
        if delegate_types:
            t = max(delegate_types, key=delegate_types.get)
            delegate = _KERNEL_DELEGATE[t.lower()]
            kernels = delegate_types[t]
            other = sum(c for tt, c in type_counts.items() if tt not in delegate_types)
            delegation = "partial" if other else "full"
            source = "op profiling table"
    elif created:
        delegate = created[-1]
        delegation = None
        source = "created line only"

    # --- status ----------------------------------------------------------------------------------
    if summary is not None:
        status = "ok"
    elif fatal:
        status = "failed"
    else:
        status = "incomplete"
        if not text_seen:
            errors.append("no benchmark_model output")
        elif started or stats or profile:
            notes.append("no 'Inference timings' summary line: the run did not finish or the log was cut")
        else:
            notes.append("no benchmark_model summary found in this text")

    if profile:
        prof_out: dict[str, Any] = {}
        if "init" in profile:
            prof_out["init_total_ms"] = _ms(profile["init"].get("curr") or profile["init"].get("avg"))
        if "runs" in profile:
            r = profile["runs"]
            prof_out.update(runs=int(r["count"]) if "count" in r else None, avg_ms=_ms(r.get("avg")),
                            std_ms=_ms(r.get("std")), min_ms=_ms(r.get("min")), max_ms=_ms(r.get("max")))
        prof_out["note"] = "sums of per-op times from --enable_op_profiling, not wall-clock inference figures"
    else:
        prof_out = None

    fell_back = bool(
        delegate not in (None, "xnnpack")
        and (delegation == "none" or (delegation == "failed" and status == "ok"))
    )
    out: dict[str, Any] = {
        "status": status,
        "init_ms": init_ms,
        "first_inference_ms": _ms(first_us),
        "warmup_avg_ms": _ms(warm_us),
        "inference_avg_ms": _ms(avg_us),
        "inference_std_ms": _ms(regular.get("std")) if regular else None,
        "inference_min_ms": _ms(regular.get("min")) if regular else None,
        "inference_max_ms": _ms(regular.get("max")) if regular else None,
        "runs": int(regular["count"]) if regular else None,
        "peak_memory_mb": mem_peak if mem_peak is not None else mem_overall,
        "delegate": delegate,
        "delegation": delegation,
        "delegate_kernels": kernels,
        "unsupported_ops": unsupported,
        "errors": errors,
        # extras
        "inference_p5_ms": _ms(regular.get("p5")) if regular else None,
        "inference_median_ms": _ms(regular.get("median")) if regular else None,
        "inference_p95_ms": _ms(regular.get("p95")) if regular else None,
        "warmup_runs": int(warm["count"]) if warm else None,
        "memory_init_mb": mem_init,
        "memory_overall_mb": mem_overall,
        "memory_peak_monitored_mb": mem_peak,
        "model_size_mb": model_size_mb,
        "threads": int(params["Num threads"]) if params.get("Num threads", "").isdigit() else None,
        "graph": params.get("Graph"),
        "delegates_requested": sorted(set(requested)),
        "delegation_source": source,
        "delegate_nodes": replacing or None,
        "unsupported_split": unsupported_split,
        "fell_back_to_cpu": fell_back,
        "op_profile": prof_out,
        "warnings": warnings,
        "notes": notes,
    }
    return out


def parse_log_file(path: str | Path) -> dict[str, Any]:
    """Read and parse one log file; an unreadable file is an InputError naming it."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read benchmark log {p}: {exc.strerror or exc}") from None
    return parse_benchmark_log(text)
