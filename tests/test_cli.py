"""The `oace` command: models listing with budgets, the main job, stubs that say they are stubs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from oace.cli import main


@pytest.mark.slow
def test_models_json_reports_params_and_macs_within_budget(capsys):
    assert main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert 4.94e6 <= data["prior"]["params"] <= 5.46e6
    assert 9.5e6 <= data["msfnet"]["params"] <= 10.5e6
    assert data["segmenter"]["params"] == data["prior"]["params"] + data["msfnet"]["params"]
    click_encoding = 3 * 512 * 512 * 96  # one matrix product, see model/click_maps.py
    assert data["segmenter"]["macs"] == data["prior"]["macs"] + data["msfnet"]["macs"] + click_encoding
    assert all(v["input"] == "512x512" for k, v in data.items() if k != "segmenter_tiny")
    assert {"msfnet_disk", "baseline", "segmenter_disk", "segmenter_baseline"} <= set(data)


def test_models_rejects_a_size_the_network_cannot_take(capsys):
    assert main(["models", "--size", "500"]) == 2
    assert "--size 500: must be a positive multiple of 32" in capsys.readouterr().err


def test_every_stage_is_a_real_subcommand(capsys):
    """No stage is a placeholder: each parses its own arguments and rejects unknown ones."""
    from oace.cli import COMMANDS

    assert COMMANDS == ("models", "demo", "train", "eval", "export", "quantize", "bench", "app")
    for stage in ("train", "eval", "export", "quantize"):
        with pytest.raises(SystemExit) as info:
            main([stage, "--definitely-not-an-option"])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert f"oace {stage}: error:" in err  # the stage's own parser answered, not a catch-all stub


@pytest.mark.slow
def test_demo_without_export_writes_overlay_and_reports(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--no-export", "--untrained"]) == 0
    report = json.loads((out / "demo.json").read_text())
    assert report["untrained"] is True and "UNTRAINED" in report["weights"]
    assert report["models"]["segmenter"]["params"] > 15e6
    assert report["versions"]["torch"].startswith("2.13.0")
    assert "UNTRAINED" in (out / "demo.md").read_text()
    from PIL import Image

    assert Image.open(out / "overlay.png").size == (512, 512)
    assert "UNTRAINED" in capsys.readouterr().out
    assert not list(out.glob("*.tflite"))


@pytest.mark.slow
def test_demo_exports_the_int8_bundle_and_says_the_calibration_is_not_coco(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--preset", "segmenter_tiny"]) == 0
    report = json.loads((out / "demo.json").read_text())
    assert {"fp32", "int8", "onnx"} <= set(report["export"])
    assert (out / "oace_segmenter_int8.tflite").stat().st_size == report["export"]["int8"]["bytes"]
    assert report["calibration"]["is_coco"] is False and "NOT COCO" in report["calibration"]["warning"]
    printed = capsys.readouterr().out
    assert "NOT COCO" in printed and "oace bench host" in printed
    from PIL import Image

    assert Image.open(out / "overlay_int8.png").size == (512, 512)


def test_demo_with_a_corrupt_checkpoint_fails_in_one_line(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    res = subprocess.run(
        [sys.executable, "-m", "oace.cli", "demo", "--out", str(tmp_path / "o"), "--checkpoint", str(bad)],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and str(bad) in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "o" / "demo.json").exists()


def test_demo_reports_a_missed_int8_gate_instead_of_stopping():
    from oace.demo import int8_gate

    rows = [{"reference": "torch", "candidate": "fp32", "mask_iou": 1.0, "max_abs": 1e-6, "mean_abs": 1e-8},
            {"reference": "fp32", "candidate": "int8", "mask_iou": 0.68, "max_abs": 0.18, "mean_abs": 0.018}]
    gate = int8_gate(rows, 0.90)
    assert gate["passed"] is False and gate["mask_iou"] == 0.68
    assert "INT8 PARITY GATE MISSED: int8 mask IoU vs fp32 0.680 < 0.9" in gate["warning"] and "--extra int16x8" in gate["warning"]
    rows[1]["mask_iou"] = 0.95
    assert int8_gate(rows, 0.90) == {"mask_iou": 0.95, "min_mask_iou": 0.90, "passed": True}


def _subparsers():
    import argparse

    from oace.cli import build_parser

    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_one_flag_name_per_concept_checkpoint_for_files_preset_for_registered_names():
    flags = {name: {s for a in p._actions for s in a.option_strings} for name, p in _subparsers().items()}
    assert not [name for name, options in flags.items() if "--model" in options]
    for name in ("eval", "export", "demo", "app"):
        assert "--checkpoint" in flags[name]
    for name in ("export", "demo", "train"):
        assert "--preset" in flags[name]


def test_train_options_are_the_fields_of_train_config_with_their_defaults():
    import dataclasses

    from oace.model.train_config import TrainConfig

    train = _subparsers()["train"]
    parsed = vars(train.parse_args(["prior", "--data", "salient:d", "--out", "o"]))
    cfg = TrainConfig(stage="prior", data="salient:d", out="o")
    assert {k: v for k, v in parsed.items() if k != "handler"} == dataclasses.asdict(cfg)
    parsed = train.parse_args(["msfnet", "--data", "d", "--out", "o", "--preset", "segmenter_tiny", "--no-progress",
                               "--freeze-bn", "--crop", "256", "--val-max", "9", "--train", "refiner"])
    assert (parsed.model, parsed.progress, parsed.freeze_bn, parsed.crop, parsed.val_max, parsed.train) == (
        "segmenter_tiny", False, True, 256, 9, "refiner")


def test_building_the_parser_loads_no_heavy_library():
    code = ("import sys; from oace.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'tensorflow', 'scipy', 'ai_edge_litert', 'gradio') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"


@pytest.mark.parametrize("command, default", [("eval", "(default 20)"), ("export", "(default 17)"),
                                              ("models", "(default 512)"), ("demo", "(default embedded)")])
def test_help_states_the_defaults_kept_in_the_configs(command, default, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert default in " ".join(capsys.readouterr().out.split())
