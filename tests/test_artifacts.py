"""Atomic writes: all or nothing at the final path, with ordinary file permissions."""

from __future__ import annotations

import os
import stat

import pytest

from oace.artifacts import Artifact, atomic_path, sha256_file, write_json_atomic, write_text_atomic


def test_a_failed_writer_leaves_neither_the_file_nor_a_temp(tmp_path):
    target = tmp_path / "bundle.tflite"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half a model")
            raise RuntimeError("killed mid-write")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_a_failed_rewrite_keeps_the_previous_file(tmp_path):
    target = write_text_atomic(tmp_path / "report.md", "old")
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            tmp.write_text("new but broken")
            raise ValueError
    assert target.read_text() == "old"


def test_written_files_get_umask_permissions_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_json_atomic(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_artifact_records_size_and_hash(tmp_path):
    path = write_text_atomic(tmp_path / "x.txt", "hello")
    art = Artifact.of(path, 0.5, {"torch": "2.13.0"})
    assert art.bytes == 5 and art.sha256 == sha256_file(path)
    assert art.sha256 == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert art.to_json()["path"] == str(path)
