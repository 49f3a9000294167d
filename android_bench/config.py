"""The options of the host and the device benchmarks, with their defaults (the CLI reads them here).

Plain data: the bench checks them when it starts (android_bench/limits.py), so the Python API
refuses what the CLI refuses. Kept free of heavy imports: the CLI builds its parser from them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    """What both benchmarks take."""

    warmup: int = 5
    out: str | os.PathLike = "runs/bench"
    profile: str | None = None
    target_load_ms: float | None = None
    target_inference_ms: float | None = None
    preprocess_ms: float | None = None
    progress: bool = True


@dataclass(frozen=True, kw_only=True)
class HostBenchConfig(BenchConfig):
    """kernel_floor: also measure this CPU's int8 and fp32 convolution floor at the same thread counts."""

    threads: Sequence[int] = (1, 2)
    runs: int = 30
    seed: int = 0
    kernel_floor: bool = False


@dataclass(frozen=True, kw_only=True)
class DeviceBenchConfig(BenchConfig):
    """serial: the phone's adb serial, "auto" (or None) for the only one connected; threads / delegates: a
    sequence or a comma-separated string; cpu_mask: a hex taskset mask or "big" (every core outside the
    slowest cluster), None for the profile's."""

    benchmark_binary: str | os.PathLike
    serial: str | None = "auto"
    threads: Sequence[int] | str = (4,)
    delegates: Sequence[str] | str = ("cpu",)
    runs: int = 50
    repeats: int = 3
    cooldown: float = 10.0
    cpu_mask: str | None = None
    timeout: float = 300.0
    remote_dir: str = "/data/local/tmp"
    extra_args: Sequence[str] = ()
    adb: str | None = None
