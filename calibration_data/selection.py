"""Which instances calibrate: class coverage first, distinct photos next, deterministic under a seed.

1. Usable instances: area >= `min_area` of the photo (crowd annotations never are instances).
2. Held out (for int8-vs-float IoU checks): `held_out` photos, one instance each, drawn so that
   every class of a held-out photo still occurs in another photo; a source with too few photos
   (fewer than 4x held_out) holds out instances instead.
3. Calibration, greedily: first one instance of every class (class order shuffled by the seed), so
   every class is covered before any repeats; then instances on photos not used yet; then the
   least-picked class. Ties: photo used least, lower rank (original before augmented), seeded order.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Sequence

import numpy as np

from oace.calibration_data.sources import Instance


def _seeded_order(rng: np.random.Generator, items: Sequence[Instance]) -> list[Instance]:
    keys = rng.permutation(len(items))
    return [items[i] for i in np.argsort(keys, kind="stable")]


def _held_out_photos(rng: np.random.Generator, usable: list[Instance], n: int) -> list[Instance]:
    by_image: dict[str, list[Instance]] = defaultdict(list)
    for inst in usable:
        by_image[inst.image].append(inst)
    images = sorted(by_image)
    class_photos = Counter(c for img in images for c in {i.class_key for i in by_image[img]})
    out: list[Instance] = []
    for j in rng.permutation(len(images)):
        if len(out) == n:
            break
        classes = {i.class_key for i in by_image[images[j]]}
        if all(class_photos[c] >= 2 for c in classes):
            for c in classes:
                class_photos[c] -= 1
            insts = by_image[images[j]]
            out.append(insts[int(rng.integers(len(insts)))])
    return out


def _round_robin(rng: np.random.Generator, pool: list[Instance], count: int,
                 uses: Counter[str]) -> list[Instance]:
    """Greedy: an uncovered class first (in seeded class order), then an unused photo, then the least-picked
    class; ties by rank and seeded order. Every class is covered before any class repeats."""
    ordered = _seeded_order(rng, pool)
    classes = sorted({i.class_key for i in ordered})
    class_rank = {classes[j]: r for r, j in enumerate(rng.permutation(len(classes)))}
    picks: Counter[str] = Counter()
    left = list(range(len(ordered)))
    out: list[Instance] = []
    while left and len(out) < count:
        def key(k: int) -> tuple[int, int, int, int, int, int]:
            inst = ordered[k]
            c = inst.class_key
            return (min(picks[c], 1), uses[inst.image], picks[c], class_rank[c], inst.rank, k)
        best = min(left, key=key)
        left.remove(best)
        inst = ordered[best]
        picks[inst.class_key] += 1
        uses[inst.image] += 1
        out.append(inst)
    return out


def select_instances(instances: Sequence[Instance], *, count: int, held_out: int, seed: int,
                     min_area: float) -> tuple[list[Instance], list[Instance], int]:
    """(calibration instances, held-out instances, usable instance count) for `seed`."""
    rng = np.random.default_rng(seed)
    usable = [i for i in instances if i.area_fraction >= min_area]
    n_images = len({i.image for i in usable})
    if held_out and n_images >= 4 * held_out:
        held = _held_out_photos(rng, usable, held_out)
        held_images = {i.image for i in held}
        pool = [i for i in usable if i.image not in held_images]
        calib = _round_robin(rng, pool, count, Counter())
    else:
        uses: Counter[str] = Counter()
        calib = _round_robin(rng, usable, count, uses)
        chosen = {i.key for i in calib}
        held = _round_robin(rng, [i for i in usable if i.key not in chosen], held_out, uses)
    return calib, held, len(usable)
