"""Eq. 1 (normalized contrastive loss) and Eq. 2-3 (Normalized Focal Loss) on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from oace.model.losses import PatchSampling, cell_size, contrastive_loss, normalized_focal_loss, prior_loss, sample_patches

R2 = 1 / math.sqrt(2)


def test_contrastive_loss_matches_the_hand_computed_value():
    obj = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # cos(o0, o1) = 1/sqrt2
    bg = torch.tensor([[-1.0, 0.0], [0.0, -1.0]])  # cos(b0, b1) = 0
    # cross: cos(o0,b0) = -1, cos(o0,b1) = 0, cos(o1,b0) = -1/sqrt2, cos(o1,b1) = -1/sqrt2 -> mean -0.60355
    expected = -R2 - 0.0 + (-1.0 + 0.0 - R2 - R2) / 4  # -1.31066
    assert contrastive_loss(obj, bg).item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(-1.3106602, abs=1e-6)


def test_contrastive_loss_does_not_scale_with_patch_counts_or_lengths():
    o, b = torch.tensor([[3.0, 4.0]]), torch.tensor([[4.0, -3.0]])  # orthogonal: cross term 0
    for n, m in ((2, 2), (10, 3), (50, 40)):
        loss = contrastive_loss(o.repeat(n, 1) * torch.arange(1, n + 1).unsqueeze(1), b.repeat(m, 1))
        assert loss.item() == pytest.approx(-2.0, abs=1e-6)  # -1 (objects agree) - 1 (backgrounds agree) + 0
    # the separating optimum: object opposite to background gives the minimum, -3
    assert contrastive_loss(o.repeat(4, 1), -o.repeat(7, 1)).item() == pytest.approx(-3.0, abs=1e-6)


def test_contrastive_loss_needs_two_patches_of_each_kind():
    with pytest.raises(ValueError, match=">= 2 patches"):
        contrastive_loss(torch.ones(1, 2), torch.ones(3, 2))


def test_patches_come_from_their_own_pass_and_region():
    # object = left half; pass 1 holds (1, 0) everywhere, pass 2 holds (0, 1): object patches must be
    # pass-1 vectors from the left half, background patches pass-2 vectors from the right half
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4] = 1
    f1 = torch.zeros(1, 2, 8, 8)
    f1[:, 0] = 1.0
    f1[:, 1, :, 4:] = 5.0  # would only show up if object patches leaked into the background half
    f2 = torch.zeros(1, 2, 8, 8)
    f2[:, 1] = 1.0
    f2[:, 0, :, :4] = 5.0
    (obj, bg), = sample_patches(f1, f2, mask, torch.zeros_like(mask), seeds=[0],
                                sampling=PatchSampling(patches=5, cell=2, contrast="paper"))
    assert obj.shape == (5, 2) and bg.shape == (5, 2)
    assert torch.equal(obj, torch.tensor([[1.0, 0.0]]).repeat(5, 1))
    assert torch.equal(bg, torch.tensor([[0.0, 1.0]]).repeat(5, 1))
    # so the loss is -1 - 1 + 0
    assert prior_loss(f1, f2, mask, torch.zeros_like(mask), [0], PatchSampling(5, 2, contrast="paper")).item() == pytest.approx(-2.0, abs=1e-6)


def test_the_pass_shortcut_minimizes_the_literal_loss_but_not_the_within_pass_one():
    # a "network" that ignores the image: (1, 0) everywhere for input D, (-1, 0) everywhere for 1 - D
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4] = 1
    f1 = torch.zeros(1, 2, 8, 8)
    f1[:, 0] = 1.0
    f2 = -f1
    zeros = torch.zeros_like(mask)
    # literal Eq. 1: objects agree (-1), backgrounds agree (-1), object vs background cos -1 (+(-1)): the minimum, -3
    assert prior_loss(f1, f2, mask, zeros, [0], PatchSampling(5, 2, contrast="paper")).item() == pytest.approx(-3.0, abs=1e-6)
    # within: bg = 5 pass-2 (-1, 0) + 5 pass-1 (1, 0) patches; bg-bg pairs: 40 at +1, 50 at -1 of 90 -> -1/9;
    # obj-bg: 25 at -1, 25 at +1 -> 0; L = -1 + 1/9 + 0 = -8/9
    (obj, bg), = sample_patches(f1, f2, mask, zeros, [0], PatchSampling(5, 2, contrast="within"))
    assert obj.shape == (5, 2) and bg.shape == (10, 2)
    assert prior_loss(f1, f2, mask, zeros, [0], PatchSampling(5, 2)).item() == pytest.approx(-8 / 9, abs=1e-6)
    # while an embedding that does separate the object within each pass still reaches -3
    g1 = f1.clone()
    g1[:, 0, :, 4:] = -1.0  # pass 1: object (1, 0), background (-1, 0)
    assert prior_loss(g1, f2, mask, zeros, [0], PatchSampling(5, 2)).item() == pytest.approx(-3.0, abs=1e-6)


def test_images_without_enough_patches_are_skipped_but_keep_the_graph():
    f = torch.randn(1, 2, 8, 8, requires_grad=True)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 0, 0] = 1  # one object pixel: no object cell reaches 50 % coverage
    loss = prior_loss(f, f, mask, torch.zeros_like(mask), [0], PatchSampling(4, 2))
    assert loss.item() == 0.0
    loss.backward()
    assert f.grad is not None and float(f.grad.abs().sum()) == 0.0


def test_cell_size_scales_with_the_input():
    assert (cell_size(512), cell_size(256), cell_size(64)) == (8, 4, 1)


def test_nfl_matches_the_hand_computed_value():
    # pixel 1: p = 0.75, w = 0.0625, -log p = 0.287682; pixel 2: p = 0.5, w = 0.25, -log p = 0.693147
    logits = torch.tensor([math.log(3.0), 0.0]).view(1, 1, 1, 2)
    expected = (0.0625 * -math.log(0.75) + 0.25 * math.log(2)) / (0.0625 + 0.25)
    assert normalized_focal_loss(logits, torch.ones(1, 1, 1, 2)).item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.6120542, abs=1e-6)
    # a negative pixel at logit -ln3 is the mirror image of the positive one at +ln3
    neg = normalized_focal_loss(torch.tensor([-math.log(3.0), 0.0]).view(1, 1, 1, 2), torch.tensor([0.0, 1.0]).view(1, 1, 1, 2))
    assert neg.item() == pytest.approx(expected, abs=1e-6)


def test_nfl_ignores_ignored_pixels_and_averages_images():
    logits = torch.tensor([math.log(3.0), 0.0]).view(1, 1, 1, 2)
    ignore = torch.tensor([0.0, 1.0]).view(1, 1, 1, 2)
    assert normalized_focal_loss(logits, torch.ones(1, 1, 1, 2), ignore).item() == pytest.approx(-math.log(0.75), abs=1e-6)
    two = normalized_focal_loss(torch.cat([logits, torch.zeros(1, 1, 1, 2)]), torch.ones(2, 1, 1, 2))
    assert two.item() == pytest.approx((0.6120542 + math.log(2)) / 2, abs=1e-6)


def test_nfl_normalizer_is_detached():
    # one pixel, label 1, logit 0: L = w * l / P with P = w held constant, so
    # dL/dx = -2 p l - (1 - p) = -ln2 - 0.5 = -1.193147; with P in the graph it would be -(1 - p) = -0.5
    x = torch.zeros(1, 1, 1, 1, requires_grad=True)
    normalized_focal_loss(x, torch.ones(1, 1, 1, 1)).backward()
    assert x.grad.item() == pytest.approx(-math.log(2) - 0.5, abs=1e-6)
