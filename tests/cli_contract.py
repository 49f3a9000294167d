"""The CLI's promise for bad input, checked from outside: run `oace ...` as a user would and assert
exit code 2, exactly one line on stderr naming the file or flag, no traceback, no signal, bounded
memory (peak RSS of the process, from wait4) and time, and nothing left at final paths.

Every hardening test (tests/test_hardening_*.py) goes through `run_oace` and `assert_refused`.
"""

from __future__ import annotations

import os
import resource
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


def _cap_memory() -> None:  # runs in the child before exec
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_CAP, ADDRESS_SPACE_CAP))


def run_oace(args: list[str], *, timeout: float = 300, cwd: str | os.PathLike | None = None,
             env: dict[str, str] | None = None, stdin: bytes | None = None) -> CliResult:
    """Run `python -m oace.cli ARGS` in a child process; returns its exit code, output, peak RSS, time.

    A child still running after `timeout` seconds is killed and the call raises AssertionError
    (a hang is a failure of the contract, not of the harness).
    """
    cmd = [sys.executable, "-m", "oace.cli", *[str(a) for a in args]]
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                cwd=cwd or REPO, env=full_env, preexec_fn=_cap_memory)
        if stdin is not None:
            proc.stdin.write(stdin)
            proc.stdin.close()
        status, usage = _wait(proc, timeout, start)
        seconds = time.monotonic() - start
        out.seek(0), err.seek(0)
        stdout, stderr = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    return CliResult(code, stdout, stderr, usage.ru_maxrss / 1024.0, seconds)


def _wait(proc: subprocess.Popen, timeout: float, start: float):
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = 0  # reaped here: keep Popen from waiting on it again
            return status, usage
        if time.monotonic() - start > timeout:
            proc.kill()
            os.wait4(proc.pid, 0)
            proc.returncode = -9
            raise AssertionError(f"oace {' '.join(map(str, proc.args[3:]))}: still running after {timeout:.0f} s (hang)")
        time.sleep(0.05)


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
