"""Issue 15, class 9: `--resume` of a moved run folder or one spelled with a trailing slash; a `prior`
checkpoint or NaN weights given to eval; an empty `--checkpoint`."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.cli_contract import assert_refused, final_paths, run_oace
from conftest import write_salient_set
from oace.model.registry import PRESETS, build, build_model, save_checkpoint
from oace.errors import InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_TRAIN = ["--preset", "segmenter_tiny", "--size", "64", "--batch", "4", "--patches", "16", "--val-fraction", "0.2",
              "--no-progress"]


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory) -> Path:
    """10 seeded 64x64 photos, each a bright square on noise."""
    rng = np.random.default_rng(9)
    pairs = []
    for _ in range(10):
        x, y = rng.integers(8, 32, 2)
        mask = np.zeros((64, 64), bool)
        mask[y:y + 24, x:x + 24] = True
        img = rng.integers(0, 90, (64, 64, 3), dtype=np.uint8)
        img[mask] = rng.integers(150, 255, 3, dtype=np.uint8)
        pairs.append((img, mask))
    return write_salient_set(tmp_path_factory.mktemp("synth") / "SYNTH", pairs)


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory, synth_set) -> Path:
    run = tmp_path_factory.mktemp("runs") / "prior_run"
    res = run_oace(["train", "prior", "--data", f"salient:{synth_set}", *TINY_TRAIN, "--out", run],
                   env={"OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    return run


def _epochs(run: Path) -> list[int]:
    return [e["epoch"] for e in json.loads((run / "train.json").read_text())["epochs"]]


def _resume(run: str | Path, data: str | Path, *extra: str):
    return run_oace(["train", "prior", "--data", f"salient:{data}", *TINY_TRAIN, *extra, "--epochs", "2", "--resume",
                     "--out", run], env={"OMP_NUM_THREADS": "1"})


# --- --resume compares what paths name, not how they are spelled ------------------------------------

@pytest.mark.slow
def test_resume_continues_a_run_folder_that_was_moved(one_epoch_run, synth_set, tmp_path):
    moved = tmp_path / "elsewhere" / "renamed_run"
    shutil.copytree(one_epoch_run, moved)  # a copy: the module's run stays for the other tests
    res = _resume(moved, synth_set)
    assert res.returncode == 0, res.stderr[-2000:]
    assert _epochs(moved) == [1, 2]


@pytest.mark.slow
def test_resume_takes_trailing_slashes_on_the_run_and_the_data(one_epoch_run, synth_set, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(one_epoch_run, run)
    res = _resume(f"{run}/", f"{synth_set}/")
    assert res.returncode == 0, res.stderr[-2000:]
    assert _epochs(run) == [1, 2]


@pytest.mark.slow
def test_resume_still_refuses_a_changed_setting_or_other_data(one_epoch_run, synth_set, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(one_epoch_run, run)
    line = assert_refused(_resume(run, synth_set, "--lr", "0.001"), str(run / "last.pt"), "lr", max_seconds=90)
    assert "resume with the same settings" in line
    other = tmp_path / "OTHER"
    shutil.copytree(synth_set, other)
    assert_refused(_resume(run, other), str(run / "last.pt"), "data", max_seconds=90)
    assert _epochs(run) == [1]


def test_check_resumable_compares_paths_by_identity(synth_set, tmp_path):
    from oace.model.train_config import TrainConfig
    from oace.model.train_state import check_resumable

    saved = TrainConfig(stage="prior", data=f"salient:{synth_set}", out="/old/place/run", prior=str(synth_set))
    now = TrainConfig(stage="prior", data=f"salient:{synth_set}/", out=str(tmp_path / "run/"), prior=f"{synth_set}/./")
    check_resumable(dataclasses.asdict(saved), now, tmp_path / "run" / "last.pt")  # no error
    with pytest.raises(InputError, match="was trained with prior="):
        check_resumable(dataclasses.asdict(saved), dataclasses.replace(now, prior=str(tmp_path)), tmp_path / "last.pt")


# --- eval: a part instead of a segmenter, NaN weights ---------------------------------------------

def _eval(model: Path | str, data: Path, out: Path):
    return run_oace(["eval", "--checkpoint", model, "--dataset", "salient", "--data-root", data, "--limit", "1",
                     "--max-clicks", "2", "--robustness-trials", "0", "--containment-trials", "0", "--no-progress",
                     "--out", out])


def test_eval_refuses_a_prior_checkpoint_on_one_line(synth_set, tmp_path):
    ckpt = save_checkpoint(build("prior", PRESETS["segmenter_tiny"].config.prior, seed=0), tmp_path / "prior.pt")
    line = assert_refused(_eval(ckpt, synth_set, tmp_path / "out"), str(ckpt), "eval needs a segmenter", max_seconds=90)
    assert "OACEPrior" in line and "forward" not in line
    assert final_paths(tmp_path / "out") == []


def test_eval_refuses_nan_weights_instead_of_scoring_them_zero(synth_set, tmp_path):
    model = build_model("segmenter_tiny", seed=0)
    name, tensor = next((k, v) for k, v in model.state_dict().items() if v.is_floating_point() and v.numel() > 1)
    with torch.no_grad():
        tensor.view(-1)[0] = float("nan")
    ckpt = save_checkpoint(model, tmp_path / "nan.pt")
    line = assert_refused(_eval(ckpt, synth_set, tmp_path / "out"), str(ckpt), "NaN", max_seconds=90)
    assert name in line
    assert final_paths(tmp_path / "out") == []


def test_a_backend_that_predicts_nan_is_refused(tmp_path):
    from oace.model.backends import BundleContract
    from oace.model.evaluate import _check_finite_output

    class NaNBackend:
        name = "nan"
        contract = BundleContract(512, 24, 0.49)

        def predict(self, image, clicks, prev_mask):
            return np.full((512, 512), np.nan, np.float32)

    with pytest.raises(InputError, match="predicts NaN or Inf"):
        _check_finite_output(NaNBackend(), tmp_path / "m.tflite")


@pytest.mark.slow
def test_eval_of_finite_weights_still_runs(synth_set, tmp_path):
    ckpt = save_checkpoint(build_model("segmenter_tiny", seed=0), tmp_path / "ok.pt")
    res = _eval(ckpt, synth_set, tmp_path / "out")
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "out" / "eval.json").is_file()


# --- an empty --checkpoint --------------------------------------------------------------------------

@pytest.mark.parametrize("args,flag", [
    (["export", "--checkpoint", ""], "--checkpoint"),
    (["demo", "--checkpoint", "", "--no-export"], "--checkpoint"),
    (["eval", "--checkpoint", "", "--dataset", "salient", "--data-root", "."], "--checkpoint"),
    (["train", "msfnet", "--data", "salient:.", "--prior", ""], "--prior"),
])
def test_an_empty_checkpoint_names_the_flag(args, flag, tmp_path):
    line = assert_refused(run_oace([*args, "--out", tmp_path / "out"]), flag, "empty", max_seconds=60)
    assert "None" not in line
    assert final_paths(tmp_path) == []


def test_load_segmenter_refuses_an_empty_checkpoint():
    from oace.model.registry import load_segmenter

    with pytest.raises(InputError, match="--checkpoint is empty"):
        load_segmenter("", None)
