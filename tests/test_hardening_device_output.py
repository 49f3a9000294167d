"""Class 7: adb and device output that is not UTF-8 (vendor props, thermal zone names, binary garbage
from benchmark_model, a mangled `adb version`) never gives a traceback. Every byte from adb is decoded
defensively (android_bench.adb.decode: U+FFFD for what is not UTF-8); the raw log keeps the exact
bytes; the reports stay strict JSON. Driven through the fake adb (tests/fakes/adb) and a wrapper
around the fake benchmark_model that prints invalid UTF-8."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oace.android_bench.adb import Device, adb_version, decode, find_adb, list_devices
from tests.cli_contract import assert_refused, run_oace
from fakes.adb_double import install_fake_adb, s23
from fakes.tiny_tflite import build_tiny_bundle

FAKE_BENCH = Path(__file__).resolve().parent / "fakes" / "benchmark_model"
GARBAGE = b"\xff\xfe vendor blob \xc3\x28 \xe2\x82 truncated \x80\x81\n"
SERIAL = "R5CW12345"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_bundle(tmp_path_factory.mktemp("tiny"))


def garbled_device(**extra) -> dict:
    dev = s23(**extra)
    dev["props"]["ro.product.model"] = "SM-S911B\udcff\udcfe"  # raw bytes 0xff 0xfe on the fake device
    dev["props"]["ro.build.fingerprint"] = "samsung/\udcc3(/\udc80"
    dev["thermal"] = {"cpu-0-0\udcff": 41500, "battery": 31000}
    return dev


def garbled_benchmark(tmp_path: Path) -> Path:
    """The fake benchmark_model with invalid UTF-8 before, inside and after its output."""
    wrapper = tmp_path / "benchmark_model"
    wrapper.write_bytes(
        b"#!/bin/sh\nprintf '\\377\\376 vendor blob \\303\\050\\n'\ntmp=$(mktemp)\n"
        + f'"{FAKE_BENCH}" "$@" > "$tmp"\n'.encode()
        + b"status=$?\nsed 's/^INFO: Loaded model/INFO: \\xc3\\x28 Loaded model/' \"$tmp\"\nrm -f \"$tmp\"\n"
        + b"printf 'trailing \\342\\202\\n'\nexit $status\n"
    )
    wrapper.chmod(0o755)
    return wrapper


def test_decode_never_raises_and_marks_what_is_not_utf8():
    assert decode(GARBAGE).startswith("\ufffd\ufffd vendor blob \ufffd(")
    assert decode(None) == "" and decode("text") == "text" and decode("é".encode()) == "é"


def test_non_utf8_props_listing_and_adb_version_are_read(tmp_path, monkeypatch):
    home = install_fake_adb(tmp_path, monkeypatch, [garbled_device()])
    cfg = json.loads((home / "devices.json").read_text())
    cfg["version_bytes"] = "Android Debug Bridge version 1.0.41\nVersion \xff\xfe-vendor\n"
    (home / "devices.json").write_text(json.dumps(cfg))
    adb = find_adb()
    assert adb_version(adb) == "Android Debug Bridge version 1.0.41 / Version \ufffd\ufffd-vendor"
    assert [e.serial for e in list_devices(adb)] == [SERIAL]
    facts = Device(adb, SERIAL).facts()
    assert facts["model"] == "SM-S911B\ufffd\ufffd" and facts["soc"] == "SM8550"
    temps = Device(adb, SERIAL).temperatures()
    assert temps["thermal_max_zone"] == "cpu-0-0\ufffd" and temps["thermal_max_c"] == 41.5


@pytest.mark.slow
def test_device_bench_with_garbled_output_gives_figures_and_strict_reports(tmp_path, monkeypatch, tiny_model):
    install_fake_adb(tmp_path, monkeypatch, [garbled_device()])
    model = tmp_path / "oace_segmenter_int8.tflite"
    model.write_bytes(tiny_model.read_bytes())
    out = tmp_path / "out"
    res = run_oace(
        ["bench", "device", model, "--serial", "auto", "--benchmark-binary", garbled_benchmark(tmp_path),
         "--threads", "4", "--repeats", "1", "--cooldown", "0", "--runs", "20", "--warmup", "2", "--profile", "Galaxy S23",
         "--out", out], timeout=240)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr[-3000:]
    assert res.stderr_lines == [] and res.peak_rss_mb < 3000 and res.seconds < 200
    rep = json.loads((out / "bench.json").read_text(), parse_constant=lambda t: pytest.fail(f"non-JSON {t}"))
    run = rep["configurations"][0]["repeats"][0]
    assert rep["status"] == "ok" and run["status"] == "ok"
    assert run["inference_avg_ms"] == pytest.approx(30.0) and run["init_ms"] == pytest.approx(12.5)  # 120000/4 us
    assert rep["device"]["model"] == "SM-S911B\ufffd\ufffd"
    raw = Path(run["raw_log"]).read_bytes()
    assert raw.startswith(b"\xff\xfe vendor blob \xc3(\n") and b"\xe2\x82\n" in raw  # exact bytes kept
    assert b"INFO: \xc3( Loaded model" in raw
    assert "\ufffd" in (out / "bench.md").read_text()


@pytest.mark.slow
def test_a_crash_amid_garbage_is_one_line_exit_2(tmp_path, monkeypatch, tiny_model):
    install_fake_adb(tmp_path, monkeypatch, [garbled_device()])
    monkeypatch.setenv("FAKE_BENCH_CRASH", "1")
    model = tmp_path / "m.tflite"
    model.write_bytes(tiny_model.read_bytes())
    out = tmp_path / "out"
    res = run_oace(
        ["bench", "device", model, "--serial", SERIAL, "--benchmark-binary", garbled_benchmark(tmp_path),
         "--threads", "4", "--repeats", "1", "--cooldown", "0", "--out", out], timeout=240)
    line = assert_refused(res, SERIAL, "Segmentation fault", max_seconds=200)
    assert "bench.json" in line
    rep = json.loads((out / "bench.json").read_text())
    assert rep["status"] == "failed"


def test_adb_output_keeps_its_head_and_tail_within_the_limit():
    import resource

    from oace.android_bench.adb import _run

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = _run(["sh", "-c", "head -c 200000000 /dev/zero; echo; echo 'INFO: the summary'; echo done >&2"],
               120, "a flood", limit=1 << 20)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert res.returncode == 0 and res.stderr == b"done\n"
    assert len(res.stdout) < (1 << 20) + (1 << 16) + 200 and res.stdout.endswith(b"\nINFO: the summary\n")
    assert b"bytes of output dropped here (over 1048576 bytes)]" in res.stdout
    assert grown_mb < 100, grown_mb  # 200 MB went through


@pytest.mark.slow
def test_a_benchmark_flooding_its_output_still_gives_its_figures(tmp_path, monkeypatch, tiny_model):
    from oace.android_bench.adb import MAX_OUTPUT_BYTES

    install_fake_adb(tmp_path, monkeypatch, [s23()])
    flood = MAX_OUTPUT_BYTES + (8 << 20)
    wrapper = tmp_path / "benchmark_model"
    wrapper.write_text(f'#!/bin/sh\nyes "VERBOSE: vendor driver chatter" | head -c {flood}\n"{FAKE_BENCH}" "$@"\n')
    wrapper.chmod(0o755)
    model = tmp_path / "m.tflite"
    model.write_bytes(tiny_model.read_bytes())
    out = tmp_path / "out"
    res = run_oace(
        ["bench", "device", model, "--serial", SERIAL, "--benchmark-binary", wrapper, "--threads", "4",
         "--repeats", "1", "--cooldown", "0", "--out", out], timeout=300)
    assert res.returncode == 0 and res.stderr_lines == [], res.stderr[-2000:]
    assert res.peak_rss_mb < 2000 and res.seconds < 240, (res.peak_rss_mb, res.seconds)
    run = json.loads((out / "bench.json").read_text())["configurations"][0]["repeats"][0]
    assert run["status"] == "ok" and run["inference_avg_ms"] == pytest.approx(30.0)
    raw = Path(run["raw_log"])
    assert raw.stat().st_size <= MAX_OUTPUT_BYTES + (1 << 16) + 200 and b"bytes of output dropped here" in raw.read_bytes()
