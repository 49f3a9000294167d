"""The hardening harness measures the command, not the test process that starts it."""

from __future__ import annotations

import pytest

from tests.cli_contract import assert_refused, run_oace


@pytest.mark.slow
def test_peak_memory_is_the_commands_own_even_from_a_big_test_process():
    ballast = bytearray(1536 << 20)  # 1.5 GB resident in this process: a forked child would inherit it
    ballast[:: 4096] = b"\x01" * len(ballast[:: 4096])
    result = run_oace(["--version"])
    assert result.returncode == 0 and result.stdout.startswith("oace ")
    assert 5 < result.peak_rss_mb < 500, result.peak_rss_mb
    del ballast


def test_a_refusal_is_one_line_and_exit_2(tmp_path):
    missing = tmp_path / "missing.tflite"
    line = assert_refused(run_oace(["eval", "--checkpoint", missing, "--dataset", "GrabCut", "--data-root", tmp_path]), str(tmp_path))
    assert line.startswith("oace eval: error:")


def test_a_command_killed_by_a_signal_is_reported_as_that_signal(tmp_path):
    (tmp_path / "sitecustomize.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    result = run_oace(["--version"], env={"PYTHONPATH": str(tmp_path)}, timeout=60)
    assert result.returncode == -11  # what assert_refused rejects as "killed by signal"
