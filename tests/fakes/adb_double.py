"""Helpers that put the fake `adb` (tests/fakes/adb) first on PATH and read back what it was asked."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

FAKES = Path(__file__).resolve().parent

S23_PROPS = {
    "ro.product.model": "SM-S911B",
    "ro.product.manufacturer": "samsung",
    "ro.soc.model": "SM8550",
    "ro.board.platform": "kalama",
    "ro.build.version.release": "14",
    "ro.build.version.sdk": "34",
    "ro.product.cpu.abi": "arm64-v8a",
}


def install_fake_adb(tmp_path: Path, monkeypatch, devices: list[dict]) -> Path:
    """Put a fake `adb` first on PATH, emulating `devices`; return its state directory."""
    home = tmp_path / "fake_adb_home"
    home.mkdir()
    (home / "devices.json").write_text(json.dumps({"devices": devices}))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "adb"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKES / "adb"}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_HOME", str(home))
    monkeypatch.delenv("ADB", raising=False)
    return home


def calls(home: Path) -> list[list[str]]:
    p = home / "calls.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []


def s23(serial: str = "R5CW12345", **extra) -> dict:
    return {"serial": serial, "state": "device", "props": dict(S23_PROPS),
            "cpu_max_khz": [2016000] * 3 + [2803200] * 4 + [3360000], "battery_tenths_c": 312,
            "thermal": {"cpu-0-0": 41500, "battery": 31000}, **extra}
