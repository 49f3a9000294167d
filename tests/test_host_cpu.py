"""android_bench.host_cpu: what the CPU is and whether it has int8 dot-product instructions."""

from __future__ import annotations

import pytest

from oace.android_bench import host_cpu

# flags as py-cpuinfo reports them on three real kinds of machine (trimmed)
AVX2_EPYC = {"brand_raw": "AMD EPYC", "arch": "X86_64", "hz_advertised_friendly": "2.4454 GHz",
             "flags": ["avx", "avx2", "fma", "sse4_2", "sha_ni", "vaes"]}
SAPPHIRE_RAPIDS = {"brand_raw": "Intel(R) Xeon(R) Platinum 8480+", "arch": "X86_64",
                   "flags": ["avx2", "avx512f", "avx512bw", "avx512_vnni", "avx512vnni", "amx_int8", "amx_tile", "fma"]}
CORTEX_X3 = {"brand_raw": "", "arch": "ARM_8", "flags": ["asimd", "asimddp", "i8mm", "sve2"]}
NO_FLAGS = {"brand_raw": "Apple M2", "arch": "ARM_8", "flags": []}


@pytest.mark.parametrize("info,dot,isa,note", [
    (AVX2_EPYC, False, [], True),
    (SAPPHIRE_RAPIDS, True, ["amx_int8", "avx512_vnni"], False),
    (CORTEX_X3, True, ["asimddp", "i8mm"], False),
    (NO_FLAGS, None, [], False),
])
def test_int8_dot_product_is_read_from_the_flags(monkeypatch, info, dot, isa, note):
    import cpuinfo

    monkeypatch.setattr(cpuinfo, "get_cpu_info", lambda: info)
    facts = host_cpu.cpu_facts()
    assert facts["int8_dot_product"] is dot
    assert facts["int8_dot_product_isa"] == isa  # both spellings of VNNI collapse into one name
    assert facts["cpu"] == (info["brand_raw"] or facts["cpu"]) and facts["cores"] >= 1
    text = host_cpu.int8_note(facts)
    assert (text is not None) is note
    if note:
        assert text.startswith("THIS CPU HAS NO INT8 DOT-PRODUCT INSTRUCTIONS (AMD EPYC")


def test_vector_isa_lists_only_the_extensions_that_pick_kernels(monkeypatch):
    import cpuinfo

    monkeypatch.setattr(cpuinfo, "get_cpu_info", lambda: SAPPHIRE_RAPIDS)
    assert host_cpu.cpu_facts()["vector_isa"] == ["avx2", "fma", "avx512f", "avx512bw", "amx_tile"]


def test_this_machine_is_described():
    facts = host_cpu.cpu_facts()
    assert facts["cores"] >= 1 and facts["machine"]
    assert facts["int8_dot_product"] in (True, False, None)
    assert set(facts["int8_dot_product_isa"]) <= {"avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "dotprod", "i8mm"}
