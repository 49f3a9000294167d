"""Every registered network: builds, has its paper-sized parameter budget, returns the right shapes,
trains (gradients reach every parameter) and is deterministic under a seed."""

from __future__ import annotations

import copy

import pytest
import torch

from oace.model.hrnet import HRNET_CONFIGS, build_hrnet
from oace.model.prior import PriorConfig, build_prior
from oace.model.registry import PRESETS, build, build_model
from oace.model.segmenter import pack_clicks
from oace.model.summary import count_params, example_inputs, summarize

PARAM_BUDGETS = {  # the budgets: paper figure +-5%
    "prior": (4.94e6, 5.46e6),
    "msfnet": (9.5e6, 10.5e6),
    "segmenter": (4.94e6 + 9.5e6, 5.46e6 + 10.5e6),
}


@pytest.mark.parametrize("name,expected", [("hrnet_w18_small_v2", 3.86e6), ("hrnet_w18", 9.56e6)])
def test_hrnet_backbones_have_published_sizes(name, expected):
    n = count_params(build_hrnet(HRNET_CONFIGS[name]))
    assert abs(n - expected) / expected < 0.005, n


def test_hrnet_returns_four_branches_at_strides_4_to_32():
    net = build_hrnet(HRNET_CONFIGS["hrnet_w18_small_v2"]).eval()
    with torch.no_grad():
        feats = net(torch.randn(1, 3, 128, 96))
    assert [tuple(f.shape) for f in feats] == [(1, 18, 32, 24), (1, 36, 16, 12), (1, 72, 8, 6), (1, 144, 4, 3)]


@pytest.mark.parametrize("name", sorted(PARAM_BUDGETS))
def test_parameter_budget(name):
    lo, hi = PARAM_BUDGETS[name]
    n = count_params(build_model(name))
    assert lo <= n <= hi, f"{name}: {n / 1e6:.3f}M params outside [{lo / 1e6}, {hi / 1e6}]M"


def test_segmenter_is_exactly_prior_plus_msfnet():
    seg = build_model("segmenter")
    assert count_params(seg) == count_params(build_model("prior")) + count_params(build_model("msfnet"))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_registered_network_builds_and_runs(name):
    preset = PRESETS[name]
    model = build(preset.arch, preset.config).eval()
    size = preset.config.input_size if preset.arch == "segmenter" else 64
    inputs = example_inputs(preset.arch, preset.config, size)
    with torch.no_grad():
        out = model(*inputs)
    if preset.arch == "prior":
        assert out.shape == (1, preset.config.embed_dim, size, size)
        assert out.abs().max() <= 1.0 + 1e-5  # per-pixel unit vectors, interpolated
    elif preset.arch == "msfnet":
        assert out.shape == (1, 1, size, size)
    else:
        assert out.shape == (1, size, size, 1) and out.dtype == torch.float32
        assert 0.0 <= out.min() and out.max() <= 1.0
    assert summarize(name).params == count_params(model)


@pytest.mark.slow
def test_models_macs_at_512_are_counted():
    s = summarize("segmenter")
    # prior + msfnet + the click encoding's one matrix product (3 maps x 512 x 512 x (4 rectangles x 24 clicks))
    assert s.macs == summarize("prior").macs + summarize("msfnet").macs + 3 * 512 * 512 * 96
    assert 30e9 < s.macs < 50e9


@pytest.mark.slow
def test_prior_gradients_reach_every_parameter_through_both_passes():
    """The contrastive prior runs twice (disk D, then 1 - D); each pass alone must train every weight."""
    torch.manual_seed(0)
    prior = build_prior(PriorConfig()).train()
    image = torch.randn(2, 3, 64, 64)
    disk = torch.zeros(2, 1, 64, 64)
    disk[:, :, 28:36, 28:36] = 1.0
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, 16:48, 16:48] = 1.0
    for name, pass_disk, region in (("click pass", disk, mask), ("non-click pass", 1 - disk, 1 - mask)):
        prior.zero_grad(set_to_none=True)
        emb = prior(image, pass_disk) * region
        emb.pow(2).sum().backward()  # any scalar of the masked features
        dead = [n for n, p in prior.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
        assert not dead, f"{name}: no gradient reaches {dead[:5]}"


def test_same_seed_same_weights_and_global_rng_untouched():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = build_model("segmenter_tiny", seed=7).state_dict()
    after = torch.rand(3)
    b = build_model("segmenter_tiny", seed=7).state_dict()
    c = build_model("segmenter_tiny", seed=8).state_dict()
    assert torch.equal(before, after)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_forward_is_deterministic(tiny_segmenter):
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (1, 512, 512, 3), dtype=torch.uint8, generator=g)
    clicks = torch.from_numpy(pack_clicks([(200, 220, True)], 24))
    prev = torch.zeros(1, 512, 512, 1)
    with torch.no_grad():
        assert torch.equal(tiny_segmenter(image, clicks, prev), tiny_segmenter(image, clicks, prev))


@pytest.mark.slow
def test_output_depends_on_clicks_and_previous_mask(tiny_segmenter):
    """Every input path is wired: moving the first click, adding a follow-up, or a previous mask
    changes the output. In train mode BatchNorm renormalizes each layer, so at random init input
    differences reach the output instead of fading into the biases."""
    model = copy.deepcopy(tiny_segmenter).train()
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (1, 512, 512, 3), dtype=torch.uint8, generator=g)
    prev = torch.zeros(1, 512, 512, 1)
    one = torch.from_numpy(pack_clicks([(100, 100, True)], 24))
    moved = torch.from_numpy(pack_clicks([(400, 300, True)], 24))
    two = torch.from_numpy(pack_clicks([(100, 100, True), (400, 300, False)], 24))
    with torch.no_grad():
        base = model(image, one, prev)
        assert (model(image, moved, prev) - base).abs().max() > 1e-3  # first click -> prior
        assert (model(image, two, prev) - base).abs().max() > 1e-3  # follow-up -> click maps
        assert (model(image, one, torch.ones_like(prev)) - base).abs().max() > 1e-3  # prev_mask
