"""The page: photo in, taps, every model's overlay side by side, click rows, mask PNGs; plus the API.

Every handler turns a ToolkitError into a message on the page (and leaves the rest as it was);
the `segment` endpoint turns it into a `gr.Error`, which a gradio_client call raises.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from pathlib import Path
from typing import Any, Callable

import gradio as gr
import numpy as np

from oace.app import api, images
from oace.app.models import ModelSet
from oace.app.taps import Taps
from oace.model.zoom_in import ZoomIn
from oace.errors import ToolkitError

POSITIVE, NEGATIVE = "positive (add to the object)", "negative (remove from it)"
CLIENT_EXAMPLE = """```python
from gradio_client import Client, handle_file

client = Client("{url}")
mask_png, info = client.predict(
    handle_file("photo.jpg"),          # any image file
    "[[220, 150, 1], [90, 260, 0]]",   # clicks [x, y, label] in the photo's pixels; 1 positive, 0 negative
    "",                                # model: name or index ("" = the first)
    api_name="/segment",
)
print(info["latency_ms"], info["area_fraction"], info["model"])   # mask_png: 0/255 PNG, photo size
```"""


@dataclasses.dataclass(frozen=True)
class PageConfig:
    models: ModelSet
    out_dir: Path  # where mask PNGs are written before Gradio serves them
    why: str  # which models were opened and why, shown at the top
    zoom_in: ZoomIn | None = None  # follow-up taps on a crop around the mask (oace app --zoom-in)


def _message(text: str, error: bool = False) -> str:
    return f"**Could not do that:** {text}" if error else text


class Page:
    """The handlers, bound to one server's models; each returns `render`'s outputs."""

    def __init__(self, cfg: PageConfig) -> None:
        self.cfg = cfg
        self.samples = images.sample_photos()

    # --- rendering -------------------------------------------------------------------------------
    def render(self, taps: Taps | None, message: str) -> tuple[Any, ...]:
        """(state, photo, overlays, numbers, click rows, mask files, message)."""
        if taps is None:
            return None, None, [], "", "", None, message
        models = self.cfg.models.all()
        taps.sync(models)
        clicks = taps.click_tuples()
        masks = {m.name: taps.tracks[m.name].mask() for m in models}
        gallery, lines = [], ["| model | latency of this tap | mask area |", "|---|---|---|"]
        for m in models if clicks else []:
            track, area = taps.tracks[m.name], float(masks[m.name].mean())
            ms = f"{track.latency_ms[-1]:.1f} ms" if track.latency_ms else "-"
            gallery.append((images.overlay(taps.photo, masks[m.name], clicks), f"{m.name} · {ms}"))
            lines.append(f"| `{m.name}` | {ms} | {area:.1%} |")
        if len(models) >= 2 and clicks:
            diff = images.disagreement(list(masks.values()))
            gallery.append((images.disagreement_picture(taps.photo, diff), f"disagreement · {diff.mean():.2%} of pixels"))
        return (taps, images.photo_with_clicks(taps.photo, clicks), gallery, "\n".join(lines),
                self._rows_text(taps), self._mask_files(masks) if clicks else None, message)

    @staticmethod
    def _rows_text(taps: Taps) -> str:
        rows, contract = taps.rows(), taps.contract()
        n, size = contract.max_clicks, contract.input_size
        used = [f"  [{x:3d}, {y:3d}, {label:2d}],  # click {i + 1}" for i, (x, y, label) in enumerate(rows.tolist())
                if label >= 0]
        pad = n - len(used)
        tail = [f"  # ... {pad} padding rows [0, 0, -1]"] if pad else []
        return "\n".join([f"# clicks: int32 [1, {n}, 3] (x, y, label) on the {size}x{size} grid", "[", *used, *tail, "]"])

    def _mask_files(self, masks: dict[str, np.ndarray]) -> list[str]:
        folder = self.cfg.out_dir / uuid.uuid4().hex
        return [str(images.write_mask_png(mask, folder / f"mask_{Path(name).stem}.png")) for name, mask in masks.items()]

    # --- handlers --------------------------------------------------------------------------------
    def load_sample(self, evt: gr.SelectData) -> tuple[Any, ...]:
        name = list(self.samples)[evt.index]
        return self.render(Taps(self.samples[name](), f"sample: {name}", self.cfg.zoom_in), f"Sample **{name}**: tap the object.")

    def load_upload(self, path: str | None) -> tuple[Any, ...]:
        photo = images.load_photo(path) if path else None
        if photo is None:
            return self.render(None, "No photo.")
        h, w = photo.shape[:2]
        return self.render(Taps(photo, Path(path).name, self.cfg.zoom_in), f"**{Path(path).name}** ({w}x{h}): tap the object.")

    def tap(self, mode: str, taps: Taps | None, evt: gr.SelectData) -> tuple[Any, ...]:
        if taps is None:
            raise ToolkitError("load a photo first (a sample or an upload)")
        if not evt.index:  # Gradio sends no pixel for a tap beside the picture
            raise ToolkitError("that tap was outside the photo")
        shown = images.display_size(taps.width, taps.height)
        x, y = images.display_to_photo(evt.index[0], evt.index[1], shown, (taps.width, taps.height))
        positive = mode != NEGATIVE
        taps.add(x, y, positive, self.cfg.models.all())
        kind = "positive" if positive else "negative"
        return self.render(taps, f"Click {len(taps.clicks)} ({kind}) at x={x}, y={y} of the "
                                 f"{taps.width}x{taps.height} photo.")

    def undo(self, taps: Taps | None) -> tuple[Any, ...]:
        if taps is None:
            raise ToolkitError("no photo loaded")
        taps.undo()
        return self.render(taps, f"Undone: {len(taps.clicks)} click(s) left.")

    def reset(self, taps: Taps | None) -> tuple[Any, ...]:
        if taps is not None:
            taps.reset()
        return self.render(taps, "All clicks cleared: tap the object.")

    def load_model(self, path: str | None) -> tuple[str, str]:
        if not path:
            raise ToolkitError("no model file given")
        try:
            model = self.cfg.models.add(path)
        except ToolkitError as exc:  # name the file as the user knows it, not by Gradio's upload folder
            raise type(exc)(str(exc).replace(str(path), Path(path).name)) from None
        return self.models_text(), f"Loaded **{model.name}** ({model.backend.name}); it runs from the next tap."

    def segment(self, image: str | None, clicks: str, model: str) -> tuple[str, dict[str, Any]]:
        try:
            return api.segment(self.cfg.models, image or "", clicks, model, self.cfg.out_dir, self.cfg.zoom_in)
        except ToolkitError as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    def models_text(self) -> str:
        names = ", ".join(f"{i}: `{m.name}` ({m.backend.name})" for i, m in enumerate(self.cfg.models.all()))
        return f"**Models** ({self.cfg.why}): {names}"


def _page_errors(fn: Callable[..., tuple[Any, ...]], n_out: int) -> Callable[..., tuple[Any, ...]]:
    """A ToolkitError leaves every output as it was except the message (the last output)."""
    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
        try:
            return fn(*args, **kwargs)
        except ToolkitError as exc:
            return (*[gr.skip() for _ in range(n_out - 1)], _message(str(exc), error=True))
    return wrapped


@dataclasses.dataclass(frozen=True)
class Controls:
    samples: gr.Gallery
    upload: gr.File
    mode: gr.Radio
    undo: gr.Button
    reset: gr.Button
    model_file: gr.File


def _controls(page: Page) -> Controls:
    """The left column: where a photo comes from, the click mode, undo/reset, another model."""
    samples = gr.Gallery([(f(), name) for name, f in page.samples.items()], label="Sample photos (scikit-image)",
                         columns=3, height=260, allow_preview=False, elem_id="samples", format="jpeg")
    upload = gr.File(label="Or upload a photo", type="filepath", elem_id="upload", height=110)
    mode = gr.Radio([POSITIVE, NEGATIVE], value=POSITIVE, label="A tap adds a click that is", elem_id="mode")
    with gr.Row():
        undo = gr.Button("Undo", elem_id="undo")
        reset = gr.Button("Reset", elem_id="reset")
    model_file = gr.File(label="Compare another model (.tflite or checkpoint)", type="filepath",
                         elem_id="model_file", height=110)
    return Controls(samples, upload, mode, undo, reset, model_file)


def _results() -> list[gr.components.Component]:
    """Below the photo: overlays, numbers, click rows, mask files (the order of Page.render, less state/photo/message)."""
    overlays = gr.Gallery(label="Masks (and where they disagree)", columns=3, height=420, allow_preview=False,
                          object_fit="contain", format="png", elem_id="overlays")
    with gr.Row():
        numbers = gr.Markdown(elem_id="numbers")
        rows = gr.Code(label="What the bundle receives", language="python", interactive=False, elem_id="rows")
    masks = gr.File(label="Mask PNGs (0/255, the photo's size)", file_count="multiple", elem_id="masks")
    return [overlays, numbers, rows, masks]


def _api(page: Page, url_hint: str) -> None:
    """The documented `segment` endpoint, on hidden components."""
    with gr.Accordion("Use it from a script: the `segment` API", open=False):
        gr.Markdown(CLIENT_EXAMPLE.format(url=url_hint))
    with gr.Row(visible=False):
        image, clicks, model = gr.File(type="filepath"), gr.Textbox(), gr.Textbox()
        mask, info, button = gr.File(), gr.JSON(), gr.Button()
    button.click(page.segment, [image, clicks, model], [mask, info], api_name="segment")


def build_page(cfg: PageConfig, url_hint: str = "http://127.0.0.1:7860/") -> gr.Blocks:
    page = Page(cfg)
    with gr.Blocks(title="oace app", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# Tap a photo, see the mask\nEvery loaded model answers each tap through the bundle contract "
                    "(`docs/bundle.md`), exactly as `oace eval` runs it.")
        models_md = gr.Markdown(page.models_text(), elem_id="models")
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                c = _controls(page)
            with gr.Column(scale=2):
                photo = gr.Image(label="Tap the object", type="numpy", interactive=False, format="png",
                                 elem_id="photo", buttons=["fullscreen"], height=480)
                message = gr.Markdown("Pick a sample or upload a photo.", elem_id="message")
        outs = [state, photo, *_results(), message]
        _api(page, url_hint)
        private = dict(outputs=outs, api_visibility="private")
        c.samples.select(_page_errors(page.load_sample, len(outs)), None, **private)
        c.upload.upload(_page_errors(page.load_upload, len(outs)), [c.upload], **private)
        photo.select(_page_errors(page.tap, len(outs)), [c.mode, state], **private)
        c.undo.click(_page_errors(page.undo, len(outs)), [state], **private)
        c.reset.click(_page_errors(page.reset, len(outs)), [state], **private)
        c.model_file.upload(_page_errors(page.load_model, 2), [c.model_file], [models_md, message],
                            api_name="load_model")
    return demo
