"""Issue 15, class 5: an export folder is the previous export or the new one, whole, never a mix.

`oace export` builds its folder in a hidden sibling (`.<name>.partial-<pid>`) and publishes it by one
rename, report written last; onnx2tf runs on a private copy of the .onnx; an int8 file the parity
gate refuses is published as `oace_segmenter_int8.REFUSED.tflite`. These tests run the CLI as a user
would (tests/cli_contract.py), kill it with SIGKILL at seeded random moments, and check every file
at a final path against the report beside it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oace.artifacts import sha256_file
from tests.cli_contract import REPO, assert_refused, final_paths, run_oace

pytestmark = pytest.mark.slow  # TensorFlow conversions / training loops: make test-fast leaves it out

SEED = 15
KILLS = 10
REPORT = "export_report.json"
SIDE_FILES = ("export_report.md", "calibration_manifest.json", "onnx2tf.log")


def export_args(out: Path, precision: str = "fp32", *extra: str, source: tuple[str, ...] = ("--preset", "segmenter_tiny")) -> list[str]:
    """The cheapest real export: the tiny preset (8 embedded calibration photos when int8 is asked for)."""
    return ["export", *source, "--precision", precision, "--calib", "embedded",
            "--calib-count", "8", "--force-calib", "--out", str(out), *extra]


def near_threshold_checkpoint(path: Path) -> Path:
    """The tiny preset with its probabilities at its mask threshold (tests/near_threshold.py), so
    int8 misses an IoU gate of 1.0."""
    from oace.model.registry import build_model, save_checkpoint
    from tests.near_threshold import centre_on_threshold

    return save_checkpoint(centre_on_threshold(build_model("segmenter_tiny", seed=0).eval()), path)


def start_export(out: Path, *extra: str) -> subprocess.Popen:
    """`oace export` in its own process group (SIGKILL reaches every process it started)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, "-m", "oace.cli", *export_args(out, *extra)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it had already finished
    proc.wait()


def staging_left(out: Path) -> list[Path]:
    """Hidden siblings of `out` that a run uses while it builds or swaps the folder."""
    return sorted(out.parent.glob(f".{out.name}.*"))


def check_file(path: Path) -> None:
    """A file at a final path is whole: parses as what its name says it is."""
    if path.suffix == ".json":
        json.loads(path.read_text())
    elif path.suffix == ".onnx":
        import onnx

        onnx.checker.check_model(onnx.load(str(path)))
    elif path.suffix == ".tflite":
        from oace.tflite.inspection import inspect_tflite

        assert "segment" in inspect_tflite(path).signatures, f"{path}: no 'segment' signature"
    else:
        assert path.stat().st_size > 0, f"{path}: empty"


