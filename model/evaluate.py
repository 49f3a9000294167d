"""The interactive-segmentation protocol (RITM's NoC/mIoU), at the bundle's 512x512 input.

Per sample: up to `max_clicks` robot clicks (model/clicks.py) at the sample's original resolution;
each prediction is thresholded at the model's threshold (RITM's `pred_thr`: 0.49 for the shipped
model, from its config or its bundle's metadata); IoU excludes ignore pixels. Through
`model.predictor.Predictor`, the image is resized (not cropped) to the model's S x S input (512),
clicks are mapped to the S grid, and the S x S probabilities are resized back to the original size
before thresholding; the previous S x S output is fed back as `prev_mask`. All `max_clicks` clicks
always run, so mIoU@k is defined for every k; NoC is read off the same curve (identical to RITM
stopping at 90%).
"""

from __future__ import annotations

import dataclasses
import heapq
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from scipy.ndimage import distance_transform_edt

from oace.model.backends import Backend, BundleContract
from oace.model.clicks import DEFAULT_DISTANCE, DISTANCES, Click, Clicker
from oace.model.data.base import Sample, SegDataset
from oace.model.predictor import Predictor, resize_prob
from oace.model.reference import resolve_checkpoint
from oace.model.zoom_in import ZoomIn, crop_clicks, object_box, paste

NOC_THRESHOLDS = (0.85, 0.90)

PredictFn = Callable[[Sequence[Click]], np.ndarray]


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """How the protocol runs: the options of `oace eval` (each default is its flag's) and of the
    pieces. `zoom_in`: follow-up clicks on a crop around the current mask (None: the whole photo).
    `pred_thr`: None takes each model's own threshold (its `BundleContract`)."""

    max_clicks: int = 20
    pred_thr: float | None = None
    limit: int | None = None  # only the first N samples
    n_worst: int = 5  # samples kept for the overlay PNGs
    robustness_trials: int = 5  # 0 skips the click-location robustness test
    containment_trials: int = 3  # 0 skips the containment test
    seed: int = 0  # of the robustness and containment clicks
    threads: int | None = None  # inference threads; None: the runtime's own choice
    distance: str = DEFAULT_DISTANCE
    zoom_in: ZoomIn | None = None
    progress: bool = True


# --- resolution mapping ------------------------------------------------------------------------

class Session:
    """One image on one backend: clicks in original pixels -> probabilities at original size, built on
    `model.predictor.Predictor` (its raw S x S output is fed back as the previous mask).

    With `zoom_in`, follow-up clicks run the model on a crop around the current mask
    (model/zoom_in.py); without it every click sees the whole photo. pred_thr: where the zoom-in box
    reads the current mask (None: the model's threshold).
    """

    def __init__(self, backend: Backend | Predictor, image: np.ndarray, zoom_in: ZoomIn | None = None,
                 pred_thr: float | None = None) -> None:
        self.predictor = backend if isinstance(backend, Predictor) else Predictor(backend)
        self.predictor.set_image(image)
        self.backend, self.zoom_in = self.predictor.backend, zoom_in
        self.pred_thr = self.predictor.threshold if pred_thr is None else pred_thr
        self.photo = image
        self.height, self.width = image.shape[:2]
        self.reset()

    @property
    def size(self) -> int:
        return self.predictor.size

    def reset(self) -> None:
        """Forget the previous prediction (a new object, or a new first click)."""
        self.prev = np.zeros((self.size, self.size), dtype=np.float32)
        self.prob = np.zeros((self.height, self.width), dtype=np.float32)

    def first_click(self, x: int, y: int) -> np.ndarray:
        """A fresh first (positive) click: forget the previous prediction, predict from this one."""
        self.reset()
        return self([Click(x=int(x), y=int(y), is_positive=True)])

    def __call__(self, clicks: Sequence[Click]) -> np.ndarray:
        if self.zoom_in is not None and self.zoom_in.applies(len(clicks)):
            return self._zoomed(clicks)
        self.prev = self.predictor.predict_network(clicks, self.prev)
        self.prob = resize_prob(self.prev, self.width, self.height)
        return self.prob

    def _zoomed(self, clicks: Sequence[Click]) -> np.ndarray:
        z = self.zoom_in
        box = object_box(self.prob > self.pred_thr, [(c.x, c.y) for c in clicks if c.is_positive], z.expansion, z.min_crop)
        y0, y1, x0, x1 = box
        crop = Predictor(self.backend)
        crop.set_image(np.ascontiguousarray(self.photo[y0:y1, x0:x1]))
        inside = crop_clicks([(c.x, c.y, c.is_positive) for c in clicks], box)
        out = crop.predict_network(inside, resize_prob(self.prob[y0:y1, x0:x1], self.size, self.size))
        self.prob = paste(resize_prob(out, x1 - x0, y1 - y0), box, (self.height, self.width))
        self.prev = resize_prob(self.prob, self.size, self.size)
        return self.prob


