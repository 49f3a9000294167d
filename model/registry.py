"""Names -> networks, and self-describing checkpoints.

A checkpoint is `{"arch", "config", "state_dict", "meta"}` (RITM's habit: it carries what built the
model), so `load_model(path)` rebuilds any registered network with nothing else (`load_model_with_meta`
also returns the checkpoint's `meta`, as a `LoadedCheckpoint` record). Files are read
with `torch.load(..., weights_only=True)` and written atomically.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import types
import typing
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from oace.model.hrnet import HRNetConfig
from oace.model.msfnet import MSFNet, MSFNetConfig, build_msfnet
from oace.model.prior import OACEPrior, PriorConfig, build_prior
from oace.model.reference import resolve_checkpoint
from oace.model.segmenter import Segmenter, SegmenterConfig, build_segmenter
from oace import __version__
from oace.artifacts import atomic_path
from oace.errors import CheckpointError, InputError, ToolkitError

# arch name -> (config class, builder, module class)
ARCHITECTURES: dict[str, tuple[type, Callable[[Any], nn.Module], type[nn.Module]]] = {
    "prior": (PriorConfig, build_prior, OACEPrior),
    "msfnet": (MSFNetConfig, build_msfnet, MSFNet),
    "segmenter": (SegmenterConfig, build_segmenter, Segmenter),
}

_TINY_HRNET = HRNetConfig(
    stem_width=16, stage1_blocks=1, stage1_width=8, widths=(8, 16, 24, 32), stage_modules=(1, 1, 1), blocks_per_branch=1
)
_TINY_PRIOR = PriorConfig(backbone=dataclasses.replace(_TINY_HRNET, in_channels=4), decoder_widths=(24, 16, 8), embed_dim=8)
_TINY_MSFNET = MSFNetConfig(backbone=_TINY_HRNET, guidance_channels=9, msf_width=16, msf_blocks=1, head_widths=(16, 16, 8),
                             refiner_width=8, refiner_dilations=(1, 2))


@dataclasses.dataclass(frozen=True)
class Preset:
    arch: str
    config: Any
    summary: str


PRESETS: dict[str, Preset] = {
    "prior": Preset("prior", PriorConfig(), "OACE prior: HRNetV2-W18-Small-v2 + 3-block decoder -> 16-d embedding"),
    "msfnet": Preset(
        "msfnet", MSFNetConfig(guidance_channels=17, refiner_width=64),
        "MSFNet guided by OACE + first-click disk (shipped): HRNet-W18, late fusion, MSF, click refiner"
    ),
    "msfnet_oace": Preset("msfnet", MSFNetConfig(), "ablation: MSFNet guided by OACE only (the paper's model exactly)"),
    "msfnet_disk": Preset(
        "msfnet", MSFNetConfig(guidance_channels=1), "ablation 'MSFNet': MSF module, click-disk input, no OACE"
    ),
    "baseline": Preset(
        "msfnet", MSFNetConfig(guidance_channels=1, use_msf=False), "ablation 'Baseline': no MSF module, click disk"
    ),
    "segmenter": Preset(
        "segmenter",
        SegmenterConfig(msfnet=MSFNetConfig(guidance_channels=17, refiner_width=64), disk_guidance=True),
        "the bundle: prior -> MSFNet guided by OACE + first-click disk, click refiner; uint8 NHWC in, probabilities out",
    ),
    "segmenter_oace": Preset(
        "segmenter", SegmenterConfig(), "ablation: the paper's chain exactly, MSFNet guided by the OACE embedding alone"
    ),
    "segmenter_disk": Preset(
        "segmenter",
        SegmenterConfig(prior=None, msfnet=MSFNetConfig(guidance_channels=1)),
        "bundle of the 'MSFNet with click disk' ablation (no prior)",
    ),
    "segmenter_baseline": Preset(
        "segmenter",
        SegmenterConfig(prior=None, msfnet=MSFNetConfig(guidance_channels=1, use_msf=False)),
        "bundle of the 'Baseline' ablation (no prior, no MSF)",
    ),
    "segmenter_tiny": Preset(
        "segmenter",
        SegmenterConfig(prior=_TINY_PRIOR, msfnet=_TINY_MSFNET, disk_guidance=True),
        "test-size segmenter (same graph, tiny widths) for fast pipeline checks; not for real use",
    ),
}


def build(arch: str, config: Any, *, seed: int | None = 0) -> nn.Module:
    """Build a network of a registered architecture from its config, seeded without touching global RNG."""
    if arch not in ARCHITECTURES:
        raise ToolkitError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    _, builder, _ = ARCHITECTURES[arch]
    if seed is None:
        return builder(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builder(config)


def build_model(name: str, *, seed: int | None = 0) -> nn.Module:
    """Build a registered preset by name (see PRESETS), with seeded initial weights."""
    if name not in PRESETS:
        raise ToolkitError(f"unknown model {name!r}; known: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    return build(preset.arch, preset.config, seed=seed)


def arch_of(model: nn.Module) -> str:
    for arch, (_, _, cls) in ARCHITECTURES.items():
        if type(model) is cls:
            return arch
    raise ToolkitError(f"{type(model).__name__} is not a registered architecture")


# ---------------------------------------------------------------- configs <-> plain data


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a (nested) frozen config dataclass from plain data; unknown fields are an error."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    return cls(**{name: _coerce(hints[name], value) for name, value in data.items()})


def _coerce(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
        origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return config_from_dict(tp, value)
    if origin is tuple:
        return tuple(value)
    return value


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(
    model: nn.Module, path: str | os.PathLike, *, meta: dict[str, Any] | None = None, half: bool = False
) -> Path:
    """Write `{arch, config, state_dict, meta}` atomically. half=True stores float tensors as fp16."""
    from oace.reports import git_sha

    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone() for k, v in model.state_dict().items()}
    record = {
        "arch": arch_of(model),
        "config": config_to_dict(model.cfg),
        "state_dict": state,
        "meta": {
            "toolkit_version": __version__,
            "git_sha": git_sha(),
            "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "dtype": "float16" if half else "float32",
            **(meta or {}),
        },
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: a full disk raises OSError, not RuntimeError
        torch.save(record, f)
    return Path(path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a checkpoint record; every failure is a one-line CheckpointError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint file")
    try:
        record = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{p}: not a readable checkpoint ({type(exc).__name__}: {reason[:200]})") from None
    if not isinstance(record, dict):
        raise CheckpointError(f"{p}: expected a dict with arch/config/state_dict/meta, got {type(record).__name__}")
    missing = [k for k in ("arch", "config", "state_dict") if k not in record]
    if missing:
        raise CheckpointError(f"{p}: not a toolkit checkpoint, missing key(s) {', '.join(missing)}")
    if record["arch"] not in ARCHITECTURES:
        raise CheckpointError(f"{p}: unknown architecture {record['arch']!r}; known: {', '.join(ARCHITECTURES)}")
    return record


@dataclasses.dataclass(frozen=True)
class LoadedCheckpoint:
    """A network rebuilt from a checkpoint, and the checkpoint's `meta` record (a copy: weights
    description, model_version, crops_seen, toolkit_version, ...; empty when it has none)."""

    model: nn.Module
    meta: dict[str, Any]


def load_model(path: str | os.PathLike, *, eval_mode: bool = True) -> nn.Module:
    """Rebuild the network a checkpoint describes and load its weights (fp16 weights become fp32)."""
    return load_model_with_meta(path, eval_mode=eval_mode).model


def load_model_with_meta(path: str | os.PathLike, *, eval_mode: bool = True) -> LoadedCheckpoint:
    """`load_model`, with the checkpoint's meta record alongside the network."""
    record = load_checkpoint(path)
    config_cls = ARCHITECTURES[record["arch"]][0]
    try:
        config = config_from_dict(config_cls, record["config"])
        model = build(record["arch"], config, seed=None)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: config does not describe a {record['arch']}: {exc}") from None
    state = record["state_dict"]
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not match the config: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    bad = [k for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if bad:
        k = bad[0]
        raise CheckpointError(
            f"{path}: {len(bad)} weight(s) have the wrong shape, e.g. {k}: {list(state[k].shape)} "
            f"vs {list(expected[k].shape)}"
        )
    model.load_state_dict(state)
    return LoadedCheckpoint(model.eval() if eval_mode else model, dict(record.get("meta") or {}))


def load_segmenter(checkpoint: str | None, preset: str | None) -> tuple[nn.Module, str, str]:
    """(model, weights description, model version) from a checkpoint (`reference`: the shipped one)
    or a seeded preset."""
    if checkpoint is not None and not checkpoint.strip():
        raise InputError("--checkpoint is empty: give a segmenter checkpoint (.pt) or `reference`")
    if checkpoint:
        checkpoint = resolve_checkpoint(checkpoint)
        loaded = load_model_with_meta(checkpoint)
        model, meta = loaded.model, loaded.meta
        return model, f"checkpoint {checkpoint} ({meta.get('weights', 'no description')})", meta.get("model_version", "unversioned")
    return build_model(preset, seed=0), f"UNTRAINED: seeded random weights of preset {preset} (seed 0)", f"{preset}-untrained"
