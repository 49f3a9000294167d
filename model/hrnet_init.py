"""ImageNet initialization of our HRNet backbones from a timm (or official HRNet-Image-Classification) checkpoint.

Names differ in two places only (see model/hrnet.py):
- `transition{N}.{k}.*` -> `transitions.{N-1}.{k}.*`; a transition that opens a new branch is one more
  Sequential deep in timm (`transition{N}.{k}.0.*` -> `transitions.{N-1}.{k}.*`);
- `stage{N}.*` -> `stages.{N-2}.*`.
The stem (conv1/bn1/conv2/bn2) and layer1 keep their names. timm's classification head
(incre_modules, downsamp_modules, final_layer, classifier) has no counterpart and is reported as
unused. A stem conv with more input channels than the checkpoint's (the prior's RGB + click disk)
gets the RGB filters; its extra channels keep their initialization, and the report says so.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from oace.model.hrnet import HRNet
from oace.errors import CheckpointError

HEAD_PREFIXES = ("incre_modules.", "downsamp_modules.", "final_layer.", "classifier.", "fc.", "head.")


def timm_to_ours(name: str) -> str:
    """One timm HRNet parameter name -> our HRNet's name (unchanged when nothing needs mapping)."""
    m = re.match(r"transition(\d+)\.(\d+)\.(.*)$", name)
    if m:
        n, k, rest = int(m.group(1)), int(m.group(2)), m.group(3)
        if k >= n:  # transition N leaves N branches in place; k >= N opens a new one (one Sequential deeper)
            rest = rest.split(".", 1)[1]
        return f"transitions.{n - 1}.{k}.{rest}"
    m = re.match(r"stage(\d+)\.(.*)$", name)
    if m:
        return f"stages.{int(m.group(1)) - 2}.{m.group(2)}"
    return name


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a .pth/.pt/.bin (plain, or under "state_dict"/"model") or a .safetensors file."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such ImageNet checkpoint")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(p))
        else:
            state = torch.load(p, map_location="cpu", weights_only=True)
    except ImportError:
        raise CheckpointError(f"{p}: reading .safetensors needs the safetensors package") from None
    except Exception as exc:  # torch/safetensors raise many types for foreign files
        raise CheckpointError(f"{p}: not a readable checkpoint ({type(exc).__name__})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{p}: not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_imagenet_hrnet(backbone: HRNet, path: str | Path) -> dict[str, Any]:
    """Copy matching ImageNet weights into `backbone` in place; return what matched and what did not.

    Raises CheckpointError when nothing matches (wrong file, or an HRNet of other widths).
    """
    source = read_state_dict(path)
    target = backbone.state_dict()
    loaded, partial, shape_mismatch, unused_head, unused = [], [], [], [], []
    new_state = dict(target)
    for name, value in source.items():
        ours = timm_to_ours(name)
        if ours not in target:
            (unused_head if name.startswith(HEAD_PREFIXES) else unused).append(name)
            continue
        want = target[ours]
        if tuple(value.shape) == tuple(want.shape):
            new_state[ours] = value.to(want.dtype)
            loaded.append(ours)
        elif ours == "conv1.weight" and value.dim() == 4 and value.shape[1] < want.shape[1] \
                and value.shape[0] == want.shape[0] and value.shape[2:] == want.shape[2:]:
            w = want.clone()
            w[:, : value.shape[1]] = value.to(want.dtype)
            new_state[ours] = w
            partial.append(f"{ours}: input channels 0..{value.shape[1] - 1} loaded, "
                           f"{want.shape[1] - value.shape[1]} extra channel(s) kept at initialization")
        else:
            shape_mismatch.append(f"{name} -> {ours}: {list(value.shape)} vs {list(want.shape)}")
    if not loaded:
        raise CheckpointError(f"{path}: no parameter matches this HRNet (is it an HRNet checkpoint of these widths?)")
    backbone.load_state_dict(new_state)
    done = set(loaded) | {p.split(":")[0] for p in partial}
    missing = sorted(k for k in target if k not in done and not k.endswith("num_batches_tracked"))
    return {
        "path": str(path),
        "loaded": len(loaded),
        "partial": partial,
        "missing": missing,
        "shape_mismatch": shape_mismatch,
        "unused": sorted(unused),
        "unused_head": len(unused_head),
        "summary": f"{len(loaded)}/{len(target)} tensors loaded, {len(partial)} partial, {len(missing)} missing, "
                   f"{len(shape_mismatch)} shape mismatches, {len(unused)} unmatched (+{len(unused_head)} head tensors unused)",
    }
