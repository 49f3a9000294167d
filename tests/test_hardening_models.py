"""Issue 15, class 1: a corrupt model file is refused in one line before any interpreter in the
process touches it (a truncated or bit-flipped .tflite segfaults LiteRT when loaded unverified), and
a corrupt SavedModel given to `oace quantize` is refused in one line instead of a traceback."""

from __future__ import annotations

import os
import random
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oace import litert
from oace.errors import InputError
from oace.litert import VerifyLimits, verify_tflite
from tests.cli_contract import assert_refused, final_paths, run_oace
from fakes.tiny_tflite import build_tiny_bundle

GRABCUT = Path(__file__).resolve().parents[2] / "shared" / "data" / "GrabCut"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_bundle(tmp_path_factory.mktemp("tiny"))


def truncated(src: Path, dst: Path, keep: float = 0.5) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def flipped(src: Path, dst: Path, seed: int, flips: int = 8, span: int = 2048) -> Path:
    """`flips` seeded single-bit flips in the first `span` bytes (past the 8-byte header)."""
    rng = random.Random(seed)
    data = bytearray(src.read_bytes())
    for _ in range(flips):
        i = rng.randrange(8, min(span, len(data)))
        data[i] ^= 1 << rng.randrange(8)
    dst.write_bytes(bytes(data))
    return dst


def _unverified_load(path: Path) -> int:
    """Exit status of a bare LiteRT load of `path` in a child (negative: killed by that signal)."""
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30)); "
            "from ai_edge_litert.interpreter import Interpreter; "
            "i = Interpreter(model_path=sys.argv[1]); i.allocate_tensors()")
    try:
        return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=60).returncode
    except subprocess.TimeoutExpired:
        return -9


# --- the verifier itself -----------------------------------------------------------------------
def test_an_intact_model_passes_and_is_checked_once(tiny, tmp_path, monkeypatch):
    model = tmp_path / "ok.tflite"
    shutil.copy(tiny, model)
    assert verify_tflite(model) == model
    calls = []
    monkeypatch.setattr(litert, "_first_load", lambda *a: calls.append(a) or {"ok": True})
    verify_tflite(model)
    assert calls == []  # cached per (path, size, mtime)
    os.utime(model, ns=(time.time_ns(), time.time_ns() + 10**9))
    verify_tflite(model)
    assert len(calls) == 1  # a changed file is checked again


def test_a_truncated_model_is_refused_naming_the_file(tiny, tmp_path):
    bad = truncated(tiny, tmp_path / "cut.tflite")
    with pytest.raises(InputError, match="corrupt .tflite") as exc:
        verify_tflite(bad)
    assert str(bad) in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("seed", range(6))
def test_flipped_bytes_are_refused_or_load_safely(tiny, tmp_path, seed):
    """Whatever a flip does, the verdict matches a bare load: a crash or error there is a refusal here."""
    bad = flipped(tiny, tmp_path / f"flip{seed}.tflite", seed)
    bare = _unverified_load(bad)
    try:
        verify_tflite(bad)
        refused = None
    except InputError as exc:
        refused = str(exc)
    if bare != 0:
        assert refused is not None and str(bad) in refused, f"bare load exited {bare} but the verifier passed it"


def test_foreign_and_empty_files_are_refused_without_a_child(tmp_path, monkeypatch):
    monkeypatch.setattr(litert, "_first_load", lambda *a: pytest.fail("child started for a foreign file"))
    for name, data in (("empty.tflite", b""), ("text.tflite", b"hello world, not a model"),
                       ("root.tflite", b"\xff\xff\xff\x7fTFL3" + bytes(64))):
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(InputError, match=name):
            verify_tflite(p)


def test_a_child_killed_by_a_signal_is_one_line(tiny, tmp_path, monkeypatch):
    crasher = tmp_path / "crash.sh"
    crasher.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crasher.chmod(crasher.stat().st_mode | stat.S_IEXEC)
    model = tmp_path / "m.tflite"
    shutil.copy(tiny, model)
    monkeypatch.setattr(litert.sys, "executable", str(crasher))
    with pytest.raises(InputError, match=r"LiteRT crashed loading it: SIGSEGV"):
        verify_tflite(model)


