"""benchmarks/plot_runs.py reads a run's last.pt history or, when only the reports came back, its train.json."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _plot_runs():
    spec = importlib.util.spec_from_file_location("plot_runs", ROOT / "benchmarks" / "plot_runs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _reports_only(run: Path, mious: list[float]) -> Path:
    run.mkdir(parents=True)
    epochs = [{"epoch": i + 1, "train_loss": 0.69 - 0.01 * i, "val_loss": 0.65, "val_miou1": m} for i, m in enumerate(mious)]
    (run / "train.json").write_text(json.dumps({"epochs": epochs}))
    return run


def test_runs_with_reports_only_are_plotted_per_epoch(tmp_path, capsys):
    mod = _plot_runs()
    a = _reports_only(tmp_path / "a", [0.33, 0.39, 0.43])
    b = _reports_only(tmp_path / "b", [0.30, 0.35])
    out = tmp_path / "curves.png"
    assert mod.main([str(a), str(b), "--labels", "OACE,disk", "--out", str(out)]) == 0
    assert Image.open(out).size[0] > 500
    text = capsys.readouterr().out
    assert "OACE: epoch 1 train 0.6900" in text and "val_miou1 0.4300" in text and "disk: epoch 1" in text and "epoch 2 train 0.6800" in text
    with pytest.raises(mod.InputError, match="neither last.pt nor train.json"):
        mod.load_history(tmp_path / "missing")
