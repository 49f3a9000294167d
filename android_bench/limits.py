"""The bench's explicit limits: argument ranges (checked in the function layer, so the Python API
refuses what the CLI refuses) and strict JSON (RFC 8259: no NaN / Infinity) for everything written.

Each refusal is an InputError naming the flag (the Python arguments have the same names).
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable

from oace.errors import InputError

MAX_THREADS = 64  # more threads than any phone or CI host has cores; 100000 stalled for minutes
MAX_WARMUP = 10_000
MAX_RUNS = 100_000
MAX_REPEATS = 100
MAX_COOLDOWN_S = 3600.0
MAX_TIMEOUT_S = 86_400.0


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_count(flag: str, value: Any, lo: int, hi: int) -> int:
    """An integer in lo..hi, else InputError naming `flag`."""
    if not _is_int(value) or not lo <= value <= hi:
        raise InputError(f"{flag} {value!r} is out of range: give an integer in {lo}..{hi}")
    return value


def check_threads(threads: Iterable[Any]) -> list[int]:
    """Every thread count an integer in 1..MAX_THREADS, at least one."""
    out = list(threads)
    if not out:
        raise InputError("--threads is empty: give thread counts in 1..%d" % MAX_THREADS)
    for t in out:
        if not _is_int(t) or not 1 <= t <= MAX_THREADS:
            raise InputError(f"--threads {t!r} is out of range: give thread counts in 1..{MAX_THREADS}")
    return out


def check_seconds(flag: str, value: Any, *, hi: float, allow_zero: bool = True, optional: bool = False) -> float | None:
    """A finite number of seconds/milliseconds in [0 or >0 .. hi]; None passes when optional."""
    if value is None and optional:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value >= 0 if allow_zero else value > 0) and value <= hi
    if not ok:
        low = ">= 0" if allow_zero else "> 0"
        raise InputError(f"{flag} {value!r} is not a finite number {low} and <= {hi:g}")
    return float(value)


def check_run_counts(*, threads: Iterable[Any], warmup: Any, runs: Any, repeats: Any = None) -> list[int]:
    """The counts every bench takes; returns the thread counts as a list."""
    check_count("--warmup", warmup, 0, MAX_WARMUP)
    check_count("--runs", runs, 1, MAX_RUNS)
    if repeats is not None:
        check_count("--repeats", repeats, 1, MAX_REPEATS)
    return check_threads(threads)


def check_targets(target_load_ms: Any, target_inference_ms: Any, preprocess_ms: Any) -> None:
    """Targets are finite and > 0 (a negative or NaN target would still give a verdict); the app's
    preprocessing time is finite and >= 0."""
    check_seconds("--target-load-ms", target_load_ms, hi=1e9, allow_zero=False, optional=True)
    check_seconds("--target-inference-ms", target_inference_ms, hi=1e9, allow_zero=False, optional=True)
    check_seconds("--preprocess-ms", preprocess_ms, hi=1e9, optional=True)


# --- strict JSON -----------------------------------------------------------------------------------
def finite_json(obj: Any, path: str = "$") -> tuple[Any, list[str]]:
    """A copy of obj where every non-finite float is None, and the paths of the values replaced."""
    if isinstance(obj, float):
        return (obj, []) if math.isfinite(obj) else (None, [path])
    if isinstance(obj, dict):
        out, bad = {}, []
        for k, v in obj.items():
            out[k], b = finite_json(v, f"{path}.{k}")
            bad += b
        return out, bad
    if isinstance(obj, (list, tuple)):
        items = [finite_json(v, f"{path}[{i}]") for i, v in enumerate(obj)]
        return [v for v, _ in items], [p for _, b in items for p in b]
    if hasattr(obj, "item") and hasattr(obj, "dtype"):  # numpy scalars
        return finite_json(obj.item(), path)
    return obj, []


def strict_json(obj: Any) -> tuple[Any, list[str]]:
    """finite_json, with the replaced paths recorded as `non_finite_fields` when obj is a dict."""
    clean, bad = finite_json(obj)
    if isinstance(clean, dict):
        clean["non_finite_fields"] = bad
    return clean, bad


def dumps_strict(obj: Any, **kwargs: Any) -> str:
    """RFC 8259 JSON text: non-finite numbers become null (listed in `non_finite_fields`)."""
    clean, _ = strict_json(obj)
    return json.dumps(clean, allow_nan=False, **kwargs)
