"""The models an app compares: which to open by default, their display names, one lock each.

A backend (model/backends.py) is not safe to call from two threads at once (a TFLite interpreter
has one set of tensors), and a Gradio server runs events on a thread pool: every call goes through
`LoadedModel.lock`.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Sequence

from oace.model.backends import Backend
from oace.model.evaluate import open_for_eval
from oace.model.reference import resolve_checkpoint
from oace.errors import CheckpointError, InputError

DEMO_DIR = Path("runs/demo")
DEMO_BUNDLES = ("oace_segmenter_fp32.tflite", "oace_segmenter_int8.tflite")
MAX_MODELS = 4


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    name: str  # short, unique in the app: the file name (or `reference`)
    path: str  # what was asked for: a path or the word `reference`
    backend: Backend
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, compare=False, repr=False)


def default_models(demo_dir: Path = DEMO_DIR) -> tuple[list[str], str]:
    """(paths, why): the main job's fp32 + int8 bundles when `make demo` wrote them, else the reference."""
    bundles = [demo_dir / name for name in DEMO_BUNDLES if (demo_dir / name).is_file()]
    if bundles:
        return [str(p) for p in bundles], f"the main job's bundles in {demo_dir}"
    return ["reference"], f"the reference checkpoint (no bundles in {demo_dir}: run `make demo` to compare them)"


def _unique_name(path: str, taken: Sequence[str]) -> str:
    base = Path(path).name  # `reference` stays `reference`
    name, i = base, 2
    while name in taken:
        name, i = f"{base} ({i})", i + 1
    return name


class ModelSet:
    """The server's models, in order; more can be added while it runs (the page's model upload)."""

    def __init__(self, num_threads: int | None = None) -> None:
        self.num_threads = num_threads
        self._models: list[LoadedModel] = []
        self._lock = threading.Lock()

    def add(self, path: str, name: str | None = None) -> LoadedModel:
        """Open a checkpoint, `reference` or .tflite; CheckpointError/InputError when it breaks the contract."""
        if len(self._models) >= MAX_MODELS:
            raise InputError(f"at most {MAX_MODELS} models at once; restart `oace app` to change the set")
        # oace eval's opening: refuses a part (prior, bare MSFNet) and non-finite weights or outputs
        backend = open_for_eval(Path(resolve_checkpoint(str(path))), self.num_threads)
        with self._lock:
            model = LoadedModel(name or _unique_name(str(path), [m.name for m in self._models]), str(path), backend)
            self._models.append(model)
        return model

    def all(self) -> list[LoadedModel]:
        with self._lock:
            return list(self._models)

    def get(self, key: str) -> LoadedModel:
        """By name (the file name, with or without `.tflite`) or 0-based index as a string; "" = the first."""
        models = self.all()
        if not models:
            raise CheckpointError("no model is loaded")
        key = (key or "").strip()
        if key == "":
            return models[0]
        if key.isdigit():
            if int(key) < len(models):
                return models[int(key)]
        else:
            for m in models:
                if key in (m.name, Path(m.name).stem, m.path, m.backend.name):
                    return m
        names = ", ".join(f"{i}: {m.name}" for i, m in enumerate(models))
        raise InputError(f"model {key!r}: not loaded; give a name or an index ({names})")


def open_models(paths: Sequence[str], num_threads: int | None = None) -> ModelSet:
    models = ModelSet(num_threads)
    for path in paths:
        models.add(path)
    return models
