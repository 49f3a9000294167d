"""Packaging (issue 13): the distribution installs one import name, `oace`, with the stage folders
under it (oace.model, oace.export, ...), their data files included, and nothing else at the top."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("oace", "model", "export", "quantize", "android_bench", "calibration_data")


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg


def _lines(value: str) -> list[str]:
    return [x.strip() for x in value.splitlines() if x.strip() and not x.strip().startswith("#")]


def _installed_name(folder: Path) -> str:
    parts = folder.relative_to(ROOT).parts
    return ".".join(parts if parts[0] == "oace" else ("oace", *parts))


def test_setup_cfg_lists_every_package_folder_under_oace():
    on_disk = {_installed_name(init.parent) for top in FOLDERS for init in (ROOT / top).rglob("__init__.py")
               if "__pycache__" not in init.parts}
    listed = set(_lines(_setup_cfg()["options"]["packages"]))
    assert listed == on_disk, f"setup.cfg [options] packages: missing {sorted(on_disk - listed)}, extra {sorted(listed - on_disk)}"
    mapping = dict(x.split(" = ") for x in _lines(_setup_cfg()["options"]["package_dir"]))
    assert mapping == {f"oace.{f}": f for f in FOLDERS if f != "oace"}


def test_the_wheel_adds_only_oace_with_its_data_files(tmp_path):
    """Build the wheel as `pip install .` does (from a copy: setuptools writes build/ into the source
    tree) and read what it would put into site-packages."""
    src = tmp_path / "src"
    src.mkdir()
    for name in (*FOLDERS, "setup.cfg", "pyproject.toml", "README.md"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree else {}))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(src)], check=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("oace_toolkit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"oace"}
    for expected in ("oace/model/segmenter.py", "oace/export/float_bundle.py", "oace/quantize/int8.py", "oace/pipeline.py",
                     "oace/tflite/passes.py", "oace/android_bench/parse.py", "oace/calibration_data/coco128_manifest.json",
                     "oace/model/weights/oace_reference_v2_fp16.pt", "oace/commands/bench.py"):
        assert expected in names, f"{expected} missing from {wheel.name}"
    top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["oace"]
