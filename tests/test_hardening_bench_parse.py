"""Class 3 for `oace bench parse`: huge or endless input. A log that is not a regular file (/dev/zero,
a FIFO, a folder) or is over MAX_LOG_BYTES (16 MiB) is refused with one line naming the file and the
limit; a log under the limit full of errors prints a bounded report (at most MAX_LIST_ENTRIES error
lines, the rest counted). Big inputs are generated in tmp_path at test time."""

from __future__ import annotations

import json
import os
import random

import pytest

from oace.android_bench.parse import MAX_LIST_ENTRIES, MAX_LOG_BYTES, parse_benchmark_log
from tests.cli_contract import assert_refused, run_oace

LIMIT_TEXT = "16 MiB"


def test_dev_zero_is_refused_at_once():
    res = run_oace(["bench", "parse", "/dev/zero", "--json"], timeout=120)
    line = assert_refused(res, "/dev/zero", "not a regular file", LIMIT_TEXT, max_rss_mb=1000, max_seconds=60)
    assert res.stdout == "", line


def test_a_fifo_nobody_writes_to_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "bench.log"
    os.mkfifo(fifo)
    res = run_oace(["bench", "parse", fifo], timeout=120)  # a hang would fail inside run_oace
    assert_refused(res, str(fifo), "not a regular file", max_rss_mb=1000, max_seconds=60)


def test_a_folder_is_refused(tmp_path):
    res = run_oace(["bench", "parse", tmp_path, "--json"], timeout=120)
    assert_refused(res, str(tmp_path), "not a regular file", max_rss_mb=1000, max_seconds=60)


def test_a_100_mb_log_is_refused_naming_the_limit_before_reading_it(tmp_path):
    log = tmp_path / "huge.log"
    with open(log, "wb") as f:  # real lines first, then a sparse 100 MB tail: written in milliseconds
        f.write(b"INFO: STARTING!\nERROR: Failed to invoke.\n" * 1000)
        f.truncate(100 << 20)
    res = run_oace(["bench", "parse", log, "--json"], timeout=120)
    line = assert_refused(res, str(log), LIMIT_TEXT, str(100 << 20), max_rss_mb=1000, max_seconds=60)
    assert res.stdout == "" and str(MAX_LOG_BYTES) in line


def test_one_byte_over_the_limit_is_refused_and_the_limit_itself_is_read(tmp_path):
    over = tmp_path / "over.log"
    with open(over, "wb") as f:
        f.truncate(MAX_LOG_BYTES + 1)
    assert_refused(run_oace(["bench", "parse", over], timeout=120), str(over), LIMIT_TEXT, max_rss_mb=1000)
    at = tmp_path / "at.log"
    with open(at, "wb") as f:
        f.truncate(MAX_LOG_BYTES)  # NUL bytes: not a benchmark log, but within the limit
    res = run_oace(["bench", "parse", at, "--json"], timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["status"] == "incomplete"


def test_a_log_just_under_the_limit_full_of_errors_prints_a_bounded_report(tmp_path):
    rng = random.Random(15)
    lines = [f"ERROR: Node number {rng.randrange(1000)} (TfLiteNnapiDelegate) failed to invoke.\n" for _ in range(2000)]
    block = "".join(lines).encode()
    log = tmp_path / "errors.log"
    n_blocks = (MAX_LOG_BYTES - 4096) // len(block)
    log.write_bytes(block * n_blocks)
    res = run_oace(["bench", "parse", log, "--json"], timeout=300)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert res.peak_rss_mb < 1500 and res.seconds < 240, (res.peak_rss_mb, res.seconds)
    assert len(res.stdout) < 50_000  # was 19 MB of JSON for a 100 MB log
    data = json.loads(res.stdout)
    total = 2000 * n_blocks
    assert data["status"] == "failed"
    assert len(data["errors"]) == MAX_LIST_ENTRIES and data["errors_omitted"] == total - MAX_LIST_ENTRIES
    assert data["errors"][-1] == lines[-1].strip()[len("ERROR: "):]  # the last error line is kept
    assert any(f"{total - MAX_LIST_ENTRIES} more entries omitted" in n for n in data["notes"])


@pytest.mark.slow
def test_text_handed_to_the_parser_is_read_at_its_head_and_tail_and_long_lines_are_cut():
    summary = "INFO: Inference timings in us: Init: 12500, First inference: 31000, Warmup (avg): 30500, Inference (avg): 30000\n"
    got = parse_benchmark_log("INFO: STARTING!\n" + "INFO: verbose line\n" * (MAX_LOG_BYTES // 19 + 1000) + summary)
    assert got["status"] == "ok" and got["inference_avg_ms"] == 30.0  # the summary at the end is read
    assert any(f"only the first and last {MAX_LOG_BYTES // 2} characters" in n for n in got["notes"])
    got = parse_benchmark_log("x" * (MAX_LOG_BYTES + 10))
    assert any("line(s) longer than" in n for n in got["notes"])
    many = parse_benchmark_log("count=3 first=1 curr=1 min=1 max=1 avg=1 std=0\n" * 200_000)
    assert many["runs"] is None or many["runs"] == 3  # the last two statistics lines decide, nothing grows


def test_pathological_lines_up_to_the_limit_parse_in_bounded_time(tmp_path):
    # lines built to make backtracking regexes quadratic (16k digits after a summary head, runs of
    # letters in a TF1 summary, whitespace in a logcat tag) and numbers no int() takes
    width = 16_000
    lines = [
        "Inference timings in us: Init: " + "1" * width,
        "Average inference timings in us: " + "a" * width,
        "Timings (microseconds): count=1 " + "1" * width,
        "05-30 15:16:44.857  3380  3380 I" + "\t" * width + "x",
        "Signature: [" + " " * width + "x",
        "Num threads: [" + "7" * width + "]",
        "Warmup (avg): 1.00 ms (" + "9" * width + " runs)",
        "count=" + "9" * width + " first=1 curr=1 min=1 max=1 avg=1 std=0",
    ]
    block = ("\n".join(lines) + "\n").encode()
    log = tmp_path / "evil.log"
    log.write_bytes(block * ((MAX_LOG_BYTES - 4096) // len(block)))
    res = run_oace(["bench", "parse", log, "--json"], timeout=300)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert res.seconds < 120 and res.peak_rss_mb < 1500, (res.seconds, res.peak_rss_mb)
    data = json.loads(res.stdout)
    assert data["status"] == "incomplete" and data["threads"] is None and data["runs"] is None
    assert any("numbers too long" in n for n in data["notes"])
