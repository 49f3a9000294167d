"""Issue 13: metadata travels in records, not on attributes bolted onto other objects, and library
code changes no process-wide setting (matplotlib's backend, Pillow's module switches)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageFile

from oace.errors import ToolkitError
from oace.model.data import get_dataset
from oace.model.data.base import read_label, read_rgb
from oace.model.data.salient import SalientDataset
from oace.model.registry import LoadedCheckpoint, build_model, load_model, load_model_with_meta, load_segmenter, save_checkpoint


# --- checkpoints: the meta comes back in a record, the module carries nothing extra -------------
def test_loading_a_checkpoint_returns_its_meta_and_leaves_the_module_bare(tmp_path, tiny_segmenter):
    path = save_checkpoint(tiny_segmenter, tmp_path / "tiny.pt", meta={"weights": "seeded", "crops_seen": 12})
    loaded = load_model_with_meta(path)
    assert isinstance(loaded, LoadedCheckpoint) and loaded.model.cfg == tiny_segmenter.cfg
    assert loaded.meta["weights"] == "seeded" and loaded.meta["crops_seen"] == 12 and "toolkit_version" in loaded.meta
    built = set(vars(build_model("segmenter_tiny", seed=0)))
    for model in (loaded.model, load_model(path)):
        assert not hasattr(model, "checkpoint_meta")
        assert set(vars(model)) == built  # no attribute a load added
    assert not loaded.model.training and load_model_with_meta(path, eval_mode=False).model.training


def test_load_segmenter_reads_the_description_and_version_from_the_meta(tmp_path, tiny_segmenter):
    path = save_checkpoint(tiny_segmenter, tmp_path / "tiny.pt", meta={"weights": "seeded", "model_version": "v9"})
    model, weights, version = load_segmenter(str(path), None)
    assert weights == f"checkpoint {path} (seeded)" and version == "v9"
    assert not hasattr(model, "checkpoint_meta")
    bare = save_checkpoint(tiny_segmenter, tmp_path / "bare.pt")
    assert load_segmenter(str(bare), None)[1:] == (f"checkpoint {bare} (no description)", "unversioned")


# --- LiteRT: the runtime name travels next to the interpreter -----------------------------------
def test_the_runtime_name_rides_beside_the_interpreter_not_on_it(tmp_path_factory):
    pytest.importorskip("ai_edge_litert")
    from fakes.tiny_tflite import build_tiny_bundle
    from oace.litert import LoadedInterpreter, SegmentRunner, load_interpreter

    path = build_tiny_bundle(tmp_path_factory.mktemp("tiny"))
    loaded = load_interpreter(path)
    assert isinstance(loaded, LoadedInterpreter) and loaded.runtime == "ai-edge-litert"
    assert not hasattr(loaded.interpreter, "oace_runtime")
    runner = SegmentRunner(path)
    assert runner.runtime == "ai-edge-litert" and not hasattr(runner.interpreter, "oace_runtime")
    fallback = load_interpreter(path, prefer="tflite-runtime")
    assert fallback.runtime in ("tflite-runtime", "ai-edge-litert")  # the fallback when it is installed
    assert type(fallback.interpreter).__module__.startswith(fallback.runtime.replace("-", "_"))


# --- datasets: the name is the dataset's own, given to its constructor ---------------------------
def _salient(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "images" / "a.png")
    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 2:6] = 255
    Image.fromarray(mask).save(root / "masks" / "a.png")
    return root


def test_a_dataset_is_named_by_its_constructor_not_from_outside(tmp_path):
    root = _salient(tmp_path / "ECSSD")
    assert SalientDataset(root).name == "salient"               # the layout's own name by default
    assert SalientDataset(root, name="ECSSD").name == "ECSSD"
    assert get_dataset("ECSSD", tmp_path).name == "ECSSD"       # the name it was asked for, as before
    assert get_dataset("salient", root).name == "salient"
    assert SalientDataset.name == "salient"                     # the class default is untouched


# --- matplotlib: report PNGs are drawn without switching the backend -----------------------------
def test_writing_report_plots_changes_no_matplotlib_global(tmp_path, monkeypatch):
    import matplotlib

    from oace.model import eval_report, train_logs

    before = matplotlib.get_backend()
    monkeypatch.setattr(matplotlib, "use", lambda *a, **k: pytest.fail(f"matplotlib.use{a} called"))
    history = [{"epoch": e, "loss": 1.0 / e, "val_miou": 50.0 + e} for e in range(1, 4)]
    train_logs.plot_curves(tmp_path / "curves.png", history, ["loss", "val_miou"])
    runs = [SimpleNamespace(max_clicks=5, backend="torch", metrics={f"miou@{k}": 60.0 + k for k in range(1, 6)})]
    eval_report.plot_curves(tmp_path / "miou.png", runs, "GrabCut")
    assert matplotlib.get_backend() == before
    assert Image.open(tmp_path / "curves.png").size == (640, 240)  # 8x3 in at dpi 80, as before
    assert Image.open(tmp_path / "miou.png").size == (600, 400)    # 6x4 in at dpi 100


# --- Pillow: decoding reads its module switches, never sets them ---------------------------------
def test_decoding_an_image_changes_no_pillow_global(tmp_path):
    Image.fromarray(np.full((8, 8, 3), 9, np.uint8)).save(tmp_path / "a.png")
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    assert read_rgb(tmp_path / "a.png").shape == (8, 8, 3)
    assert read_label(tmp_path / "a.png").shape == (8, 8)
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == before


def test_a_process_that_loads_truncated_images_is_refused_in_one_line(tmp_path, monkeypatch):
    Image.fromarray(np.full((8, 8, 3), 9, np.uint8)).save(tmp_path / "a.png")
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # as another library might
    with pytest.raises(ToolkitError, match=r"a\.png: not decoded: PIL\.ImageFile\.LOAD_TRUNCATED_IMAGES is True") as info:
        read_rgb(tmp_path / "a.png")
    assert "\n" not in str(info.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # refused, not overridden


def test_start_weights_report_the_crops_their_meta_records(tmp_path):
    import torch

    from oace.model.registry import PRESETS, build
    from oace.model.train_config import TrainConfig
    from oace.model.train_tasks import build_task, load_start_weights

    prior = build("prior", PRESETS["segmenter_tiny"].config.prior, seed=1)
    path = save_checkpoint(prior, tmp_path / "prior.pt", meta={"crops_seen": 640})
    cfg = TrainConfig(stage="prior", data=f"salient:{tmp_path}", out=str(tmp_path / "run"), model="segmenter_tiny")
    task = build_task(cfg, torch.device("cpu"))
    assert load_start_weights(task, str(path)) == 640
    assert load_start_weights(task, str(save_checkpoint(prior, tmp_path / "bare.pt"))) == 0