# --- metrics -----------------------------------------------------------------------------------

def iou(gt: np.ndarray, pred: np.ndarray, ignore: np.ndarray | None = None) -> float:
    """RITM get_iou: |pred & gt| / |pred | gt| over pixels that are not ignored."""
    valid = np.ones_like(gt, dtype=bool) if ignore is None else ~ignore
    inter = np.logical_and(np.logical_and(pred, gt), valid).sum()
    union = np.logical_and(np.logical_or(pred, gt), valid).sum()
    return float(inter / union) if union else 1.0


def noc(ious: Sequence[float], thr: float, max_clicks: int = 20) -> int:
    """RITM: 1 + index of the first IoU >= thr, or max_clicks if none."""
    hits = np.asarray(ious, dtype=np.float32) >= thr
    return int(np.argmax(hits)) + 1 if hits.any() else max_clicks


def compute_metrics(all_ious: Sequence[Sequence[float]], max_clicks: int = 20) -> dict[str, float | int]:
    """mIoU@1..max_clicks (percent), NoC@85/90, fail@90 (% never reaching 90%), RITM's over_max, n."""
    n = len(all_ious)
    if n == 0:
        raise ValueError("no samples to score")
    arr = np.asarray([np.asarray(r, dtype=np.float32)[:max_clicks] for r in all_ious], dtype=np.float32)
    if arr.shape != (n, max_clicks):
        raise ValueError(f"every IoU curve needs {max_clicks} values (all clicks run), got shape {arr.shape}")
    out: dict[str, float | int] = {}
    for k in range(1, max_clicks + 1):
        out[f"miou@{k}"] = float(arr[:, k - 1].astype(np.float64).mean() * 100.0)
    for thr in NOC_THRESHOLDS:
        tag = int(round(thr * 100))
        nocs = np.array([noc(r, thr, max_clicks) for r in arr])
        out[f"noc@{tag}"] = float(nocs.mean())
        out[f"over_max@{tag}"] = int((nocs == max_clicks).sum())
    never = ~(arr >= np.float32(0.90)).any(axis=1)
    out["fail@90"] = float(never.mean() * 100.0)
    out["fail@90_count"] = int(never.sum())
    out["n"] = n
    return out


# --- one sample, one dataset -------------------------------------------------------------------

def obedience(results: Sequence["SampleResult"]) -> dict[str, float | int | None]:
    """Click obedience over every follow-up click (the 2nd on) of every sample: the share (%) whose
    mask, right after the click, agrees with the click's label at the clicked pixel; positive and
    negative clicks apart. None where there was no click of that kind."""
    out: dict[str, float | int | None] = {}
    for tag, positive in (("pos", True), ("neg", False)):
        hits = [ok for r in results for c, ok in zip(r.clicks[1:], r.obeyed[1:]) if c.is_positive == positive]
        out[f"obey_{tag}"] = float(np.mean(hits) * 100.0) if hits else None
        out[f"obey_{tag}_clicks"] = len(hits)
    return out


