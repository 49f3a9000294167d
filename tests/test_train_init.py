"""--init: timm ImageNet HRNet names -> our backbone names, with a report of what did not match."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from oace.model.hrnet import HRNET_W18_SMALL_V2, build_hrnet
from oace.model.hrnet_init import load_imagenet_hrnet, timm_to_ours
from oace.errors import CheckpointError


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("timm_name,ours", [
    ("conv1.weight", "conv1.weight"),
    ("layer1.0.downsample.0.weight", "layer1.0.downsample.0.weight"),
    ("transition1.0.0.weight", "transitions.0.0.0.weight"),  # existing branch, width change: conv-bn-relu
    ("transition1.1.0.0.weight", "transitions.0.1.0.weight"),  # new branch: one Sequential deeper in timm
    ("transition3.3.0.1.running_mean", "transitions.2.3.1.running_mean"),
    ("stage2.0.branches.1.1.bn2.bias", "stages.0.0.branches.1.1.bn2.bias"),
    ("stage4.1.fuse_layers.3.0.2.0.weight", "stages.2.1.fuse_layers.3.0.2.0.weight"),
])
def test_timm_names_map_onto_ours(timm_name, ours):
    assert timm_to_ours(timm_name) == ours


def _ours_to_timm(name: str) -> str:
    m = re.match(r"transitions\.(\d+)\.(\d+)\.(.*)$", name)
    if m:
        n, k = int(m.group(1)) + 1, int(m.group(2))
        return f"transition{n}.{k}.{'0.' if k >= n else ''}{m.group(3)}"
    m = re.match(r"stages\.(\d+)\.(.*)$", name)
    return f"stage{int(m.group(1)) + 2}.{m.group(2)}" if m else name


def test_an_imagenet_checkpoint_loads_into_the_priors_four_channel_backbone(tmp_path):
    torch.manual_seed(0)
    imagenet = build_hrnet(HRNET_W18_SMALL_V2)
    state = {_ours_to_timm(k): v for k, v in imagenet.state_dict().items()}
    state["classifier.weight"] = torch.zeros(1000, 2048)
    state["incre_modules.0.0.conv1.weight"] = torch.zeros(32, 18, 1, 1)
    state["stage2.0.extra.weight"] = torch.zeros(3)
    path = tmp_path / "hrnet_w18_small_v2.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)

    torch.manual_seed(1)
    backbone = build_hrnet(dataclasses.replace(HRNET_W18_SMALL_V2, in_channels=4))
    disk_filters = backbone.conv1.weight[:, 3].clone()
    report = load_imagenet_hrnet(backbone, path)
    ours, ref = backbone.state_dict(), imagenet.state_dict()
    assert all(torch.equal(ours[k], ref[k]) for k in ref if k != "conv1.weight")
    assert torch.equal(ours["conv1.weight"][:, :3], ref["conv1.weight"])
    assert torch.equal(ours["conv1.weight"][:, 3], disk_filters)  # the click-disk channel keeps its init
    assert report["loaded"] == len(ref) - 1 and len(report["partial"]) == 1 and report["missing"] == []
    assert report["unused"] == ["stage2.0.extra.weight"] and report["unused_head"] == 2
    assert report["shape_mismatch"] == []


def test_a_checkpoint_of_another_network_is_refused(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"fc.weight": torch.zeros(10, 4), "blocks.0.weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="no parameter matches this HRNet"):
        load_imagenet_hrnet(build_hrnet(HRNET_W18_SMALL_V2), path)
    with pytest.raises(CheckpointError, match="no such ImageNet checkpoint"):
        load_imagenet_hrnet(build_hrnet(HRNET_W18_SMALL_V2), tmp_path / "nope.pth")
