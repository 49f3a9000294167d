"""`oace eval` end to end: report files and their content, errors on one line with exit code 2."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oace.cli import main

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _toy_builder():
    spec = importlib.util.spec_from_file_location("_oace_test_backends", Path(__file__).with_name("test_backends.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build_tflite


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    pytest.importorskip("tensorflow")
    return _toy_builder()(tmp_path_factory.mktemp("cli") / "toy_fp32.tflite")


@pytest.fixture()
def grabcut_like(tmp_path) -> Path:
    root = tmp_path / "data" / "GrabCut"
    (root / "data_GT").mkdir(parents=True)
    (root / "boundary_GT").mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(60, 80), (90, 70), (50, 50), (64, 100), (80, 60), (40, 120)]):
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        image[..., 1] = 200
        mask = np.zeros((h, w), np.uint8)
        mask[h // 4 - 1: 3 * h // 4 + 1, w // 4 - 1: 3 * w // 4 + 1] = 128
        mask[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 255
        Image.fromarray(image).save(root / "data_GT" / f"img {i}.png")
        Image.fromarray(mask).save(root / "boundary_GT" / f"img {i}.bmp")
    return root.parent


@pytest.mark.slow
def test_eval_writes_the_three_reports_and_overlays(toy, grabcut_like, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["eval", "--checkpoint", str(toy), "--dataset", "GrabCut", "--data-root", str(grabcut_like),
               "--max-clicks", "5", "--out", str(out), "--robustness-trials", "3", "--threads", "1", "--no-progress"])
    assert rc == 0
    data = json.loads((out / "eval.json").read_text())
    m = data["metrics"]
    assert {f"miou@{k}" for k in range(1, 6)} | {"noc@85", "noc@90", "fail@90", "n"} <= set(m)
    assert m["n"] == 6 and "miou@6" not in m
    assert data["protocol"]["pred_thr"] == 0.49 and data["protocol"]["input_size"] == 512
    assert len(data["dataset"]["sha256"]) == 64 and data["dataset"]["n_samples"] == 6
    run = data["runs"][0]
    assert run["model"]["path"] == str(toy) and len(run["model"]["sha256"]) == 64
    assert len(run["per_sample"]) == 6 and all(len(s["ious"]) == 5 for s in run["per_sample"])
    assert run["robustness"]["n"] == 6 and run["robustness"]["n_trials"] == 3
    assert "versions" in data and "command" in data
    # the per-sample curves are what the metrics are made of
    assert m["miou@5"] == pytest.approx(100 * np.mean([s["ious"][4] for s in run["per_sample"]]), abs=1e-3)
    md = (out / "eval.md").read_text()
    assert "NoC@90" in md and "0.49" in md and "512x512" in md and "original resolution" in md
    assert (out / "miou_vs_clicks.png").stat().st_size > 1000
    overlays = sorted(out.glob("worst_1_*.png"))
    assert len(overlays) == 5 and Image.open(overlays[0]).size[0] in (80, 70, 50, 100, 60, 120)
    assert "eval.json" in capsys.readouterr().out


def test_two_models_are_compared_on_one_plot(toy, grabcut_like, tmp_path):
    out = tmp_path / "two"
    rc = main(["eval", "--checkpoint", str(toy), "--checkpoint", str(toy), "--dataset", "grabcut", "--data-root",
               str(grabcut_like), "--max-clicks", "3", "--out", str(out), "--robustness-trials", "0",
               "--limit", "2", "--threads", "1", "--distance", "opencv", "--no-progress"])
    assert rc == 0
    data = json.loads((out / "eval.json").read_text())
    assert data["runs"][0]["model"]["threads"] == 1 and data["protocol"]["distance_transform"] == "opencv"
    assert len(data["runs"]) == 2 and data["runs"][0]["metrics"] == data["runs"][1]["metrics"]
    assert data["runs"][0]["robustness"] is None and data["metrics"]["n"] == 2


def test_errors_are_one_line_and_exit_2(grabcut_like, tmp_path, capsys):
    rc = main(["eval", "--checkpoint", str(tmp_path / "nope.tflite"), "--dataset", "GrabCut",
               "--data-root", str(grabcut_like), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "nope.tflite" in err and len(err.splitlines()) == 1
    rc = main(["eval", "--checkpoint", str(tmp_path / "x.tflite"), "--dataset", "Nowhere",
               "--data-root", str(grabcut_like), "--no-progress"])
    assert rc == 2 and "unknown dataset 'Nowhere'" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["GrabCut", "Berkeley", "COCO_MVal"])
def test_eval_runs_on_the_real_benchmarks(toy, tmp_path, name):
    if not (SHARED / "data" / name).is_dir():
        pytest.skip(f"{SHARED / 'data' / name} not present")
    out = tmp_path / name
    rc = main(["eval", "--checkpoint", str(toy), "--dataset", name, "--data-root", str(SHARED / "data"),
               "--max-clicks", "3", "--limit", "2", "--robustness-trials", "2", "--out", str(out), "--threads", "1", "--no-progress"])
    assert rc == 0
    data = json.loads((out / "eval.json").read_text())
    assert data["metrics"]["n"] == 2 and data["dataset"]["n_evaluated"] == 2
    assert data["dataset"]["n_samples"] == {"GrabCut": 50, "Berkeley": 100, "COCO_MVal": 400}[name]
    assert (out / "eval.md").is_file() and (out / "miou_vs_clicks.png").is_file()


def test_bad_numbers_are_input_errors(grabcut_like, tmp_path, capsys):
    for flag, value, words in (("--limit", "0", "--limit 0: must be at least 1"),
                               ("--max-clicks", "0", "--max-clicks 0: must be at least 1")):
        rc = main(["eval", "--checkpoint", str(tmp_path / "m.tflite"), "--dataset", "GrabCut",
                   "--data-root", str(grabcut_like), flag, value, "--no-progress"])
        assert rc == 2 and words in capsys.readouterr().err


def test_more_clicks_than_the_model_takes_is_refused_before_any_work(toy, grabcut_like, tmp_path, capsys):
    """The bound is the model's click rows (its tensors' N: 24 here), checked once the model is open."""
    out = tmp_path / "out"
    rc = main(["eval", "--checkpoint", str(toy), "--dataset", "GrabCut", "--data-root", str(grabcut_like),
               "--max-clicks", "25", "--out", str(out), "--threads", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "--max-clicks 25: must be 1..24 (toy_fp32.tflite takes 24 click rows)" in err
    assert not out.exists() or not any(out.iterdir())  # no report written


def test_the_eval_command_imports_no_heavy_library():
    import subprocess
    import sys

    code = ("import sys, argparse, oace.commands.eval as e; e.register(argparse.ArgumentParser().add_subparsers()); "
            "print(sorted(m for m in ('torch', 'tensorflow', 'scipy', 'ai_edge_litert') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"