@dataclasses.dataclass
class SampleResult:
    name: str
    ious: list[float]
    clicks: list[Click]
    seconds: float
    obeyed: list[bool] = dataclasses.field(default_factory=list)  # per click: mask agrees with its label there

    def to_json(self, max_clicks: int) -> dict[str, Any]:
        return {
            "name": self.name,
            "ious": [round(float(v), 6) for v in self.ious],
            "noc@85": noc(self.ious, 0.85, max_clicks),
            "noc@90": noc(self.ious, 0.90, max_clicks),
            "clicks": [[c.x, c.y, c.label] for c in self.clicks],
            "obeyed": [int(v) for v in self.obeyed],
            "seconds": round(self.seconds, 4),
        }


@dataclasses.dataclass
class ProtocolRun:
    """What the robot loop saw: IoU after each click, the clicks, whether each was obeyed, last probabilities."""

    ious: list[float]
    clicks: list[Click]
    obeyed: list[bool]
    prob: np.ndarray


def run_protocol(gt: np.ndarray, ignore: np.ndarray | None, predict: PredictFn, max_clicks: int = 20,
                 pred_thr: float | None = None, distance: str = DEFAULT_DISTANCE) -> ProtocolRun:
    """The robot loop at the sample's resolution; pred_thr None: SegmenterConfig's default threshold."""
    pred_thr = BundleContract.of_config().threshold if pred_thr is None else pred_thr
    clicker = Clicker(gt, ignore, distance)
    pred = np.zeros_like(clicker.gt)
    ious: list[float] = []
    obeyed: list[bool] = []
    prob = np.zeros(gt.shape, dtype=np.float32)
    for _ in range(max_clicks):
        clicker.make_next_click(pred)
        prob = predict(clicker.clicks)
        pred = prob > pred_thr
        ious.append(float(np.float32(iou(clicker.gt, pred, clicker.ignore))))
        last = clicker.clicks[-1]
        obeyed.append(bool(pred[last.y, last.x]) == last.is_positive)
    return ProtocolRun(ious, list(clicker.clicks), obeyed, prob)


def evaluate_sample(sample: Sample, backend: Backend, max_clicks: int = 20, pred_thr: float | None = None,
                    distance: str = DEFAULT_DISTANCE, zoom_in: ZoomIn | None = None) -> tuple[SampleResult, np.ndarray]:
    """The protocol on one sample; pred_thr None: the backend's threshold."""
    t0 = time.perf_counter()
    session = Session(backend, sample.image, zoom_in, pred_thr)
    run = run_protocol(sample.mask, sample.ignore, session, max_clicks, session.pred_thr, distance)
    return SampleResult(sample.name, run.ious, run.clicks, time.perf_counter() - t0, run.obeyed), run.prob


@dataclasses.dataclass
class Worst:
    """A badly segmented sample kept for the overlay PNGs."""

    score: float
    result: SampleResult
    sample: Sample
    prob: np.ndarray


@dataclasses.dataclass
class EvalRun:
    backend: str
    max_clicks: int
    pred_thr: float
    results: list[SampleResult]
    metrics: dict[str, float | int]
    worst: list[Worst]
    seconds: float
    distance: str = DEFAULT_DISTANCE
    zoom_in: ZoomIn | None = None
    input_size: int | None = None  # the model's S (its contract)


def _threshold(backend: Backend, pred_thr: float | None) -> float:
    """The threshold a run uses: the one asked for, else the model's own."""
    return backend.contract.threshold if pred_thr is None else pred_thr


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="sample", disable=not enabled, leave=False)