def check_folder(out: Path) -> dict | None:
    """Every file at a final path under `out` is valid and is the one the report beside it records.
    Returns the report (None when the folder holds no file: a first export killed before publishing)."""
    files = final_paths(out) if out.exists() else []
    if not files:  # an empty folder (`oace export` creates --out first, to prove it is writable)
        return None
    report_path = out / REPORT
    assert report_path in files, f"{out}: files without a report: {[p.name for p in files]}"
    report = json.loads(report_path.read_text())
    assert report["out_dir"] == str(out)
    recorded = {out / "saved_model" / "saved_model.pb"}
    for name, art in report["artifacts"].items():
        path = Path(art["path"])
        assert path.parent == out, f"{name}: recorded at {path}, not beside its report"
        if path.is_dir():  # saved_model: sha256 of saved_model.pb, bytes of the whole folder
            assert sha256_file(path / "saved_model.pb") == art["sha256"]
            assert sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) == art["bytes"]
            recorded |= set(final_paths(path))
            continue
        assert path.stat().st_size == art["bytes"] and sha256_file(path) == art["sha256"], f"{path} != report"
        recorded.add(path)
        meta = path.with_suffix(".json")
        if path.suffix == ".tflite":  # its metadata JSON describes this very file
            assert json.loads(meta.read_text())["sha256"] == art["sha256"]
            recorded.add(meta)
    stray = [p for p in files if p not in recorded and p.name not in (REPORT, *SIDE_FILES)]
    assert not stray, f"{out}: files the report does not record: {stray}"
    for p in files:
        check_file(p)
    return report


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One uninterrupted export (its duration measured), kept as a template of a finished folder."""
    root = tmp_path_factory.mktemp("atomic")
    t0 = time.monotonic()
    result = run_oace(export_args(root / "template"), timeout=600)
    seconds = time.monotonic() - t0
    assert result.returncode == 0, result.stderr[-2000:]
    assert check_folder(root / "template")["status"] == "ok"
    return root / "template", seconds


def restore(template: Path, out: Path) -> None:
    """`out` as a finished export (the template's files; its report names `out`)."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(template, out)
    report = json.loads((out / REPORT).read_text())
    for art in report["artifacts"].values():
        art["path"] = str(out / Path(art["path"]).name)
    report["out_dir"] = str(out)
    (out / REPORT).write_text(json.dumps(report))


def run_and_kill(out: Path, after: float) -> float | None:
    """Start an export, SIGKILL its process group `after` seconds later; returns its duration when
    it finished before that (None when the kill landed)."""
    t0 = time.monotonic()
    proc = start_export(out)
    while time.monotonic() - t0 < after and proc.poll() is None:
        time.sleep(0.05)
    finished = time.monotonic() - t0 if proc.poll() is not None else None
    kill_group(proc)
    return finished


def test_export_killed_at_random_moments_leaves_only_whole_files_matching_their_report(finished):
    template, seconds = finished
    out = template.parent / "bundle"
    rng = random.Random(SEED)
    moments = [(i + rng.random()) / KILLS for i in range(KILLS)]  # one in each tenth of a run
    rng.shuffle(moments)
    seen = {"absent": 0, "previous": 0, "new": 0, "staging left": 0, "finished first": 0}
    delays = []
    for i, moment in enumerate(moments):
        if i % 2:
            restore(template, out)  # a re-export into a finished folder
        else:
            shutil.rmtree(out, ignore_errors=True)  # a first export
        before = (out / REPORT).read_bytes() if out.exists() else None
        delays.append(moment * seconds)
        took = run_and_kill(out, delays[-1])
        if took is not None:  # the machine got faster than the measured run: scale down, try again
            seen["finished first"] += 1
            seconds = min(seconds, took)
            if len(moments) < 2 * KILLS:
                moments.append(moment)
        report = check_folder(out)
        seen["staging left"] += bool(staging_left(out))
        if report is None:
            seen["absent"] += 1
        else:
            seen["previous" if (out / REPORT).read_bytes() == before else "new"] += 1
    print(f"{len(delays)} kills at {', '.join(f'{d:.1f}' for d in delays)} s (run: {seconds:.0f} s): {seen}")
    assert len(delays) - seen["finished first"] >= KILLS, f"fewer than {KILLS} kills landed: {seen}"
    assert seen["staging left"] >= 3, f"too few kills landed while the export was building: {seen}"

    result = run_oace(export_args(out), timeout=600)  # one uninterrupted run into the same folder
    assert result.returncode == 0, result.stderr[-2000:]
    assert check_folder(out)["status"] == "ok"
    assert staging_left(out) == [], "stale staging folders of killed runs were not cleaned"
    assert not [p for p in out.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]


def test_a_killed_reexport_keeps_the_previous_folder_whole(finished):
    """Killed while onnx2tf works on its private copy: the finished folder is untouched."""
    template, _ = finished
    out = template.parent / "reexport"
    restore(template, out)
    before = {p.relative_to(out): sha256_file(p) for p in final_paths(out)}
    proc = start_export(out)
    deadline = time.monotonic() + 300
    try:
        while not list(out.parent.glob(f".{out.name}.partial-*/.saved_model.partial-*/oace_segmenter.onnx")):
            assert proc.poll() is None and time.monotonic() < deadline, "the export never reached onnx2tf"
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        kill_group(proc)
    assert check_folder(out)["status"] == "ok"
    assert {p.relative_to(out): sha256_file(p) for p in final_paths(out)} == before
    assert staging_left(out), "the kill should have left the run's private folder (cleaned by the next run)"


def test_an_int8_file_the_gate_refuses_never_has_its_shipping_name(tmp_path):
    out = tmp_path / "refused"
    ckpt = near_threshold_checkpoint(tmp_path / "near_threshold.pt")
    result = run_oace(export_args(out, "fp32,int8", "--min-int8-iou", "1.0", source=("--checkpoint", str(ckpt))), timeout=600)
    # a refusal after the whole export: progress bars and TensorFlow's own logs precede the error,
    # which is one line, the last, naming the refused file
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr_lines if "error" in line and "oace" in line]
    assert errors == [result.stderr_lines[-1]], errors
    line = errors[0]
    assert line.startswith("oace export: error: int8 mask IoU vs fp32 is ") and "< 1.0 " in line
    assert str(out / "oace_segmenter_int8.REFUSED.tflite") in line
    assert not (out / "oace_segmenter_int8.tflite").exists() and not (out / "oace_segmenter_int8.json").exists()
    report = check_folder(out)
    assert report["status"] == "failed"
    assert report["refused"]["int8"]["file"] == "oace_segmenter_int8.REFUSED.tflite"
    assert Path(report["artifacts"]["int8"]["path"]).name == "oace_segmenter_int8.REFUSED.tflite"
    meta = json.loads((out / "oace_segmenter_int8.REFUSED.json").read_text())
    assert meta["file"] == "oace_segmenter_int8.REFUSED.tflite" and "not for shipping" in meta["refused"]
    assert "REFUSED" in (out / "export_report.md").read_text()
    assert staging_left(out) == []


def test_an_export_refuses_to_replace_a_folder_it_did_not_write(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    line = assert_refused(run_oace(export_args(out), timeout=300), str(out), "notes.txt")
    assert "new or empty folder" in line
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and staging_left(out) == []


def test_leftovers_of_dead_runs_are_removed_by_the_next_write_and_live_ones_kept(tmp_path):
    from oace.artifacts import publish_dir, staged_dir, write_text_atomic

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a pid that no longer runs
    dead, live = child.pid, os.getppid()
    out = tmp_path / "bundle"
    for pid in (dead, live):
        (tmp_path / f".report.json.{pid}-x1y2.tmp").write_text("half")
        (tmp_path / f".bundle.partial-{pid}").mkdir()
        (tmp_path / f".bundle.partial-{pid}" / "oace_segmenter.onnx").write_bytes(b"")
    write_text_atomic(tmp_path / "report.json", "{}")
    with staged_dir(out) as work:
        (work / "a.txt").write_text("new")
        publish_dir(work, out)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([".bundle.partial-%d" % live, ".report.json.%d-x1y2.tmp" % live, "bundle", "report.json"])
    with staged_dir(out) as work:  # a second publish swaps the folder whole
        (work / "b.txt").write_text("newer")
        publish_dir(work, out)
    assert [p.name for p in out.iterdir()] == ["b.txt"] and len(list(tmp_path.iterdir())) == 4
