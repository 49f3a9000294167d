"""The CLI's promise for bad input, checked from outside: run `oace ...` as a user would and assert
exit code 2, exactly one line on stderr naming the file or flag, no traceback, no signal, bounded
memory (peak RSS of the process, from wait4) and time, and nothing left at final paths.

Every hardening test (tests/test_hardening_*.py) goes through `run_oace` and `assert_refused`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# a hard address-space cap for the child: a runaway allocation fails inside it instead of taking the
# machine down (TensorFlow and torch reserve a few GB of virtual memory at import; 12 GB leaves room)
ADDRESS_SPACE_CAP = 12 << 30


@dataclass(frozen=True)
class CliResult:
    returncode: int  # negative: killed by that signal
    stdout: str
    stderr: str
    peak_rss_mb: float
    seconds: float

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


# The child is started by a small launcher (a fresh `python -c`), not forked from pytest directly:
# Linux counts a process's peak RSS from before its exec, so a child forked from a pytest process
# that has grown to 3 GB would report a 3 GB peak whatever it did. The launcher is small when it
# forks; it caps the address space, runs the command, and writes the command's wait status and
# peak RSS (wait4) to a file.
_LAUNCHER = """
import json, os, resource, subprocess, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])))
proc = subprocess.Popen(sys.argv[3:])
_, status, usage = os.wait4(proc.pid, 0)
proc.returncode = 0
with open(sys.argv[1] + ".tmp", "w") as f:
    json.dump({"status": status, "maxrss_kb": usage.ru_maxrss}, f)
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
"""


def run_oace(args: list[str], *, timeout: float = 300, cwd: str | os.PathLike | None = None,
             env: dict[str, str] | None = None, stdin: bytes | None = None) -> CliResult:
    """Run `python -m oace.cli ARGS` in a child process; returns its exit code, output, peak RSS, time.

    A child still running after `timeout` seconds is killed and the call raises AssertionError
    (a hang is a failure of the contract, not of the harness).
    """
    cmd = [sys.executable, "-m", "oace.cli", *[str(a) for a in args]]
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        result_file = os.path.join(tmp, "wait4.json")
        launcher = [sys.executable, "-I", "-c", _LAUNCHER, result_file, str(ADDRESS_SPACE_CAP), *cmd]
        start = time.monotonic()
        proc = subprocess.Popen(launcher, stdout=out, stderr=err, cwd=cwd or REPO, env=full_env, start_new_session=True,
                                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL)
        if stdin is not None:
            proc.stdin.write(stdin)
            proc.stdin.close()
        _wait(proc, timeout, cmd)
        seconds = time.monotonic() - start
        with open(result_file) as f:
            waited = json.load(f)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
    status = waited["status"]
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    return CliResult(code, stdout, stderr, waited["maxrss_kb"] / 1024.0, seconds)


def _wait(proc: subprocess.Popen, timeout: float, cmd: list[str]) -> None:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and the command it runs
        proc.wait()
        raise AssertionError(f"oace {' '.join(cmd[3:])}: still running after {timeout:.0f} s (hang)") from None
    assert proc.returncode == 0, f"the launcher failed (exit {proc.returncode})"


def assert_refused(result: CliResult, *names: str, max_rss_mb: float = 3000, max_seconds: float = 120) -> str:
    """Exit 2, one line on stderr that contains every one of `names` (the file, the flag), no
    traceback, no signal, bounded memory and time. Returns the line."""
    assert result.returncode >= 0, f"killed by signal {-result.returncode}; stderr: {result.stderr[-2000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 2, f"exit {result.returncode}, expected 2; stderr: {result.stderr[-2000:]}"
    lines = result.stderr_lines
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {lines[:10]}"
    for name in names:
        assert str(name) in lines[0], f"{name!r} not named in: {lines[0]}"
    assert result.peak_rss_mb <= max_rss_mb, f"peak RSS {result.peak_rss_mb:.0f} MB > {max_rss_mb} MB"
    assert result.seconds <= max_seconds, f"took {result.seconds:.0f} s > {max_seconds} s"
    return lines[0]


def final_paths(root: str | os.PathLike) -> list[Path]:
    """Every file under root that is not a temp file (temp names start with '.' or end in '.tmp'/'.partial')."""
    out = []
    for p in Path(root).rglob("*"):
        if p.is_file() and not (p.name.startswith(".") or p.name.endswith((".tmp", ".partial"))):
            out.append(p)
    return sorted(out)
