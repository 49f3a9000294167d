"""`oace app`: the `segment` API through gradio_client against a real server on 127.0.0.1, the page's
handlers, and what bad input does (a message or an API error; the next request still works).

The server holds two models: a real fp32 bundle exported from the seeded tiny preset (untrained:
its masks are checked against the same bundle run in-process, value for value) and the shipped
reference checkpoint (trained: a positive click lands on the object, a negative one removes area).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oace.model.backends import TFLiteBackend, open_backend
from oace.model.clicks import Click
from oace.model.evaluate import Session
from oace.errors import CheckpointError, InputError, ToolkitError

pytestmark = pytest.mark.slow  # TensorFlow conversions / training loops: make test-fast leaves it out

POS = (200, 150)  # on chelsea's face (451x300)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A real fp32 bundle of the seeded tiny preset (the export pipeline, fp32 only and so without a
    calibration set: the cheapest real one)."""
    from oace.model.registry import build_model
    from oace.pipeline import ExportOptions, export_bundle

    tmp = tmp_path_factory.mktemp("app_bundle")
    result = export_bundle(build_model("segmenter_tiny", seed=0).eval(), tmp / "out", opts=ExportOptions(
        precisions=("fp32",), weights="UNTRAINED seeded tiny", model_version="tiny-test", verify_samples=2))
    return result.out_dir / "oace_segmenter_fp32.tflite"


@pytest.fixture(scope="session")
def photo_file(tmp_path_factory) -> Path:
    from skimage import data

    path = tmp_path_factory.mktemp("photos") / "chelsea.png"
    Image.fromarray(data.chelsea()).save(path)
    return path


@pytest.fixture(scope="session")
def server(tiny_bundle):
    from oace.app import AppConfig, start

    app = start(AppConfig(models=(str(tiny_bundle), "reference"), threads=1))
    yield app
    app.close()


@pytest.fixture(scope="session")
def client(server):
    from gradio_client import Client

    return Client(server.url, verbose=False)


def segment(client, image: Path, clicks, model: str = "") -> tuple[np.ndarray, dict]:
    from gradio_client import handle_file

    png, info = client.predict(handle_file(str(image)), json.dumps(clicks), model, api_name="/segment")
    return np.array(Image.open(png)), info


def in_process(backend, photo: np.ndarray, clicks) -> np.ndarray:
    """The `oace eval` path: one Session, the clicks one by one, each output fed back."""
    session = Session(backend, photo)
    for k in range(1, len(clicks) + 1):
        prob = session([Click(x, y, label == 1) for x, y, label in clicks[:k]])
    return np.where(prob > session.pred_thr, 255, 0).astype(np.uint8)


# --- the API -----------------------------------------------------------------------------------

def test_the_server_binds_to_loopback_and_lists_both_models(server):
    assert server.url.startswith("http://127.0.0.1:")
    assert [m.name for m in server.models.all()] == ["oace_segmenter_fp32.tflite", "reference"]


def test_api_mask_is_0_255_at_the_photo_size_and_equals_the_bundle_run_in_process(client, tiny_bundle, photo_file):
    clicks = [[*POS, 1], [90, 60, 0], [300, 200, 1]]
    mask, info = segment(client, photo_file, clicks, "0")
    photo = np.array(Image.open(photo_file))
    assert mask.shape == photo.shape[:2] and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 255}
    expected = in_process(TFLiteBackend(tiny_bundle, num_threads=1), photo, clicks)
    assert np.array_equal(mask, expected)  # follow-up clicks got the previous output, as in `oace eval`
    assert mask[POS[1], POS[0]] == expected[POS[1], POS[0]]
    assert info["model"] == "oace_segmenter_fp32.tflite"
    assert info["area_fraction"] == pytest.approx((mask == 255).mean(), abs=1e-6)
    assert len(info["latency_ms_per_click"]) == 3 and info["latency_ms"] == info["latency_ms_per_click"][-1] > 0
    assert info["bundle_clicks"][0] == [int((POS[0] + 0.5) * 512 / 451), int((POS[1] + 0.5) * 512 / 300), 1]


