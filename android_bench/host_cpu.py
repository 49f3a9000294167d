"""What this computer's CPU is, and whether it has int8 dot-product instructions (py-cpuinfo).

Whether int8 beats fp32 on a CPU depends on one thing more than any other: an instruction that
multiplies and sums int8 values in one step. x86 has it as AVX512-VNNI, AVX-VNNI or AMX, ARM as
the dot-product extension (asimddp) and i8mm. Without it (an AVX2-only x86 such as an AMD EPYC
Zen 3), XNNPACK's int8 convolutions run about as fast as its fp32 ones (measured:
android_bench/kernel_floor.py), so host figures of an int8 bundle say nothing about a phone, whose
ARM cores all have the dot product since Armv8.4 (Galaxy S23, Pixel 8).
"""

from __future__ import annotations

import os
import platform
from typing import Any

# flag names as Linux (/proc/cpuinfo) and py-cpuinfo's CPUID reader spell them
INT8_DOT_PRODUCT_FLAGS = ("avx512_vnni", "avx512vnni", "avx_vnni", "avxvnni", "amx_int8", "asimddp", "dotprod", "i8mm")
_SAME_FLAG = {"avx512vnni": "avx512_vnni", "avxvnni": "avx_vnni"}  # CPUID spelling -> Linux spelling
# the vector extensions that decide which XNNPACK kernels run, reported for context
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_bf16", "amx_tile", "asimd", "neon", "sve", "sve2")


def int8_dot_product(flags: set[str]) -> bool | None:
    """True/False when the flags answer it; None when the CPU reports no flags (e.g. macOS on ARM)."""
    if set(INT8_DOT_PRODUCT_FLAGS) & flags:
        return True
    return False if flags else None


def cpu_facts() -> dict[str, Any]:
    """{cpu, arch, machine, system, cores, hz, vector_isa, int8_dot_product_isa, int8_dot_product}."""
    import cpuinfo

    info = cpuinfo.get_cpu_info()
    flags = {str(f).lower() for f in info.get("flags", [])}
    arch = str(info.get("arch") or platform.machine())
    return {
        "cpu": info.get("brand_raw") or platform.processor() or None,
        "arch": arch,
        "machine": platform.machine(),
        "system": platform.system(),
        "cores": os.cpu_count(),
        "hz": info.get("hz_advertised_friendly") or None,
        "vector_isa": [f for f in VECTOR_FLAGS if f in flags],
        "int8_dot_product_isa": sorted({_SAME_FLAG.get(f, f) for f in INT8_DOT_PRODUCT_FLAGS if f in flags}),
        "int8_dot_product": int8_dot_product(flags),
    }


def dot_product_text(facts: dict[str, Any]) -> str:
    """The int8 dot-product instructions for a report line: their names, 'none', or 'unknown'."""
    return ", ".join(facts.get("int8_dot_product_isa") or []) or (
        "none" if facts.get("int8_dot_product") is False else "unknown")


def int8_note(facts: dict[str, Any]) -> str | None:
    """A loud line for reports when this host cannot show what int8 buys; None when it can or we cannot tell."""
    if facts.get("int8_dot_product") is False:
        return (f"THIS CPU HAS NO INT8 DOT-PRODUCT INSTRUCTIONS ({facts.get('cpu')}: no VNNI/AMX/asimddp): "
                "int8 kernels run at about fp32 speed here, so host int8 latency says nothing about a phone")
    return None