def evaluate_dataset(dataset: SegDataset | Sequence[Sample], backend: Backend, cfg: EvalConfig = EvalConfig()) -> EvalRun:
    """Run the protocol on every sample (the first `cfg.limit` if given); keep the `cfg.n_worst` for overlays."""
    n = len(dataset) if cfg.limit is None else min(cfg.limit, len(dataset))
    results: list[SampleResult] = []
    heap: list[tuple[float, int, Worst]] = []
    thr = _threshold(backend, cfg.pred_thr)
    t0 = time.perf_counter()
    with _progress(n, f"eval {backend.name}", cfg.progress) as bar:
        for i in range(n):
            sample = dataset[i]
            res, prob = evaluate_sample(sample, backend, cfg.max_clicks, thr, cfg.distance, cfg.zoom_in)
            results.append(res)
            score = float(np.mean(res.ious))  # area under the IoU curve: lower is worse
            _keep_worst(heap, (-score, -i, Worst(score, res, sample, prob)), cfg.n_worst)
            bar.update(1)
            bar.set_postfix(iou1=f"{res.ious[0]:.3f}", noc90=noc(res.ious, 0.9, cfg.max_clicks))
    worst = [w for _, _, w in sorted(heap, key=lambda t: (t[2].score, -t[1]))]
    metrics = {**compute_metrics([r.ious for r in results], cfg.max_clicks), **obedience(results)}
    return EvalRun(backend.name, cfg.max_clicks, thr, results, metrics, worst, time.perf_counter() - t0,
                   cfg.distance, cfg.zoom_in, backend.contract.input_size)


def _keep_worst(heap: list[tuple[float, int, Worst]], item: tuple[float, int, Worst], n_worst: int) -> None:
    """Keep the `n_worst` lowest-scoring samples in `heap` (a heap of (-score, -index, Worst): heap[0] is the
    best of them, the first to go)."""
    if len(heap) < n_worst:
        heapq.heappush(heap, item)
    elif n_worst and item[:2] > heap[0][:2]:
        heapq.heapreplace(heap, item)


# --- click-location robustness -----------------------------------------------------------------

def interior_pixels(mask: np.ndarray, min_border: int = 5) -> tuple[np.ndarray, bool]:
    """(y, x) rows of object pixels at L2 distance >= min_border from the nearest non-object pixel
    (the image edge counts as outside, as for the robot). If there is none, the pixels of greatest
    distance are returned and the flag says so."""
    dist = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    pts = np.argwhere(dist >= min_border)
    if len(pts):
        return pts, False
    return np.argwhere(dist == dist.max()), True


def click_robustness(dataset: SegDataset | Sequence[Sample], backend: Backend, n_trials: int = 5, seed: int = 0,
                     min_border: int = 5, pred_thr: float | None = None, limit: int | None = None,
                     progress: bool = True) -> dict[str, Any]:
    """IoU@1 for `n_trials` seeded random first clicks inside each object (>= min_border px from its
    border): per-object mean and std (population, ddof=0), and their averages over objects.
    pred_thr None: the backend's threshold."""
    pred_thr = _threshold(backend, pred_thr)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    per_object: list[dict[str, Any]] = []
    fallback = 0
    with _progress(n, f"robustness {backend.name}", progress) as bar:
        for i in range(n):
            sample = dataset[i]
            pts, fell_back = interior_pixels(sample.mask, min_border)
            fallback += int(fell_back)
            rng = np.random.default_rng([seed, i])
            picks = pts[rng.choice(len(pts), size=min(n_trials, len(pts)), replace=False)]
            ious = []
            session = Session(backend, sample.image)
            for y, x in picks:
                prob = session.first_click(x, y)
                ious.append(float(np.float32(iou(sample.mask, prob > pred_thr, sample.ignore))))
            per_object.append({
                "name": sample.name,
                "clicks": [[int(x), int(y)] for y, x in picks],
                "ious": [round(v, 6) for v in ious],
                "mean": float(np.mean(ious)),
                "std": float(np.std(ious)),
                "fallback": fell_back,
            })
            bar.update(1)
    if not per_object:
        raise ValueError("no samples for the robustness test")
    return {
        "n_trials": n_trials,
        "seed": seed,
        "min_border": min_border,
        "n": len(per_object),
        "n_fallback": fallback,
        "mean_iou@1": float(np.mean([o["mean"] for o in per_object]) * 100.0),
        "mean_std_iou@1": float(np.mean([o["std"] for o in per_object]) * 100.0),
        "per_object": per_object,
    }


