"""Artifacts on disk: atomic writes and the record every pipeline step returns."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import glob
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from oace.errors import InputError, ToolkitError


@dataclasses.dataclass(frozen=True)
class Artifact:
    """A file a pipeline step produced: where it is, what it is, and what made it."""

    path: Path
    bytes: int
    sha256: str
    seconds: float
    versions: dict[str, str]

    @classmethod
    def of(cls, path: str | os.PathLike, seconds: float, versions: dict[str, str]) -> "Artifact":
        p = Path(path)
        return cls(path=p, bytes=p.stat().st_size, sha256=sha256_file(p), seconds=seconds, versions=versions)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["path"] = str(self.path)
        return d


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`, on failure delete it.

    A failed or killed writer therefore never leaves a file at the final path.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temp_files(final)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.{os.getpid()}-", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes 0600 files; give the result the mode open() would have
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, final)
    except Exception as exc:
        _raise_storage_error(exc, final, tmp_path)
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _raise_storage_error(exc: Exception, final: Path, tmp: Path) -> None:
    """Name the final path (not the temp file) in a storage OSError; a writer that is not Python's
    file API (torch.save to a path raises RuntimeError) on a filesystem left with no free block is
    reported as the full disk it is."""
    if isinstance(exc, OSError):
        if exc.errno in STORAGE_ERRORS and exc.filename in (None, str(tmp)):
            raise OSError(exc.errno, os.strerror(exc.errno), str(final)) from exc
        return
    if not isinstance(exc, RuntimeError):
        return
    try:
        full = os.statvfs(final.parent).f_bavail == 0
    except OSError:
        return
    if full:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(final)) from exc


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if hasattr(o, "tolist"):  # numpy scalars and arrays
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


# --- whole folders: build privately, publish at once (docs/limits.md, "Atomic artifacts") ---------
# A folder `final` is built in its sibling `.<name>.partial-<pid>` and swapped in by one rename
# (renameat2 RENAME_EXCHANGE where the kernel has it, else two renames with a moment where `final`
# is absent, never half-written). A killed run leaves only hidden siblings, which the next run removes.
STAGING_KINDS = ("partial", "old")


def clean_stale_temp_files(final: str | os.PathLike) -> list[Path]:
    """Remove `atomic_path` temp files of `final` (`.<name>.<pid>-XXXX.tmp`) whose writer is dead."""
    final = Path(final)
    removed = []
    for p in final.parent.glob(f".{glob.escape(final.name)}.*-*.tmp"):
        pid = p.name[len(final.name) + 2:].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)) and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def staging_name(final: str | os.PathLike, kind: str = "partial", pid: int | None = None) -> Path:
    final = Path(final)
    return final.with_name(f".{final.name}.{kind}-{os.getpid() if pid is None else pid}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child its parent has not reaped yet is a zombie: dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def clean_stale_staging(final: str | os.PathLike) -> list[Path]:
    """Remove the staging siblings of `final` that dead runs left behind; returns what was removed."""
    final = Path(final)
    removed = []
    if not final.parent.is_dir():
        return removed
    for kind in STAGING_KINDS:
        for p in final.parent.glob(f".{glob.escape(final.name)}.{kind}-*"):
            pid = p.name.rsplit("-", 1)[1]
            if pid.isdigit() and (int(pid) == os.getpid() or not _pid_alive(int(pid))):
                _remove(p)
                removed.append(p)
    return removed


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


@contextlib.contextmanager
def staged_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh private folder beside `final` (stale ones of dead runs are removed first); the
    caller fills it and calls `publish_dir(work, final)`. On an exception the folder is deleted."""
    final = Path(final)
    if final.exists() and not final.is_dir():
        raise ToolkitError(f"{final}: exists and is not a folder")
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_staging(final)
    work = staging_name(final)
    try:
        work.mkdir()
    except OSError as exc:
        raise ToolkitError(f"{final}: cannot build it beside itself in {work.parent} ({exc.strerror or exc})") from None
    try:
        yield work
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def publish_dir(work: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Put the finished folder `work` at `final` in one step, replacing a previous one."""
    work, final = Path(work), Path(final)
    if not final.exists():
        os.rename(work, final)
        return final
    if _exchange(work, final):  # `work` now holds the previous folder
        shutil.rmtree(work, ignore_errors=True)
        return final
    old = staging_name(final, "old")
    os.rename(final, old)
    os.rename(work, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with renameat2(RENAME_EXCHANGE); False where unsupported."""
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


# --- output paths: one check before any work starts (docs/limits.md, "Output paths") -------------
# errno -> what to tell the user; these are the storage errors the CLI reports on one line
STORAGE_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for this filesystem or the file-size limit",
    errno.EROFS: "read-only filesystem",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENAMETOOLONG: "name longer than the filesystem allows",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "a file is in the way",
    errno.ENOENT: "a folder on the way cannot be created",
    errno.EIO: "input/output error",
}


# the storage errors only a write can meet: the CLI reports these on one line wherever they happen
WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


def storage_error(exc: OSError) -> str | None:
    """One line for an OSError only a write can raise (full disk, quota, file size, read-only), None
    for any other (those are programming errors or belong to a ToolkitError of their own)."""
    if exc.errno not in WRITE_ERRORS:
        return None
    reason = STORAGE_ERRORS[exc.errno]
    where = exc.filename if exc.filename is not None else "output"
    return f"{where}: cannot write ({reason})"


def check_output_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Create the output folder `path` and prove it is writable (a probe file is written, fsynced and
    removed), before any work starts. Every failure is one InputError naming the flag, path and reason."""
    p = Path(path)
    if str(path) == "":
        raise InputError(f"{flag} is empty: give an output folder")
    try:
        if p.exists() and not p.is_dir():
            raise InputError(f"{flag} {p}: is a file, not a folder")
        p.mkdir(parents=True, exist_ok=True)
        _probe(p, ".oace-write-probe")
    except OSError as exc:
        raise InputError(f"{flag} {p}: cannot write there ({_reason(exc)})") from None
    return p


def check_output_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """check_output_dir for the folder of an output file, plus: `path` is not a folder, and its name
    (and the temporary name it is written under) fits the filesystem."""
    p = Path(path)
    if str(path) == "" or p.name in ("", ".", ".."):
        raise InputError(f"{flag} {str(path)!r}: give an output file path")
    try:
        if p.is_dir():
            raise InputError(f"{flag} {p}: is a folder; give a file path")
    except OSError as exc:
        raise InputError(f"{flag} {p}: cannot write there ({_reason(exc)})") from None
    check_output_dir(p.parent, flag)
    try:
        _probe(p.parent, f".{p.name}.{os.getpid()}-")  # the name atomic_path writes under: as long as any we use
    except OSError as exc:
        raise InputError(f"{flag} {p}: cannot write there ({_reason(exc)})") from None
    return p


def _probe(folder: Path, prefix: str, size: int = 4096) -> None:
    """Write `size` bytes (one filesystem block) to a hidden file in `folder`, fsync, remove it."""
    fd, probe = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:  # a buffered file retries short writes, then raises the error
            f.write(b"\0" * size)
            f.flush()
            os.fsync(f.fileno())
    finally:
        os.unlink(probe)


def _reason(exc: OSError) -> str:
    return STORAGE_ERRORS.get(exc.errno) or exc.strerror or type(exc).__name__
