"""Training state files (last.pt / best.pt): weights, optimizer, epoch, RNG, history and the run's
settings, as plain data readable with weights_only=True; written atomically, so a run killed at any
moment resumes from its last finished epoch, with the same settings only."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from oace.model.train_config import PATH_SETTINGS, TrainConfig
from oace.model.train_data import parse_specs
from oace.model.train_dist import rng_state
from oace.artifacts import atomic_path
from oace.errors import CheckpointError, InputError

STATE_FORMAT = "oace-train-state/1"
# fields that may change between a run and its resumption
RESUMABLE_CHANGES = ("epochs", "workers", "progress", "resume", "max_minutes")


@dataclasses.dataclass
class RunRecord:
    """What a run has done: one row per finished epoch, the best epoch so far, the epoch to start
    from, the crops its weights have seen (over their whole history: fine-tuning continues the
    count) and the --init report."""

    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    best: dict[str, Any] | None = None
    start: int = 0
    crops_seen: int = 0
    init_report: Any = None


def training_state(cfg: TrainConfig, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                   scaler: torch.amp.GradScaler | None, record: RunRecord) -> dict[str, Any]:
    """The state after `epoch` (1-based) epochs, as last.pt holds it."""
    return {
        "format": STATE_FORMAT, "config": dataclasses.asdict(cfg), "stage": cfg.stage, "epoch": epoch,
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {}, "rng": rng_state(),
        "history": record.history, "best": record.best, "init": record.init_report,
    }


def resume_state(cfg: TrainConfig, path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                 scaler: torch.amp.GradScaler | None) -> RunRecord:
    """Load the state at `path` into model, optimizer and scaler (after checking that it was trained
    with cfg's settings); returns its record."""
    state = load_state(path)
    check_resumable(state["config"], cfg, path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    history = list(state["history"])
    crops_seen = int(history[-1].get("crops_seen", 0)) if history else 0
    return RunRecord(history, state["best"], int(state["epoch"]), crops_seen, state.get("init"))


def save_state(state: dict[str, Any], path: Path) -> Path:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_state(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise CheckpointError(f"{path}: not a readable training state ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not an oace training state ({STATE_FORMAT})")
    return state


def check_resumable(saved: dict[str, Any], cfg: TrainConfig, path: Path) -> None:
    """Refuse a resume whose settings differ from the run's. Paths compare by what they name, not by
    their spelling (a trailing slash, ./, an absolute path); `out` not at all: the run is the folder
    holding `path`, wherever it was moved since."""
    now = dataclasses.asdict(cfg)
    diff = [k for k in now if k not in RESUMABLE_CHANGES and k != "out" and not _same_setting(k, saved.get(k), now[k])]
    if diff:
        k = diff[0]
        raise InputError(f"{path}: was trained with {k}={saved.get(k)!r}, not {now[k]!r}; resume with the same settings")


def _same_setting(key: str, saved: Any, now: Any) -> bool:
    if saved == now:
        return True
    if not (isinstance(saved, str) and isinstance(now, str)):
        return False
    if key == "data":
        a, b = parse_specs(saved), parse_specs(now)
        return len(a) == len(b) and all(x.kind == y.kind and _same_path(x.path, y.path) for x, y in zip(a, b))
    return key in PATH_SETTINGS and _same_path(saved, now)


def _same_path(a: str, b: str) -> bool:
    """Two spellings of one file or folder (names such as `reference_v1` compare as text)."""
    if os.path.normpath(a) == os.path.normpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