def test_a_positive_click_is_in_the_mask_and_a_negative_one_removes_area(client, photo_file):
    """On the trained reference: the clicked pixel is object; a negative click on the mask's far edge
    (the mask pixel farthest from the positive click) takes that region away."""
    first, info1 = segment(client, photo_file, [[*POS, 1]], "reference")
    assert info1["model"] == "reference" and first[POS[1], POS[0]] == 255
    ys, xs = np.nonzero(first)
    far = int(np.argmax((xs - POS[0]) ** 2 + (ys - POS[1]) ** 2))
    neg = [int(xs[far]), int(ys[far])]
    second, info2 = segment(client, photo_file, [[*POS, 1], [*neg, 0]], "1")
    assert second[POS[1], POS[0]] == 255 and second[neg[1], neg[0]] == 0
    assert (second == 255).sum() < (first == 255).sum()
    assert info2["area_fraction"] < info1["area_fraction"]


# --- bad input: a clear error, and the server keeps serving --------------------------------------

@pytest.mark.parametrize("clicks, model, message", [
    ([[451, 10, 1]], "", "outside the 451x300 image"),
    ([[10, -1, 1]], "", "outside the 451x300 image"),
    ([[10 + i, 10, 1] for i in range(25)], "", "at most 24"),
    ([[10, 10, 0]], "", "first click must be positive"),
    ([[10, 10, 2]], "", "label 1 or 0"),
    ("not json", "", "not JSON"),
    ([[10, 10, 1]], "7", "not loaded"),
])
def test_bad_api_requests_are_errors_and_the_next_one_works(client, photo_file, clicks, model, message):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    text = clicks if isinstance(clicks, str) else json.dumps(clicks)
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(str(photo_file)), text, model, api_name="/segment")
    mask, _ = segment(client, photo_file, [[*POS, 1]])
    assert mask.shape == (300, 451)


