"""Issue 15, class 4: `--out` that cannot be written is refused before any work, by every verb, on one
line naming the flag and the path; a disk that fills up mid-run gives one line and leaves nothing at a
final path.

Read-only and full filesystems are small tmpfs mounts where this user may mount (root); elsewhere a
read-only system folder and a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored, so a write fails with
EFBIG instead of killing the process) stand in for them.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.cli_contract import assert_refused, final_paths, run_oace
from conftest import write_salient_set

LONG_NAME = "x" * 300  # over every common filesystem's 255-byte name limit


def _verb_args(verb: str, out: Path, tmp: Path) -> list[str]:
    """The cheapest command line of each verb that reaches its output check; quantize's --out is a file."""
    return {
        "eval": ["eval", "--checkpoint", tmp / "model.pt", "--dataset", "salient", "--data-root", tmp / "data", "--out", out],
        "export": ["export", "--preset", "segmenter_tiny", "--out", out],
        "quantize": ["quantize", "--saved-model", tmp / "saved_model", "--out", out / "model_int8.tflite"],
        "train": ["train", "prior", "--data", f"salient:{tmp / 'data'}", "--out", out],
        "demo": ["demo", "--preset", "segmenter_tiny", "--no-export", "--out", out],
        "bench": ["bench", "host", tmp / "model.tflite", "--out", out],
    }[verb]


VERBS = ("eval", "export", "quantize", "train", "demo", "bench")


@dataclasses.dataclass
class Disk:
    root: Path
    env: dict[str, str]


def _mount(target: Path, options: str) -> bool:
    target.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True)
    return res.returncode == 0


def _umount(target: Path) -> None:
    subprocess.run(["umount", str(target)], capture_output=True)


def _fsize_env(tmp: Path, limit: int) -> dict[str, str]:
    """A sitecustomize that caps file sizes in the child (the no-root stand-in for a full disk)."""
    shim = tmp / "fsize_shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(
        "import resource, signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
    )
    repo = Path(__file__).resolve().parents[1]
    return {"PYTHONPATH": f"{shim}{os.pathsep}{repo}", "PYTHONDONTWRITEBYTECODE": "1"}


@pytest.fixture
def readonly_dir(tmp_path):
    root = tmp_path / "ro"
    if _mount(root, "ro,size=16k"):
        try:
            yield root
        finally:
            _umount(root)
    else:
        yield Path("/sys")  # read-only to every user, root included


def _small_disk(tmp_path: Path, fill: bool):
    root = tmp_path / "disk"
    if _mount(root, "size=64k"):
        try:
            if fill:  # leave no free block at all
                fd = os.open(root / "filler", os.O_WRONLY | os.O_CREAT)
                try:
                    while os.write(fd, b"\0" * 4096):
                        pass
                except OSError:
                    pass
                finally:
                    os.close(fd)
            yield Disk(root / "out", {})
        finally:
            _umount(root)
    else:
        root.mkdir(exist_ok=True)
        # the child's stderr is a file too: leave room for its one line, not for the 4 KB probe
        yield Disk(root / "out", _fsize_env(tmp_path, 1024 if fill else 32 << 10))


@pytest.fixture
def full_disk(tmp_path):
    yield from _small_disk(tmp_path, fill=True)


@pytest.fixture
def small_disk(tmp_path):
    """64 KB: room for the output check's probe, not for the first real artifact."""
    yield from _small_disk(tmp_path, fill=False)


@pytest.mark.parametrize("verb", VERBS)
def test_out_naming_an_existing_file_is_refused(verb, tmp_path):
    out = tmp_path / "taken"
    out.write_text("keep me\n")
    assert_refused(run_oace(_verb_args(verb, out, tmp_path)), "--out", str(out), max_seconds=60)
    assert out.read_text() == "keep me\n"


@pytest.mark.parametrize("verb", VERBS)
def test_out_under_proc_is_refused(verb, tmp_path):
    out = Path("/proc/oace-hardening-out")
    line = assert_refused(run_oace(_verb_args(verb, out, tmp_path)), "--out", str(out), max_seconds=60)
    assert "cannot write there" in line
    assert not out.exists()


