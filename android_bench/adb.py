"""The phone over `adb`: discovery, shell commands, pushes and device facts.

Drives the real `adb` binary through subprocess with argument lists and timeouts (never a host
shell). Every value put into an `adb shell` command string is quoted with `shlex.quote`; the only
unquoted shell text is this module's own constant scripts.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any, Sequence

from oace.artifacts import sha256_file
from oace.errors import ToolkitError

DEFAULT_TIMEOUT_S = 30.0
PUSH_TIMEOUT_S = 300.0
MAX_OUTPUT_BYTES = 64 << 20  # kept per stream of one adb command; a benchmark_model run prints kilobytes


def decode(data: bytes | str | None) -> str:
    """Device output as text, whatever its bytes: adb relays what the phone prints (vendor logs,
    binary garbage, truncated multi-byte characters); bytes that are not UTF-8 become U+FFFD."""
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")


class AdbError(ToolkitError):
    """adb is missing, no usable device, or the device stopped answering."""


@dataclasses.dataclass(frozen=True)
class DeviceEntry:
    serial: str
    state: str
    attrs: dict[str, str]


def find_adb(adb: str | None = None) -> str:
    """The adb executable to use: `adb` argument, else $ADB, else `adb` on PATH."""
    candidate = adb or os.environ.get("ADB") or "adb"
    path = shutil.which(candidate)
    if path is None:
        raise AdbError(
            f"adb not found ({candidate!r} is not an executable on PATH): install the Debian package `adb` "
            "(apt-get install adb) or Android platform-tools, or pass --adb PATH"
        )
    return path


class _CappedReader:
    """Reads one pipe to its end in a thread, keeping its first and last `limit // 2` bytes (a
    benchmark's summary comes last); what lies between is dropped and counted."""

    def __init__(self, pipe: Any, limit: int):
        self.head = bytearray()
        self.tail: collections.deque[bytes] = collections.deque()
        self.tail_size = self.dropped = 0
        self.half = limit // 2
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe: Any) -> None:
        with pipe:
            for chunk in iter(lambda: pipe.read1(1 << 16), b""):
                room = self.half - len(self.head)
                self.head += chunk[:room] if room > 0 else b""
                rest = chunk[room:] if room > 0 else chunk
                if rest:
                    self.tail.append(rest)
                    self.tail_size += len(rest)
                while self.tail and self.tail_size - len(self.tail[0]) >= self.half:
                    self.dropped += len(self.tail[0])
                    self.tail_size -= len(self.tail.popleft())

    def data(self, wait: float | None = None) -> bytes:
        """What was kept, once the pipe closed (or after `wait` seconds: a killed command's
        grandchildren may hold it open)."""
        self.thread.join(timeout=wait)
        tail = b"".join(list(self.tail))
        if not self.dropped:
            return bytes(self.head) + tail
        mark = f"\n[oace: {self.dropped} bytes of output dropped here (over {2 * self.half} bytes)]\n"
        return bytes(self.head) + mark.encode() + tail


def _run(argv: Sequence[str], timeout: float, what: str, limit: int = MAX_OUTPUT_BYTES) -> subprocess.CompletedProcess:
    """Run argv with a timeout, keeping at most `limit` bytes of its stdout and of its stderr (a
    runaway benchmark printing for minutes must not fill the host's memory)."""
    try:
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        raise AdbError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    out, err = _CappedReader(proc.stdout, limit), _CappedReader(proc.stderr, limit)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        exc = subprocess.TimeoutExpired(list(argv), timeout, output=out.data(wait=2), stderr=err.data(wait=2))
        raise AdbTimeout(f"{what} timed out after {timeout:g} s: {shlex.join(argv)}", exc) from None
    return subprocess.CompletedProcess(list(argv), code, out.data(), err.data())


class AdbTimeout(AdbError):
    """An adb command ran past its timeout; `partial_output` holds what it printed before."""

    def __init__(self, message: str, exc: subprocess.TimeoutExpired | None = None):
        super().__init__(message)
        out = b""
        if exc is not None:
            out = (exc.stdout or b"") + (exc.stderr or b"")
        self.partial_output = decode(out)
        self.partial_bytes = out