def click_containment(dataset: SegDataset | Sequence[Sample], backend: Backend, n_trials: int = 3, seed: int = 0,
                      pred_thr: float | None = None, limit: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Containment: `n_trials` seeded first clicks uniform over each whole image (object or not); the
    share whose mask contains the clicked pixel (model/click_metrics.py). A click-blind model that
    always returns its salient object fails every click off it. pred_thr None: the backend's threshold."""
    from oace.model.click_metrics import containment

    pred_thr = _threshold(backend, pred_thr)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    hits: list[bool] = []
    with _progress(n, f"containment {backend.name}", progress) as bar:
        for i in range(n):
            sample = dataset[i]
            session = Session(backend, sample.image)
            hits += containment(session.first_click, sample.mask.shape, np.random.default_rng([seed, i]), n_trials, pred_thr)
            bar.update(1)
    if not hits:
        raise ValueError("no samples for the containment test")
    return {"n_trials": n_trials, "seed": seed, "n": n, "clicks": len(hits), "containment": float(np.mean(hits))}


# --- the whole stage -----------------------------------------------------------------------------

def open_for_eval(path: Path, threads: int | None = None) -> Backend:
    """The backend for `path`, refused (one-line InputError) when it cannot be evaluated: a checkpoint
    of a part (a prior or a bare MSFNet) instead of a segmenter, or weights / outputs that are not
    finite (NaN weights would otherwise score a silent mIoU of 0)."""
    from oace.model.backends import TorchBackend, open_backend
    from oace.model.segmenter import Segmenter
    from oace.errors import InputError

    backend = open_backend(path, num_threads=threads)
    if isinstance(backend, TorchBackend):
        module = backend.module
        if not isinstance(module, Segmenter):
            raise InputError(f"{path}: a {type(module).__name__} checkpoint; eval needs a segmenter "
                             "(segmenter.pt from `oace train msfnet`, or `reference`)")
        bad = [name for name, t in module.state_dict().items() if t.is_floating_point() and not t.isfinite().all()]
        if bad:
            raise InputError(f"{path}: {len(bad)} weight tensor(s) hold NaN or Inf (e.g. {bad[0]}); "
                             "nothing to evaluate")
    _check_finite_output(backend, path)
    return backend


def _check_finite_output(backend: Backend, path: Path) -> None:
    """One prediction on a grey image with a centre click: a backend whose output is not finite is refused."""
    from oace.errors import InputError

    s = backend.contract.input_size
    image = np.full((s, s, 3), 128, dtype=np.uint8)
    prev = np.zeros((s, s), dtype=np.float32)
    out = backend.predict(image, [(s // 2, s // 2, 1)], prev)
    if not np.isfinite(out).all():
        raise InputError(f"{path}: predicts NaN or Inf on a plain grey image (weights not finite?); nothing to evaluate")


def max_threads() -> int:
    """The most inference threads `oace eval` takes: 4 x this machine's CPUs (more only thrash)."""
    return 4 * (os.cpu_count() or 1)


def check_eval_args(model: Sequence[str | Path], cfg: EvalConfig) -> None:
    """run_eval's arguments, each refused with one InputError naming its flag."""
    from oace.errors import InputError

    if not model:
        raise InputError("--checkpoint: give at least one checkpoint or .tflite")
    if any(not str(m).strip() for m in model):
        raise InputError("--checkpoint is empty: give a checkpoint (.pt), `reference` or a .tflite")
    if cfg.max_clicks < 1:
        raise InputError(f"--max-clicks {cfg.max_clicks}: must be at least 1")
    if cfg.limit is not None and cfg.limit < 1:
        raise InputError(f"--limit {cfg.limit}: must be at least 1")
    if cfg.distance not in DISTANCES:
        raise InputError(f"--distance {cfg.distance}: must be scipy or opencv")
    if cfg.threads is not None and not 1 <= cfg.threads <= max_threads():
        raise InputError(f"--threads {cfg.threads}: must be 1..{max_threads()} (4 x the {os.cpu_count() or 1} CPUs here)")
    if cfg.robustness_trials < 0:
        raise InputError(f"--robustness-trials {cfg.robustness_trials}: must be 0 (skip) or more")
    if cfg.containment_trials < 0:
        raise InputError(f"--containment-trials {cfg.containment_trials}: must be 0 (skip) or more")


def run_eval(model: Sequence[str | Path], dataset: str, data_root: str | Path, *, cfg: EvalConfig = EvalConfig(),
             out: str | Path = "runs/eval", argv: Sequence[str] | None = None) -> list[Path]:
    """`oace eval`: every model (checkpoint or .tflite) on one dataset; writes the report files."""
    from oace.model.data import get_dataset
    from oace.model.eval_report import write_eval_report
    from oace.artifacts import check_output_dir

    check_eval_args(model, cfg)
    check_output_dir(out, "--out")
    ds = get_dataset(dataset, data_root)
    paths = [Path(resolve_checkpoint(str(path))) for path in model]
    backends = [open_for_eval(p, cfg.threads) for p in paths]  # every model refused or opened before any work
    _check_clicks_fit(cfg.max_clicks, paths, backends)
    info = _dataset_info(ds, dataset, cfg.limit)
    runs, models, robust, contain = [], [], [], []
    for p, backend in zip(paths, backends):
        models.append(_model_info(p, backend, cfg.threads))
        runs.append(evaluate_dataset(ds, backend, cfg))
        robust.append(click_robustness(ds, backend, cfg.robustness_trials, cfg.seed, pred_thr=cfg.pred_thr,
                                       limit=cfg.limit, progress=cfg.progress) if cfg.robustness_trials > 0 else None)
        contain.append(click_containment(ds, backend, cfg.containment_trials, cfg.seed, pred_thr=cfg.pred_thr,
                                         limit=cfg.limit, progress=cfg.progress) if cfg.containment_trials > 0 else None)
    return write_eval_report(out, runs, info, models, robust, argv, contain)


def _check_clicks_fit(max_clicks: int, paths: Sequence[Path], backends: Sequence[Backend]) -> None:
    """--max-clicks within every model's click rows (its contract's N: 24 for the shipped bundle)."""
    from oace.errors import InputError

    for p, backend in zip(paths, backends):
        n = backend.contract.max_clicks
        if max_clicks > n:
            raise InputError(f"--max-clicks {max_clicks}: must be 1..{n} ({p.name} takes {n} click rows)")


def _dataset_info(ds: SegDataset, name: str, limit: int | None) -> dict[str, Any]:
    """What the report says about the dataset: where it is, how many samples, the evaluated files' hash."""
    n_eval = len(ds) if limit is None else min(limit, len(ds))
    return {"name": name, "root": str(ds.root), "n_samples": len(ds), "n_evaluated": n_eval,
            "sha256": ds.content_hash(n_eval), "sha256_covers": f"the files of the {n_eval} samples evaluated",
            "notes": list(ds.notes)}


def _model_info(path: Path, backend: Backend, threads: int | None) -> dict[str, Any]:
    from oace.artifacts import sha256_file

    return {"path": str(path), "backend": backend.name, "bytes": path.stat().st_size, "sha256": sha256_file(path),
            "threads": threads}
