"""Is a SavedModel folder intact enough to hand to TensorFlow? Checked without importing TensorFlow.

`saved_model.pb` is read as protobuf wire format: every field of the SavedModel and of each
MetaGraphDef must be framed within the file (a truncated or bit-flipped file is not), and some meta
graph must hold the bundle's signature. `variables/variables.index` must end in the table magic
number (a truncated index does not). Deeper damage (inside the graph or the variable data) is left
to TensorFlow's loader, whose errors quantize turns into one line too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from oace.errors import InputError

TABLE_MAGIC = (0xDB4775248B80FB57).to_bytes(8, "little")  # LevelDB/TensorFlow table footer
SAVED_MODEL_META_GRAPHS = 2  # SavedModel.meta_graphs
META_GRAPH_SIGNATURE_DEF = 5  # MetaGraphDef.signature_def (map entries: key = 1, value = 2)


class WireError(ValueError):
    """Protobuf bytes that do not frame."""


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= end or shift > 63:
            raise WireError(f"varint runs past byte {end}")
        b = buf[pos]
        value |= (b & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not b & 0x80:
            return value, pos


def fields(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value start, value end) of every field in buf[start:end]."""
    pos = start
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise WireError(f"field number 0 at byte {pos}")
        if wire == 0:
            _, nxt = _varint(buf, pos, end)
        elif wire in (1, 5):
            nxt = pos + (8 if wire == 1 else 4)
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            nxt = pos + length
        else:
            raise WireError(f"wire type {wire} at byte {pos}")
        if nxt > end:
            raise WireError(f"field {number} runs past byte {end}")
        yield number, wire, pos, nxt
        pos = nxt


def signature_keys(buf: bytes) -> list[str]:
    """Signature names of every meta graph; raises WireError when the framing is broken."""
    keys = []
    for number, wire, s, e in fields(buf, 0, len(buf)):
        if number != SAVED_MODEL_META_GRAPHS or wire != 2:
            continue
        for n2, w2, s2, e2 in fields(buf, s, e):
            if n2 == META_GRAPH_SIGNATURE_DEF and w2 == 2:
                for n3, w3, s3, e3 in fields(buf, s2, e2):
                    if n3 == 1 and w3 == 2:
                        keys.append(buf[s3:e3].decode("utf-8", "replace"))
    return sorted(set(keys))


def check_saved_model(saved_model_dir: str | os.PathLike, signature: str) -> Path:
    """The folder, when saved_model.pb frames and holds `signature` and the variables index is whole;
    else a one-line InputError naming the file."""
    folder = Path(saved_model_dir)
    pb = folder / "saved_model.pb"
    if not pb.is_file():
        raise InputError(f"{folder}: not a SavedModel folder (no saved_model.pb); run `oace export` first")
    try:
        keys = signature_keys(pb.read_bytes())
    except WireError as exc:
        raise InputError(f"{pb}: corrupt SavedModel (saved_model.pb does not parse: {exc})") from None
    if signature not in keys:
        raise InputError(f"{pb}: corrupt or foreign SavedModel (no signature {signature!r}; found {keys or 'none'})")
    index = folder / "variables" / "variables.index"
    if index.exists():
        with open(index, "rb") as f:
            f.seek(max(0, index.stat().st_size - 8))
            if index.stat().st_size < 48 or f.read(8) != TABLE_MAGIC:
                raise InputError(f"{index}: corrupt SavedModel variables (truncated: no table footer)")
    return folder