def test_a_non_image_upload_is_an_error_and_the_next_request_works(client, photo_file, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    fake = tmp_path / "photo.png"
    fake.write_text("this is not a picture")
    with pytest.raises(AppError, match="photo.png: not an image file"):
        client.predict(handle_file(str(fake)), "[[1, 1, 1]]", "", api_name="/segment")
    assert segment(client, photo_file, [[*POS, 1]])[0].shape == (300, 451)


@pytest.fixture(scope="module")
def off_contract_tflite(tmp_path_factory) -> Path:
    """A real .tflite whose only input is `x` float32 [1, 8]: not the bundle contract."""
    import tensorflow as tf

    tmp = tmp_path_factory.mktemp("bad_model")
    module = tf.Module()
    module.double = tf.function(lambda x: {"y": x * 2.0}, input_signature=[tf.TensorSpec((1, 8), tf.float32, name="x")])
    tf.saved_model.save(module, str(tmp / "saved"), signatures={"segment": module.double.get_concrete_function()})
    path = tmp / "not_a_bundle.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(tmp / "saved")).convert())
    return path


def test_a_model_off_the_contract_is_refused_in_the_page_and_the_app_goes_on(client, server, photo_file,
                                                                           off_contract_tflite, tmp_path):
    from gradio_client import handle_file

    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\0" * 64)
    for path, message in ((off_contract_tflite, "lacks input(s) ['clicks', 'image', 'prev_mask']"),
                          (garbage, "garbage.tflite: not a")):
        models_md, text = client.predict(handle_file(str(path)), api_name="/load_model")
        assert text.startswith("**Could not do that:**") and message in text
        assert text.count(path.name) == 1 and "/gradio/" not in text  # the file as the user named it
    assert [m.name for m in server.models.all()] == ["oace_segmenter_fp32.tflite", "reference"]
    assert segment(client, photo_file, [[*POS, 1]], "reference")[0][POS[1], POS[0]] == 255


def test_cli_refuses_a_model_off_the_contract_in_one_line(off_contract_tflite, capsys):
    from oace.cli import main

    assert main(["app", "--checkpoint", str(off_contract_tflite), "--port", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("oace app: error:") and "lacks input(s)" in err[0]


# --- the page's state, without a server ----------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, one_torch_thread):
    from oace.model.registry import build_model, save_checkpoint
    from oace.app.models import open_models

    path = save_checkpoint(build_model("segmenter_tiny", seed=0), tmp_path_factory.mktemp("ckpt") / "tiny.pt")
    return open_models([str(path)], num_threads=1)


def test_undo_restores_the_previous_mask_so_the_next_tap_sees_what_it_would_have(tiny_models):
    from skimage import data

    from oace.app.taps import Taps

    models = tiny_models.all()
    undone, straight = Taps(data.chelsea(), "a"), Taps(data.chelsea(), "b")
    undone.add(*POS, True, models)
    undone.add(40, 40, False, models)
    undone.undo()
    undone.add(300, 200, True, models)
    straight.add(*POS, True, models)
    straight.add(300, 200, True, models)
    a, b = undone.tracks["tiny.pt"], straight.tracks["tiny.pt"]
    assert np.array_equal(a.outputs[-1], b.outputs[-1]) and np.array_equal(a.mask(), b.mask())
    assert undone.rows().tolist()[:2] == straight.rows().tolist()[:2]
    assert undone.rows()[2:].tolist() == [[0, 0, -1]] * 22  # the padding the bundle gets


def test_a_model_loaded_after_some_clicks_catches_up_on_them(tmp_path, one_torch_thread):
    from oace.model.registry import build_model, save_checkpoint
    from skimage import data

    from oace.app.models import open_models
    from oace.app.taps import Taps

    path = save_checkpoint(build_model("segmenter_tiny", seed=0), tmp_path / "tiny.pt")
    models = open_models([str(path)], num_threads=1)
    taps = Taps(data.chelsea(), "chelsea")
    taps.add(*POS, True, models.all())
    taps.add(40, 40, False, models.all())
    late = models.add(str(path))  # the same weights under a second name
    taps.sync(models.all())
    assert late.name == "tiny.pt (2)" and len(taps.tracks[late.name].outputs) == 2
    for first, replayed in zip(taps.tracks["tiny.pt"].outputs, taps.tracks[late.name].outputs):
        assert np.array_equal(first, replayed)


def test_the_25th_tap_is_refused_with_a_message_and_nothing_changes(tiny_models):
    import gradio as gr
    from skimage import data

    from oace.app.taps import Taps
    from oace.app.ui import POSITIVE, Page, PageConfig, _page_errors

    page = Page(PageConfig(tiny_models, Path("/nonexistent"), "test"))
    taps = Taps(data.chelsea(), "chelsea")
    for i in range(24):
        taps.add(10 + i, 20, True, tiny_models.all())
    tap = _page_errors(page.tap, 7)
    out = tap(POSITIVE, taps, gr.SelectData(None, {"index": [100, 100], "value": None}))
    assert out[-1] == "**Could not do that:** the bundle takes at most 24 clicks per object: undo or reset to go on"
    assert len(taps.clicks) == 24 and len(taps.tracks["tiny.pt"].outputs) == 24
    no_photo = tap(POSITIVE, None, gr.SelectData(None, {"index": [1, 1], "value": None}))
    assert no_photo[-1].endswith("load a photo first (a sample or an upload)")
    beside = tap(POSITIVE, taps, gr.SelectData(None, {"index": None, "value": None}))
    assert beside[-1].endswith("that tap was outside the photo")


def test_a_first_negative_click_is_refused(tiny_models):
    from skimage import data

    from oace.app.taps import Taps

    taps = Taps(data.chelsea(), "chelsea")
    with pytest.raises(InputError, match="first click must be positive"):
        taps.add(*POS, False, tiny_models.all())
    assert taps.clicks == []


def test_uploads_are_turned_upright_by_exif_and_non_images_are_input_errors(tmp_path):
    from oace.app.images import load_photo

    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[:, :10] = 255  # a white band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    Image.fromarray(rgb).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    upright = load_photo(tmp_path / "rotated.jpg")
    assert upright.shape == (30, 20, 3)
    assert upright[:10].mean() > 200 and upright[-10:].mean() < 50  # the band is now on top
    (tmp_path / "notes.jpg").write_bytes(b"GIF89a but not really")
    with pytest.raises(InputError, match="notes.jpg: not an image file"):
        load_photo(tmp_path / "notes.jpg")


def test_the_default_models_are_the_main_jobs_bundles_else_the_reference(tmp_path):
    from oace.app.models import default_models

    paths, why = default_models(tmp_path)
    assert paths == ["reference"] and "reference checkpoint" in why
    for name in ("oace_segmenter_int8.tflite", "oace_segmenter_fp32.tflite"):
        (tmp_path / name).write_bytes(b"x")
    paths, why = default_models(tmp_path)
    assert paths == [str(tmp_path / "oace_segmenter_fp32.tflite"), str(tmp_path / "oace_segmenter_int8.tflite")]
    assert "main job's bundles" in why


def test_taps_on_the_shown_picture_map_to_the_photo_pixel_under_them():
    from oace.app.images import display_size, display_to_photo

    assert display_size(451, 300) == (451, 300)
    assert display_size(4000, 3000) == (1024, 768)
    assert display_to_photo(200, 150, (451, 300), (451, 300)) == (200, 150)
    assert display_to_photo(1023, 767, (1024, 768), (4000, 3000)) == (3998, 2998)
    assert display_to_photo(0, 0, (1024, 768), (4000, 3000)) == (1, 1)


def test_the_sample_photos_are_in_the_wheel_and_rgb():
    from oace.app.images import sample_photos

    for name, load in sample_photos().items():
        photo = load()
        assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3, name


def test_a_missing_model_is_a_checkpoint_error(tmp_path):
    from oace.app.models import open_models

    with pytest.raises(CheckpointError, match="not found"):
        open_models([str(tmp_path / "nothing.tflite")])
    assert issubclass(CheckpointError, ToolkitError)


def test_zoom_in_taps_answer_as_oace_eval_zoom_in_and_undo_restores_the_zoom_box(tiny_models):
    from skimage import data

    from oace.app.taps import Taps
    from oace.model.zoom_in import ZoomIn

    models, photo = tiny_models.all(), data.chelsea()
    taps, plain, undone = Taps(photo, "z", ZoomIn()), Taps(photo, "p"), Taps(photo, "u", ZoomIn())
    session = Session(models[0].backend, photo, ZoomIn())
    clicks = [Click(*POS, True), Click(40, 40, False), Click(300, 200, True)]
    for k, c in enumerate(clicks, 1):
        taps.add(c.x, c.y, c.is_positive, models)
        plain.add(c.x, c.y, c.is_positive, models)
        expected = session(clicks[:k]) > session.pred_thr
        assert np.array_equal(taps.tracks["tiny.pt"].mask(), expected), f"tap {k}"
    assert not np.array_equal(taps.tracks["tiny.pt"].outputs[-1], plain.tracks["tiny.pt"].outputs[-1])  # the crop ran
    undone.add(*POS, True, models)
    undone.add(40, 40, False, models)
    undone.add(100, 250, False, models)
    undone.undo()
    undone.add(300, 200, True, models)
    a, b = undone.tracks["tiny.pt"], taps.tracks["tiny.pt"]
    assert np.array_equal(a.outputs[-1], b.outputs[-1]) and np.array_equal(a.mask(), b.mask())


def test_oace_app_zoom_in_flag_reaches_the_config():
    from oace.cli import build_parser
    from oace.commands.options import given

    args = build_parser().parse_args(["app", "--zoom-in"])
    assert given(args, zoom_in="zoom_in") == {"zoom_in": True}
    assert given(build_parser().parse_args(["app"]), zoom_in="zoom_in") == {}
