"""Device discovery over adb: the fake adb first on PATH for every state, the real adb for 'no device'."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from oace.android_bench.adb import AdbError, Device, find_adb, list_devices, select_device
from oace.cli import main

from fakes.adb_double import S23_PROPS, calls, install_fake_adb, s23


def test_missing_adb_is_a_one_line_install_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("ADB", raising=False)
    with pytest.raises(AdbError, match=r"adb not found .*install the Debian package `adb`"):
        find_adb()


def test_no_device(tmp_path, monkeypatch):
    install_fake_adb(tmp_path, monkeypatch, [])
    with pytest.raises(AdbError, match="no Android device found"):
        select_device(find_adb(), "auto")


@pytest.mark.parametrize("state,message", [
    ("unauthorized", "is unauthorized: unlock the phone and accept the 'Allow USB debugging' prompt"),
    ("offline", "is offline: reconnect the cable"),
])
def test_unusable_device_states_are_named(tmp_path, monkeypatch, state, message):
    install_fake_adb(tmp_path, monkeypatch, [{"serial": "ABC123", "state": state}])
    with pytest.raises(AdbError, match=f"device ABC123 {message}"):
        select_device(find_adb(), "auto")
    with pytest.raises(AdbError, match=f"device ABC123 {message}"):
        select_device(find_adb(), "ABC123")


def test_several_devices_need_a_serial(tmp_path, monkeypatch):
    install_fake_adb(tmp_path, monkeypatch, [s23("AAA"), s23("BBB")])
    adb = find_adb()
    with pytest.raises(AdbError, match=r"several devices are connected \(AAA \(device\), BBB \(device\)\): pass --serial SERIAL"):
        select_device(adb, "auto")
    assert select_device(adb, "BBB") == "BBB"
    with pytest.raises(AdbError, match=r"device CCC is not connected \(adb devices lists: AAA \(device\), BBB \(device\)\)"):
        select_device(adb, "CCC")


def test_devices_listing_parses_states_and_attributes(tmp_path, monkeypatch):
    install_fake_adb(tmp_path, monkeypatch, [s23("AAA"), {"serial": "emulator-5554", "state": "offline"}])
    entries = list_devices(find_adb())
    assert [(e.serial, e.state) for e in entries] == [("AAA", "device"), ("emulator-5554", "offline")]
    assert entries[0].attrs["model"] == "SM-S911B"


def test_device_facts_from_getprop_and_sysfs(tmp_path, monkeypatch):
    home = install_fake_adb(tmp_path, monkeypatch, [s23()])
    dev = Device(find_adb(), "R5CW12345")
    facts = dev.facts()
    assert (facts["model"], facts["soc"], facts["soc_source"]) == ("SM-S911B", "SM8550", "ro.soc.model")
    assert (facts["android_version"], facts["sdk"], facts["abi"]) == ("14", "34", "arm64-v8a")
    cpu = facts["cpu"]
    assert cpu["cores"] == 8 and cpu["big_cores"] == [3, 4, 5, 6, 7] and cpu["big_core_mask"] == "f8"
    assert cpu["clusters"] == [{"cpus": [0, 1, 2], "max_mhz": 2016.0}, {"cpus": [3, 4, 5, 6], "max_mhz": 2803.2},
                               {"cpus": [7], "max_mhz": 3360.0}]
    temps = dev.temperatures()
    assert temps == {"battery_c": 31.2, "thermal_max_c": 41.5, "thermal_max_zone": "cpu-0-0"}
    assert calls(home)[0] == ["-s", "R5CW12345", "shell", "getprop"]


def test_soc_falls_back_to_board_platform(tmp_path, monkeypatch):
    props = {k: v for k, v in S23_PROPS.items() if k != "ro.soc.model"}
    install_fake_adb(tmp_path, monkeypatch, [{"serial": "OLD", "state": "device", "props": props}])
    facts = Device(find_adb(), "OLD").facts()
    assert (facts["soc"], facts["soc_source"]) == ("kalama", "ro.board.platform")
    assert facts["cpu"]["cores"] is None  # no cpufreq files: not guessed


def test_push_only_when_remote_size_or_hash_differs_and_paths_are_quoted(tmp_path, monkeypatch):
    home = install_fake_adb(tmp_path, monkeypatch, [s23()])
    dev = Device(find_adb(), "R5CW12345")
    local = tmp_path / "my model.tflite"
    local.write_bytes(b"x" * 100)
    remote = "/data/local/tmp/my model.tflite"
    assert dev.push_if_changed(local, remote) is True
    assert (home / "R5CW12345/data/local/tmp/my model.tflite").read_bytes() == b"x" * 100
    assert dev.push_if_changed(local, remote) is False
    local.write_bytes(b"y" * 100)  # same size, other content
    assert dev.push_if_changed(local, remote) is True
    log = calls(home)
    assert log[0] == ["-s", "R5CW12345", "shell",
                      "stat -c %s '/data/local/tmp/my model.tflite' 2>/dev/null && "
                      "sha256sum '/data/local/tmp/my model.tflite' 2>/dev/null"]
    assert log[1] == ["-s", "R5CW12345", "push", str(local), remote]
    assert [c[2] for c in log] == ["shell", "push", "shell", "shell", "push"]


@pytest.mark.skipif(shutil.which("adb") is None and not Path("/usr/bin/adb").exists(),
                    reason="the real adb is not installed here (CI installs the Debian package)")
def test_real_adb_reports_no_device(monkeypatch, tmp_path, capsys):
    real = shutil.which("adb") or "/usr/bin/adb"
    with socket.socket() as s:  # a private adb server port, so no other adb server is touched
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(port))
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    binary = tmp_path / "android_aarch64_benchmark_model"
    binary.write_bytes(b"\x7fELF")
    try:
        with pytest.raises(AdbError, match="no Android device found"):
            select_device(find_adb(real), "auto", timeout=60)
        assert main(["bench", "device", str(model), "--benchmark-binary", str(binary), "--adb", real,
                     "--out", str(tmp_path / "out")]) == 2
        assert capsys.readouterr().err.startswith("oace bench: error: no Android device found")
    finally:
        subprocess.run([real, "kill-server"], capture_output=True, timeout=30, check=False)
