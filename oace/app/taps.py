"""One photo's clicks and, per loaded model, the `oace eval` session that answers them.

Each tap runs `model.evaluate.Session` on every model: the photo resized to the model's S x S input
(512 for the shipped bundle), the clicks mapped to the S grid, the previous S x S output fed back
as `prev_mask` (exactly as `oace eval`); with a `ZoomIn` (`oace app --zoom-in`) follow-up taps run
on a crop around the mask, exactly as `oace eval --zoom-in`. Undo restores the previous output, so
the next tap sees the same `prev_mask` (and zoom box) it would have seen without the undone click.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import numpy as np

from oace.model.backends import BundleContract, encode_clicks
from oace.model.clicks import Click
from oace.model.evaluate import Session
from oace.model.predictor import resize_prob, to_network_xy
from oace.model.zoom_in import ZoomIn
from oace.app.models import LoadedModel
from oace.errors import InputError


def check_click(x: float, y: float, width: int, height: int) -> None:
    if not (0 <= x < width and 0 <= y < height):
        raise InputError(f"click ({x}, {y}) is outside the {width}x{height} image")


def bundle_rows(clicks: Sequence[Click], width: int, height: int, contract: BundleContract) -> np.ndarray:
    """The clicks as the bundle receives them: int32 [N, 3] rows (x, y, label) on the S grid, -1 padding."""
    s = contract.input_size
    rows = [(*to_network_xy(c.x, c.y, width, height, s), c.label) for c in clicks]
    return encode_clicks(rows, contract)[0]


@dataclasses.dataclass
class Track:
    """One model on the current photo: its session, and after each click its S x S output (the
    next click's prev_mask) and, with zoom-in only, its probabilities at the photo's size (the next
    zoom box; kept only then, since a large photo's map per click is large)."""

    session: Session
    outputs: list[np.ndarray] = dataclasses.field(default_factory=list)
    probs: list[np.ndarray | None] = dataclasses.field(default_factory=list)
    latency_ms: list[float] = dataclasses.field(default_factory=list)

    def run(self, model: LoadedModel, clicks: Sequence[Click]) -> None:
        with model.lock:
            t0 = time.perf_counter()
            self.session(clicks)
            self.latency_ms.append((time.perf_counter() - t0) * 1000.0)
        self.outputs.append(self.session.prev)
        self.probs.append(self.session.prob if self.session.zoom_in is not None else None)

    def undo(self) -> None:
        self.outputs.pop()
        self.probs.pop()
        self.latency_ms.pop()
        self.session.reset()
        if self.outputs:  # the output before the undone click is the next click's prev_mask (and zoom box) again
            self.session.prev = self.outputs[-1]
            if self.probs[-1] is not None:
                self.session.prob = self.probs[-1]

    def mask(self) -> np.ndarray:
        """bool [H, W] at the photo's size (all False before the first click)."""
        s = self.session
        if not self.outputs:
            return np.zeros((s.height, s.width), dtype=bool)
        prob = self.probs[-1]
        return (resize_prob(self.outputs[-1], s.width, s.height) if prob is None else prob) > s.pred_thr


class Taps:
    """The page's state for one photo: clicks in the photo's pixels and a Track per model name."""

    def __init__(self, photo: np.ndarray, source: str, zoom_in: ZoomIn | None = None) -> None:
        self.photo, self.source, self.zoom_in = photo, source, zoom_in
        self.height, self.width = photo.shape[:2]
        self.clicks: list[Click] = []
        self.tracks: dict[str, Track] = {}

    def add(self, x: int, y: int, positive: bool, models: Sequence[LoadedModel]) -> None:
        """One more click, run on every model. InputError (nothing changes) when it cannot be taken."""
        check_click(x, y, self.width, self.height)
        limit = min((m.backend.contract.max_clicks for m in models), default=None)
        if limit is not None and len(self.clicks) >= limit:
            raise InputError(f"the bundle takes at most {limit} clicks per object: undo or reset to go on")
        if not self.clicks and not positive:
            raise InputError("the first click must be positive (it tells the model which object): "
                             "switch the mode to positive")
        clicks = [*self.clicks, Click(int(x), int(y), positive)]
        self.sync(models)
        done: list[Track] = []
        try:
            for model in models:
                self.tracks[model.name].run(model, clicks)
                done.append(self.tracks[model.name])
        except Exception:  # a model failed: the ones that answered forget this click too
            for track in done:
                track.undo()
            raise
        self.clicks = clicks

    def sync(self, models: Sequence[LoadedModel]) -> None:
        """A model loaded after the first click catches up by replaying the clicks so far."""
        for model in models:
            if model.name not in self.tracks:
                track = Track(Session(model.backend, self.photo, self.zoom_in))
                for k in range(1, len(self.clicks) + 1):
                    track.run(model, self.clicks[:k])
                self.tracks[model.name] = track

    def undo(self) -> None:
        if not self.clicks:
            raise InputError("no click to undo")
        self.clicks.pop()
        for track in self.tracks.values():
            track.undo()

    def reset(self) -> None:
        self.clicks = []
        for track in self.tracks.values():
            track.outputs.clear()
            track.probs.clear()
            track.latency_ms.clear()
            track.session.reset()

    def contract(self) -> BundleContract:
        """The first model's contract (the click rows the page shows are its); the default before any model ran."""
        track = next(iter(self.tracks.values()), None)
        return track.session.predictor.contract if track else BundleContract.of_config()

    def rows(self) -> np.ndarray:
        """The clicks as the first model receives them: int32 [N, 3]; [0, 3] before the first click."""
        if not self.clicks:
            return np.zeros((0, 3), np.int32)
        return bundle_rows(self.clicks, self.width, self.height, self.contract())

    def click_tuples(self) -> list[tuple[int, int, bool]]:
        return [(c.x, c.y, c.is_positive) for c in self.clicks]