def test_a_load_past_the_time_limit_is_refused(tiny, tmp_path):
    model = tmp_path / "slow.tflite"
    shutil.copy(tiny, model)
    with pytest.raises(InputError, match="did not load within"):
        verify_tflite(model, limits=VerifyLimits(seconds=0.01))


# --- every verb that opens a .tflite, from outside ----------------------------------------------
def test_eval_refuses_a_truncated_model(tiny, tmp_path):
    bad = truncated(tiny, tmp_path / "cut.tflite", keep=0.7)
    out = tmp_path / "eval"
    r = run_oace(["eval", "--checkpoint", bad, "--dataset", "GrabCut", "--data-root", GRABCUT, "--limit", "1",
                  "--max-clicks", "1", "--robustness-trials", "0", "--containment-trials", "0", "--out", out,
                  "--no-progress"])
    assert_refused(r, str(bad), max_rss_mb=3000, max_seconds=120)
    assert not out.exists() or final_paths(out) == []


def test_eval_refuses_a_bit_flipped_model_that_crashes_litert(tiny, tmp_path):
    seed = next(s for s in range(50) if _unverified_load(flipped(tiny, tmp_path / "probe.tflite", s)) < 0)
    bad = flipped(tiny, tmp_path / "flip.tflite", seed)
    r = run_oace(["eval", "--checkpoint", bad, "--dataset", "GrabCut", "--data-root", GRABCUT, "--limit", "1",
                  "--max-clicks", "1", "--robustness-trials", "0", "--containment-trials", "0",
                  "--out", tmp_path / "eval", "--no-progress"])
    assert_refused(r, str(bad), max_rss_mb=3000, max_seconds=120)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_bench_host_refuses_a_corrupt_model(tiny, tmp_path, damage):
    bad = (truncated(tiny, tmp_path / "m.tflite", keep=0.3) if damage == "truncate"
           else flipped(tiny, tmp_path / "m.tflite", seed=3, flips=16))
    out = tmp_path / "bench"
    r = run_oace(["bench", "host", bad, "--threads", "1", "--runs", "1", "--warmup", "0", "--out", out])
    if damage == "flip" and r.returncode == 0:  # this flip happened to leave a loadable model
        assert _unverified_load(bad) == 0
        return
    assert_refused(r, str(bad), max_rss_mb=3000, max_seconds=120)
    assert not out.exists() or final_paths(out) == []


# --- a corrupt SavedModel given to quantize -------------------------------------------------------
@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    """A tiny SavedModel with the bundle's `segment` signature (as `oace export` writes)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    class Toy(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(tf.random.stateless_normal([3, 3, 3, 1], seed=[3, 4]))

        @tf.function(input_signature=[tf.TensorSpec([1, 16, 16, 3], tf.uint8, name="image")])
        def segment(self, image):
            x = tf.cast(image, tf.float32) / 255.0
            return {"mask": tf.sigmoid(tf.nn.conv2d(x, self.w, 1, "SAME"))}

    toy = Toy()
    path = tmp_path_factory.mktemp("sm") / "saved_model"
    tf.saved_model.save(toy, str(path), signatures={"segment": toy.segment.get_concrete_function()})
    return path


def _damaged_copy(src: Path, dst: Path, name: str) -> Path:
    shutil.copytree(src, dst)
    target = dst / name
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 3])
    return target


@pytest.mark.parametrize("name", ["saved_model.pb", "variables/variables.index"])
def test_quantize_refuses_a_corrupt_saved_model(saved_model, tmp_path, name):
    broken = tmp_path / "saved_model"
    damaged = _damaged_copy(saved_model, broken, name)
    out = tmp_path / "q" / "m_int8.tflite"
    r = run_oace(["quantize", "--saved-model", broken, "--out", out, "--mode", "dynamic_range"], timeout=300)
    assert_refused(r, str(damaged), max_rss_mb=3000, max_seconds=240)
    assert not out.exists()


def test_check_saved_model_passes_an_intact_one_and_names_a_foreign_signature(saved_model, tmp_path):
    from oace.quantize.int8 import check_saved_model

    assert check_saved_model(saved_model) == saved_model
    other = tmp_path / "other"
    shutil.copytree(saved_model, other)
    (other / "saved_model.pb").write_bytes(b"")  # parses as an empty SavedModel: no signature at all
    with pytest.raises(InputError, match=r"no signature 'segment'"):
        check_saved_model(other)