def adb_version(adb: str) -> str | None:
    """First two lines of `adb version` (protocol and package version), or None."""
    try:
        res = subprocess.run([adb, "version"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [ln.strip() for ln in decode(res.stdout).splitlines() if ln.strip()]
    return " / ".join(lines[:2]) or None


def list_devices(adb: str, timeout: float = DEFAULT_TIMEOUT_S) -> list[DeviceEntry]:
    """Parse `adb devices -l`: every attached device with its state (device/unauthorized/offline/...)."""
    res = _run([adb, "devices", "-l"], timeout, "listing devices")
    if res.returncode != 0:
        msg = decode(res.stderr or res.stdout).strip().splitlines()
        raise AdbError(f"`adb devices` failed (exit {res.returncode}): {msg[-1] if msg else 'no output'}")
    out = []
    for line in decode(res.stdout).splitlines():
        line = line.strip()
        if not line or line.startswith("List of devices") or line.startswith("*"):
            continue
        m = re.match(r"^(\S+)\s+(no permissions|unauthorized|offline|device|recovery|sideload|bootloader|host|authorizing|connecting|unknown)\b(.*)$", line)
        if not m:
            continue
        attrs = dict(kv.split(":", 1) for kv in m.group(3).split() if ":" in kv)
        out.append(DeviceEntry(serial=m.group(1), state=m.group(2), attrs=attrs))
    return out


def _state_error(entry: DeviceEntry) -> AdbError:
    s = entry.serial
    if entry.state == "unauthorized":
        return AdbError(f"device {s} is unauthorized: unlock the phone and accept the 'Allow USB debugging' prompt, then retry")
    if entry.state == "offline":
        return AdbError(f"device {s} is offline: reconnect the cable (or run `adb reconnect`) and retry")
    if entry.state == "no permissions":
        return AdbError(f"device {s}: no permissions to open the USB device: add a udev rule for it (or run adb as a user in plugdev)")
    return AdbError(f"device {s} is in state '{entry.state}', not 'device': boot it normally and retry")


def select_device(adb: str, serial: str | None = "auto", timeout: float = DEFAULT_TIMEOUT_S) -> str:
    """Pick the device to benchmark: `serial`, or with "auto"/None the only ready device.

    Raises AdbError for: no device, the named one missing, unauthorized, offline, several devices
    and no serial given.
    """
    entries = list_devices(adb, timeout)
    if serial and serial != "auto":
        for e in entries:
            if e.serial == serial:
                if e.state != "device":
                    raise _state_error(e)
                return e.serial
        listed = ", ".join(f"{e.serial} ({e.state})" for e in entries) or "none"
        raise AdbError(f"device {serial} is not connected (adb devices lists: {listed})")
    if not entries:
        raise AdbError(
            "no Android device found (`adb devices` lists none): connect the phone with USB debugging enabled, "
            "check `adb devices`, then retry"
        )
    if len(entries) > 1:
        listed = ", ".join(f"{e.serial} ({e.state})" for e in entries)
        raise AdbError(f"several devices are connected ({listed}): pass --serial SERIAL")
    if entries[0].state != "device":
        raise _state_error(entries[0])
    return entries[0].serial


_DEVICE_GONE = re.compile(
    r"error: (?:device '?[^']*'? not found|device offline|device unauthorized|closed|no devices/emulators found|"
    r"protocol fault|device still authorizing)",
    re.IGNORECASE,
)


@dataclasses.dataclass
class Device:
    """One ready device addressed by serial; every command is `adb -s SERIAL ...`."""

    adb: str
    serial: str
    timeout: float = DEFAULT_TIMEOUT_S

    def run(self, args: Sequence[str], timeout: float | None = None, what: str | None = None) -> subprocess.CompletedProcess:
        argv = [self.adb, "-s", self.serial, *args]
        return _run(argv, self.timeout if timeout is None else timeout, what or f"adb {args[0]} on {self.serial}")

    def _check_gone(self, res: subprocess.CompletedProcess) -> None:
        stdout = decode(res.stdout)
        text = stdout + decode(res.stderr)
        if res.returncode != 0 and _DEVICE_GONE.search(text):
            line = _DEVICE_GONE.search(text).group(0)
            raise DeviceGone(f"device {self.serial} stopped answering ({line}): check the cable and `adb devices`", stdout)

    def shell(self, argv: Sequence[str], timeout: float | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """Run one remote command given as an argument list; each argument is shell-quoted."""
        return self.shell_script(shlex.join(argv), timeout=timeout, check=check)

    def shell_script(self, script: str, timeout: float | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """Run a remote shell command string built by this package (quote any value you put in it)."""
        res = self.run(["shell", script], timeout=timeout, what=f"adb shell on {self.serial}")
        self._check_gone(res)
        if check and res.returncode != 0:
            out = decode((res.stdout or b"") + (res.stderr or b"")).strip().splitlines()
            raise AdbError(f"`{script}` failed on {self.serial} (exit {res.returncode}): {out[-1] if out else 'no output'}")
        return res

    def text(self, script: str, timeout: float | None = None) -> str:
        return decode(self.shell_script(script, timeout=timeout, check=False).stdout)

    # --- files ---------------------------------------------------------------------------------
    def remote_digest(self, remote: str) -> tuple[int | None, str | None]:
        """(size, sha256) of a remote file; (None, None) when absent, sha None when the device lacks sha256sum."""
        q = shlex.quote(remote)
        out = self.text(f"stat -c %s {q} 2>/dev/null && sha256sum {q} 2>/dev/null")
        lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
        if not lines or not lines[0].isdigit():
            return None, None
        size = int(lines[0])
        sha = lines[1].split()[0].lower() if len(lines) > 1 and re.match(r"^[0-9a-fA-F]{64}\b", lines[1]) else None
        return size, sha

    def push(self, local: str | Path, remote: str, timeout: float = PUSH_TIMEOUT_S) -> None:
        res = self.run(["push", str(local), remote], timeout=timeout, what=f"pushing {local} to {self.serial}")
        self._check_gone(res)
        if res.returncode != 0:
            out = decode((res.stdout or b"") + (res.stderr or b"")).strip().splitlines()
            raise AdbError(f"pushing {local} to {self.serial}:{remote} failed: {out[-1] if out else 'no output'}")

    def push_if_changed(self, local: str | Path, remote: str, executable: bool = False) -> bool:
        """Push `local` unless the remote file has the same size and sha256; return True if pushed."""
        local = Path(local)
        size, sha = self.remote_digest(remote)
        if size == local.stat().st_size and sha is not None and sha == sha256_file(local):
            return False
        self.push(local, remote)
        if executable:
            self.shell(["chmod", "755", remote])
        return True

    # --- facts ---------------------------------------------------------------------------------
    def getprops(self) -> dict[str, str]:
        out = self.text("getprop")
        return dict(re.findall(r"^\[([^\]]+)\]: \[([^\]]*)\]", out, flags=re.M))

    def cpu_layout(self) -> dict[str, Any]:
        out = self.text(
            "for c in /sys/devices/system/cpu/cpu[0-9]*; do "
            "f=$c/cpufreq/cpuinfo_max_freq; [ -r $f ] && echo ${c##*/} $(cat $f); done"
        )
        freqs: dict[int, int] = {}
        for m in re.finditer(r"^cpu(\d+) (\d+)\s*$", out, flags=re.M):
            freqs[int(m.group(1))] = int(m.group(2))
        clusters: dict[int, list[int]] = {}
        for cpu, khz in sorted(freqs.items()):
            clusters.setdefault(khz, []).append(cpu)
        # "big" = every core outside the slowest cluster (prime + performance cores), all cores if one cluster
        slow = min(clusters) if len(clusters) > 1 else None
        big = sorted(c for khz, cpus in clusters.items() if khz != slow for c in cpus)
        return {
            "cores": len(freqs) or None,
            "max_freq_khz": {str(k): v for k, v in sorted(freqs.items())},
            "clusters": [{"cpus": cpus, "max_mhz": khz / 1000} for khz, cpus in sorted(clusters.items())],
            "big_cores": big,
            "big_core_mask": format(sum(1 << c for c in big), "x") if big else None,
        }

    def temperatures(self) -> dict[str, Any]:
        """Battery temperature (dumpsys battery) and the hottest thermal zone, in deg C."""
        battery = None
        m = re.search(r"^\s*temperature:\s*(-?\d+)", self.text("dumpsys battery"), flags=re.M)
        if m:
            battery = int(m.group(1)) / 10.0
        zones: dict[str, float] = {}
        out = self.text(
            "for z in /sys/class/thermal/thermal_zone*; do "
            "echo \"$(cat $z/type 2>/dev/null) $(cat $z/temp 2>/dev/null)\"; done"
        )
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and re.match(r"^-?\d+$", parts[1]):
                v = int(parts[1])
                zones[parts[0]] = v / 1000.0 if abs(v) >= 1000 else float(v)
        hottest = max(zones.items(), key=lambda kv: kv[1]) if zones else None
        return {
            "battery_c": battery,
            "thermal_max_c": hottest[1] if hottest else None,
            "thermal_max_zone": hottest[0] if hottest else None,
        }

    def facts(self) -> dict[str, Any]:
        props = self.getprops()
        soc = props.get("ro.soc.model") or props.get("ro.board.platform") or None
        return {
            "serial": self.serial,
            "model": props.get("ro.product.model"),
            "manufacturer": props.get("ro.product.manufacturer"),
            "soc": soc,
            "soc_source": "ro.soc.model" if props.get("ro.soc.model") else ("ro.board.platform" if soc else None),
            "android_version": props.get("ro.build.version.release"),
            "sdk": props.get("ro.build.version.sdk"),
            "abi": props.get("ro.product.cpu.abi"),
            "build_fingerprint": props.get("ro.build.fingerprint"),
            "cpu": self.cpu_layout(),
        }


class DeviceGone(AdbError):
    """The device vanished (unplugged, offline, unauthorized) in the middle of the work.

    `partial_output` is what the remote command printed before (adb's own error is in the message)."""

    def __init__(self, message: str, output: str = ""):
        super().__init__(message)
        self.partial_output = output
