"""Self-describing checkpoints: round trip, fp16 storage, and a clear CheckpointError for bad files."""

from __future__ import annotations

import pytest
import torch

from oace.model.registry import build_model, load_checkpoint, load_model, save_checkpoint
from oace.model.segmenter import pack_clicks
from oace.errors import CheckpointError


def _inputs():
    g = torch.Generator().manual_seed(3)
    image = torch.randint(0, 256, (1, 512, 512, 3), dtype=torch.uint8, generator=g)
    return image, torch.from_numpy(pack_clicks([(256, 256, True), (30, 40, False)], 24)), torch.rand(1, 512, 512, 1, generator=g)


@pytest.mark.slow
def test_round_trip_rebuilds_the_same_network_from_the_file_alone(tmp_path, tiny_segmenter):
    path = save_checkpoint(tiny_segmenter, tmp_path / "tiny.pt", meta={"weights": "seeded"})
    record = load_checkpoint(path)
    assert set(record) == {"arch", "config", "state_dict", "meta"}
    assert record["arch"] == "segmenter" and record["meta"]["weights"] == "seeded"
    loaded = load_model(path)
    assert loaded.cfg == tiny_segmenter.cfg
    with torch.no_grad():
        assert torch.equal(loaded(*_inputs()), tiny_segmenter(*_inputs()))
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic writer left no temp file


@pytest.mark.slow
def test_fp16_checkpoint_is_half_the_size_and_loads_as_fp32(tmp_path, tiny_segmenter):
    full = save_checkpoint(tiny_segmenter, tmp_path / "full.pt")
    half = save_checkpoint(tiny_segmenter, tmp_path / "half.pt", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = load_model(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    with torch.no_grad():
        assert (loaded(*_inputs()) - tiny_segmenter(*_inputs())).abs().max() < 1e-2


@pytest.mark.parametrize("name", ["prior", "msfnet", "baseline"])
def test_every_architecture_round_trips(tmp_path, name):
    model = build_model(name, seed=1)
    loaded = load_model(save_checkpoint(model, tmp_path / f"{name}.pt"), eval_mode=False)
    assert type(loaded) is type(model) and loaded.cfg == model.cfg
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


def _expect(path, *fragments):
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg
    for f in fragments:
        assert f in msg, msg


def test_missing_file(tmp_path):
    _expect(tmp_path / "nope.pt", "no such checkpoint file")


def test_garbage_bytes(tmp_path):
    p = tmp_path / "garbage.pt"
    p.write_bytes(b"\x00\x01 this is not a checkpoint" * 10)
    _expect(p, "not a readable checkpoint")


def test_truncated_file(tmp_path, tiny_segmenter):
    p = save_checkpoint(tiny_segmenter, tmp_path / "cut.pt")
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    _expect(p, "not a readable checkpoint")


def test_pickled_code_is_refused(tmp_path):
    p = tmp_path / "evil.pt"
    torch.save({"arch": "segmenter", "config": {}, "state_dict": {}, "obj": object()}, p)
    _expect(p, "not a readable checkpoint")  # weights_only=True rejects arbitrary objects


def test_foreign_dict_and_unknown_arch(tmp_path):
    p = tmp_path / "foreign.pt"
    torch.save({"model": {}}, p)
    _expect(p, "missing key(s) arch, config, state_dict")
    torch.save({"arch": "resnet50", "config": {}, "state_dict": {}}, p)
    _expect(p, "unknown architecture 'resnet50'")


def test_config_and_weights_that_disagree(tmp_path, tiny_segmenter):
    p = save_checkpoint(tiny_segmenter, tmp_path / "x.pt")
    record = torch.load(p, weights_only=True)
    record["config"]["msfnet"]["frobnicate"] = 3
    torch.save(record, p)
    _expect(p, "unknown field(s) frobnicate")
    record["config"]["msfnet"].pop("frobnicate")
    record["config"]["msfnet"]["head_widths"] = [16, 16, 4]
    torch.save(record, p)
    _expect(p, "wrong shape")
    record = torch.load(save_checkpoint(tiny_segmenter, p), weights_only=True)
    record["state_dict"].pop("msfnet.head.classify.bias")
    torch.save(record, p)
    _expect(p, "1 missing")