@pytest.mark.parametrize("verb", VERBS)
def test_out_with_a_name_longer_than_the_filesystem_allows_is_refused(verb, tmp_path):
    out = tmp_path / LONG_NAME
    line = assert_refused(run_oace(_verb_args(verb, out, tmp_path)), "--out", str(out), max_seconds=60)
    assert "name longer than the filesystem allows" in line
    assert final_paths(tmp_path) == []


@pytest.mark.parametrize("verb", VERBS)
def test_out_on_a_read_only_filesystem_is_refused(verb, tmp_path, readonly_dir):
    out = readonly_dir / "out"
    line = assert_refused(run_oace(_verb_args(verb, out, tmp_path)), "--out", str(out), max_seconds=60)
    assert "cannot write there" in line
    assert not out.exists()


@pytest.mark.parametrize("verb", VERBS)
def test_out_on_a_full_disk_is_refused_before_any_work(verb, tmp_path, full_disk):
    line = assert_refused(run_oace(_verb_args(verb, full_disk.root, tmp_path), env=full_disk.env), "--out",
                          str(full_disk.root), max_seconds=60)
    assert "no space left" in line or "file too large" in line
    assert final_paths(full_disk.root) == [] if full_disk.root.exists() else True


def test_quantize_out_naming_an_existing_folder_is_refused(tmp_path):
    out = tmp_path / "a_folder.tflite"
    out.mkdir()
    line = assert_refused(run_oace(["quantize", "--saved-model", tmp_path / "sm", "--out", out]), "--out", str(out))
    assert "is a folder" in line


def test_a_quantize_file_name_too_long_for_its_temporary_name_is_refused(tmp_path):
    # 250 bytes fit the filesystem, but not the hidden temporary name the file is written under first
    out = tmp_path / ("m" * 243 + ".tflite")
    line = assert_refused(run_oace(["quantize", "--saved-model", tmp_path / "sm", "--out", out]), "--out", str(out))
    assert "name longer than the filesystem allows" in line
    assert final_paths(tmp_path) == []


# --- a disk that fills up after the check: one line, nothing at a final path -------------------------

@pytest.fixture(scope="module")
def noisy_set(tmp_path_factory) -> Path:
    """Two 256x256 noise photos with a square object: their overlays do not fit in 64 KB."""
    rng = np.random.default_rng(15)
    pairs = []
    for _ in range(2):
        mask = np.zeros((256, 256), bool)
        mask[64:192, 64:192] = True
        pairs.append((rng.integers(0, 256, (256, 256, 3), dtype=np.uint8), mask))
    return write_salient_set(tmp_path_factory.mktemp("noisy") / "NOISY", pairs)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from oace.model.registry import build_model, save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "segmenter_tiny.pt"
    return save_checkpoint(build_model("segmenter_tiny", seed=0), path, meta={"weights": "seeded, untrained"})


def _assert_disk_full(result, disk: Disk, named: Path | None = None) -> None:
    line = assert_refused(result, str(named or disk.root), max_seconds=240)
    assert "no space left" in line or "file too large" in line, line
    assert final_paths(disk.root) == [], final_paths(disk.root)


def test_eval_on_a_disk_that_fills_up_leaves_no_report(small_disk, tiny_checkpoint, noisy_set):
    args = ["eval", "--checkpoint", tiny_checkpoint, "--dataset", "salient", "--data-root", noisy_set, "--limit", 2,
            "--max-clicks", 1, "--robustness-trials", 0, "--containment-trials", 0, "--threads", 1, "--no-progress",
            "--out", small_disk.root]
    _assert_disk_full(run_oace(args, env=small_disk.env), small_disk)


@pytest.mark.slow
def test_train_on_a_disk_that_fills_up_leaves_no_checkpoint(small_disk, noisy_set):
    args = ["train", "prior", "--data", f"salient:{noisy_set}", "--preset", "segmenter_tiny", "--size", 64,
            "--batch", 1, "--patches", 4, "--val-fraction", 0.5, "--no-progress", "--out", small_disk.root]
    _assert_disk_full(run_oace(args, env={**small_disk.env, "OMP_NUM_THREADS": "1"}), small_disk)


def test_demo_on_a_disk_that_fills_up_leaves_no_overlay(small_disk):
    args = ["demo", "--preset", "segmenter_tiny", "--no-export", "--out", small_disk.root]
    # the demo builds its folder in a hidden sibling (published whole): the line names that file
    _assert_disk_full(run_oace(args, env=small_disk.env), small_disk, named=small_disk.root.parent)
