"""Bad inputs give a clear one-line InputError, never a traceback from deep inside torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oace.model.predictor import Predictor
from oace.model.segmenter import check_clicks, pack_clicks
from oace.errors import InputError, ToolkitError

GOOD_IMAGE = torch.zeros(1, 512, 512, 3, dtype=torch.uint8)
GOOD_CLICKS = torch.from_numpy(pack_clicks([(10, 10, True)], 24))
GOOD_PREV = torch.zeros(1, 512, 512, 1)


@pytest.mark.parametrize(
    "args,fragment",
    [
        ((GOOD_IMAGE.float(), GOOD_CLICKS, GOOD_PREV), "image: expected dtype uint8, got float32"),
        ((GOOD_IMAGE, GOOD_CLICKS.long(), GOOD_PREV), "clicks: expected dtype int32, got int64"),
        ((GOOD_IMAGE, GOOD_CLICKS, GOOD_PREV.double()), "prev_mask: expected dtype float32, got float64"),
        ((GOOD_IMAGE.permute(0, 3, 1, 2).contiguous(), GOOD_CLICKS, GOOD_PREV), "image: expected shape [B, 512, 512, 3]"),
        ((GOOD_IMAGE[:, :256, :256], GOOD_CLICKS, GOOD_PREV), "image: expected shape"),
        ((GOOD_IMAGE, GOOD_CLICKS[:, :10], GOOD_PREV), "clicks: expected shape [B, 24, 3]"),
        ((GOOD_IMAGE, GOOD_CLICKS, GOOD_PREV.expand(2, -1, -1, -1)), "prev_mask: expected shape [B, 512, 512, 1]"),
    ],
)
def test_segmenter_rejects_wrong_dtype_and_shape(tiny_segmenter, args, fragment):
    with pytest.raises(InputError) as info:
        tiny_segmenter(*args)
    assert fragment in str(info.value)
    assert isinstance(info.value, ToolkitError)


def test_click_outside_the_image_is_rejected():
    clicks = pack_clicks([(10, 10, True), (512, 3, False)], 24)
    with pytest.raises(InputError, match=r"row 1 at \(x=512, y=3\) is outside the 512x512 image"):
        check_clicks(clicks, 512)
    with pytest.raises(InputError, match="row 0 must be the first positive click"):
        check_clicks(pack_clicks([(10, 10, False)], 24), 512)
    bad_label = pack_clicks([(10, 10, True)], 24)
    bad_label[0, 1] = (5, 5, 2)
    with pytest.raises(InputError, match="row 1 has label 2"):
        check_clicks(bad_label, 512)
    check_clicks(pack_clicks([(0, 0, True), (511, 511, False)], 24), 512)  # the corners are inside


def test_too_many_or_no_clicks():
    with pytest.raises(InputError, match="25 clicks given, the bundle takes at most 24"):
        pack_clicks([(1, 1, True)] * 25, 24)
    with pytest.raises(InputError, match="at least one click"):
        pack_clicks([], 24)


def test_predictor_maps_photo_coordinates_and_checks_them(tiny_segmenter):
    pred = Predictor(tiny_segmenter)
    with pytest.raises(InputError, match="call set_image"):
        pred.predict([(1, 1, True)])
    photo = np.random.default_rng(0).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    pred.set_image(photo)
    prob = pred.predict([(199, 299, True)])
    assert prob.shape == (300, 200) and prob.dtype == np.float32
    with pytest.raises(InputError, match=r"\(200, 10\) is outside the 200x300 image"):
        pred.predict([(200, 10, True)])
    with pytest.raises(InputError, match=r"prev_mask: expected shape \[300, 200\]"):
        pred.predict([(5, 5, True)], prev_mask=np.zeros((512, 512), np.float32))
    again = pred.predict([(5, 5, True), (100, 100, False)], prev_mask=prob)
    assert again.shape == (300, 200)


@pytest.mark.parametrize(
    "image",
    [np.zeros((64, 64), np.uint8), np.zeros((64, 64, 4), np.uint8), np.zeros((64, 64, 3), np.float32), [[1, 2, 3]]],
)
def test_predictor_rejects_non_rgb_uint8_images(tiny_segmenter, image):
    with pytest.raises(InputError, match="expected a uint8 RGB array of shape"):
        Predictor(tiny_segmenter).set_image(image)


def test_predictor_needs_a_segmenter():
    from oace.model.registry import build_model

    with pytest.raises(InputError, match="Predictor needs a Segmenter, got OACEPrior"):
        Predictor(build_model("prior"))
