"""benchmarks/profile_ops.py: every operator of a .tflite timed alone, with its name and output shape."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
_spec = importlib.util.spec_from_file_location("profile_ops", Path(__file__).resolve().parents[1] / "benchmarks" / "profile_ops.py")
profile_ops = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(profile_ops)


@pytest.fixture
def small_model(tmp_path) -> Path:
    w = tf.constant(np.random.default_rng(0).standard_normal((3, 3, 4, 8)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec((1, 32, 32, 4))])
    def model(x):
        y = tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME"))
        return tf.concat([y, tf.image.resize(y[:, ::2, ::2, :], (32, 32))], axis=3)

    path = tmp_path / "small.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model).convert())
    return path


def test_every_op_is_timed_alone_with_its_name_and_shape(small_model):
    rows = profile_ops.profile(small_model, threads=1, runs=2)
    ops = [r["op"] for r in rows]
    assert ops[-1] == "CONCATENATION" and "CONV_2D" in ops and "RESIZE_BILINEAR" in ops
    assert [r["index"] for r in rows] == list(range(len(rows)))
    assert all(r["ms"] is not None and 0 < r["ms"] < 1000 for r in rows)
    assert rows[-1]["output_shape"] == [1, 32, 32, 16]


def test_cli_prints_the_table_and_writes_json(small_model, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["profile_ops.py", str(small_model), "--threads", "1", "--runs", "1"])
    assert profile_ops.main() == 0
    out = capsys.readouterr().out
    assert "| CONV_2D | 1 |" in out
    report = json.loads(small_model.with_suffix(".ops.json").read_text())
    assert len(report["ops"]) >= 3 and report["threads"] == 1


def test_missing_file_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["profile_ops.py", str(tmp_path / "nope.tflite")])
    assert profile_ops.main() == 2
    assert capsys.readouterr().err.strip().endswith("no such .tflite file")
