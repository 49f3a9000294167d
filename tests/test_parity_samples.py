"""export.parity_samples: what export runs every form on when no calibration set was given."""

from __future__ import annotations

import numpy as np

from oace.export.parity_samples import synthetic_samples
from oace.model.registry import build_model
from oace.model.segmenter import check_clicks


def test_synthetic_samples_keep_the_contract_and_are_seeded():
    model = build_model("segmenter_tiny", seed=0)
    s, n = model.cfg.input_size, model.cfg.max_clicks
    samples = synthetic_samples(model, 4)
    again = synthetic_samples(model, 4)
    other = synthetic_samples(model, 4, seed=1)
    assert all(np.array_equal(a, b) for x, y in zip(samples, again, strict=True) for a, b in zip(x, y, strict=True))
    assert not np.array_equal(samples[0][0], other[0][0])
    for k, (image, clicks, prev) in enumerate(samples):
        assert (image.dtype, image.shape) == (np.uint8, (1, s, s, 3))
        assert (clicks.dtype, clicks.shape) == (np.int32, (1, n, 3))
        assert (prev.dtype, prev.shape) == (np.float32, (1, s, s, 1))
        check_clicks(clicks, s)
        rows = clicks[0][clicks[0, :, 2] >= 0]
        if k % 2:  # follow-ups: a soft previous mask and a negative click beside the object
            assert rows[:, 2].tolist() == [1, 0] and 0.0 <= prev.min() < 0.05 and prev.max() > 0.9
            assert ((prev > 0.1) & (prev < 0.9)).any()
        else:
            assert rows[:, 2].tolist() == [1] and not prev.any()
