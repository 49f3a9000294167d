"""The shipped reference checkpoint: found by name, self-describing, small, and used by the demo."""

from __future__ import annotations

import json

import pytest
import torch

import oace.model.reference as reference
from oace.cli import main
from oace.errors import CheckpointError

needs_reference = pytest.mark.skipif(reference.reference_checkpoint() is None, reason="no reference checkpoint in this install")


def test_the_word_reference_resolves_and_other_names_pass_through(tmp_path, monkeypatch):
    assert reference.resolve_checkpoint("runs/x/segmenter.pt") == "runs/x/segmenter.pt"
    monkeypatch.setattr(reference, "REFERENCE_PATH", tmp_path / "missing.pt")
    assert reference.reference_checkpoint() is None
    with pytest.raises(CheckpointError, match="missing.pt: the reference checkpoint is not in this install"):
        reference.resolve_checkpoint("reference")


def test_reference_v1_stays_loadable_by_name(tmp_path, monkeypatch):
    from oace.model.registry import load_model

    v1 = load_model(reference.resolve_checkpoint("reference_v1"))
    assert v1.prior is None and v1.cfg.msfnet.guidance_channels == 1  # the click-disk ablation the chain is built from
    assert reference.resolve_checkpoint("reference_v1") == str(reference.NAMED["reference_v1"])
    monkeypatch.setitem(reference.NAMED, "reference_v1", tmp_path / "gone.pt")
    with pytest.raises(CheckpointError, match="gone.pt: the reference_v1 checkpoint is not in this install"):
        reference.resolve_checkpoint("reference_v1")


def test_a_missing_reference_is_one_line_from_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(reference, "REFERENCE_PATH", tmp_path / "missing.pt")
    assert main(["export", "--checkpoint", "reference", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the reference checkpoint is not in this install" in err[0]
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


@needs_reference
def test_reference_checkpoint_is_fp16_self_describing_and_under_35_mb():
    from oace.model.registry import load_checkpoint, load_model

    path = reference.reference_checkpoint()
    assert path.stat().st_size < 35e6
    record = load_checkpoint(path)
    assert record["arch"] == "segmenter" and record["meta"]["dtype"] == "float16"
    floats = [v for v in record["state_dict"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    meta = record["meta"]
    assert meta["model_version"].startswith("oace-reference") and "trained" in meta["weights"]
    model = load_model(path)
    assert (model.cfg.input_size, model.cfg.click_radius) == (512, 5)


def test_demo_defaults_to_an_installed_reference_and_else_says_untrained(tmp_path, monkeypatch):
    from oace.model.registry import build_model, save_checkpoint

    monkeypatch.setattr(reference, "REFERENCE_PATH", tmp_path / "none.pt")
    assert main(["demo", "--out", str(tmp_path / "a"), "--no-export", "--preset", "segmenter_tiny"]) == 0
    assert json.loads((tmp_path / "a" / "demo.json").read_text())["untrained"] is True

    ckpt = save_checkpoint(build_model("segmenter_tiny", seed=3), tmp_path / "ref.pt",
                           meta={"model_version": "oace-reference-test", "weights": "trained (test stand-in)"})
    monkeypatch.setattr(reference, "REFERENCE_PATH", ckpt)
    assert main(["demo", "--out", str(tmp_path / "b"), "--no-export"]) == 0
    report = json.loads((tmp_path / "b" / "demo.json").read_text())
    assert report["untrained"] is False and str(ckpt) in report["weights"] and "trained (test stand-in)" in report["weights"]
    assert report["models"] == {}  # the parts table describes the default architecture only
    assert main(["demo", "--out", str(tmp_path / "c"), "--no-export", "--preset", "segmenter_tiny"]) == 0
    assert json.loads((tmp_path / "c" / "demo.json").read_text())["untrained"] is True


@needs_reference
def test_the_reference_is_the_chained_model_with_its_refiner_and_v1_stays_loadable():
    from oace.model.registry import PRESETS, load_model
    from oace.model.summary import count_params

    v2 = load_model(reference.reference_checkpoint())
    assert v2.prior is not None and v2.cfg.disk_guidance
    assert v2.cfg.msfnet == PRESETS["segmenter"].config.msfnet  # OACE + disk guidance, click refiner
    assert abs(count_params(v2) - 15.2e6) <= 0.05 * 15.2e6
    assert reference.resolve_checkpoint("reference_v2") == str(reference.reference_checkpoint())
    v1 = load_model(reference.resolve_checkpoint("reference_v1"))
    assert v1.prior is None and v1.cfg.msfnet.refiner_width == 0  # the click-disk model v2 was built from


@pytest.mark.slow
@needs_reference
def test_the_reference_obeys_corrective_taps_on_real_photos(shared_dir):
    """Issue 16 in small: RITM's robot on the first 8 GrabCut photos, PyTorch. v1 obeyed 0.1 % of
    negative taps; the refiner makes both kinds count."""
    from oace.model.backends import TorchBackend
    from oace.model.data import get_dataset
    from oace.model.evaluate import EvalConfig, evaluate_dataset
    from oace.model.registry import load_model

    ds = get_dataset("GrabCut", shared_dir / "data")
    samples = [ds[i] for i in range(8)]  # enough photos for both kinds of robot tap
    run = evaluate_dataset(samples, TorchBackend(load_model(reference.reference_checkpoint())),
                           EvalConfig(max_clicks=4, progress=False))
    m = run.metrics
    assert m["obey_neg_clicks"] >= 2 and m["obey_neg"] >= 0.75, m
    assert m["obey_pos_clicks"] >= 2 and m["obey_pos"] >= 0.75, m
