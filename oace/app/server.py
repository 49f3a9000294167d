"""Serve the page on the loopback address, offline: no analytics, no share link, no CDN assets.

Gradio's own assets (scripts, fonts of its default theme) ship inside the wheel; analytics and the
version check are off through `Blocks(analytics_enabled=False)`, which also sets
HF_HUB_DISABLE_TELEMETRY for the Hugging Face client it uses; `share=False` opens no tunnel.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

from oace.app.models import ModelSet, default_models, open_models
from oace.model.zoom_in import ZoomIn
from oace.errors import InputError


@dataclasses.dataclass(frozen=True)
class AppConfig:
    models: Sequence[str] = ()  # checkpoints, `reference` or .tflite; empty: default_models()
    host: str = "127.0.0.1"
    port: int | None = None  # None: the first free port from 7860
    threads: int | None = None  # CPU threads per model (None: each runtime's default)
    zoom_in: bool = False  # follow-up taps on a crop around the mask (RITM's ZoomIn, as oace eval --zoom-in)


@dataclasses.dataclass
class RunningApp:
    """A started server: `url`, the loaded `models`, `close()` to stop it and delete its files."""

    url: str
    models: ModelSet
    why: str
    demo: object
    out_dir: Path

    def close(self) -> None:
        self.demo.close()
        shutil.rmtree(self.out_dir, ignore_errors=True)


def start(cfg: AppConfig) -> RunningApp:
    """Open the models (CheckpointError/InputError before anything listens) and start the server in a thread."""
    from oace.app.ui import PageConfig, build_page

    if cfg.port is not None and not 1 <= cfg.port <= 65535:
        raise InputError(f"--port {cfg.port}: must be 1..65535")
    paths, why = (list(cfg.models), "as asked with --checkpoint") if cfg.models else default_models()
    models = open_models(paths, cfg.threads)
    out_dir = Path(tempfile.mkdtemp(prefix="oace_app_"))
    host = "127.0.0.1" if cfg.host in ("localhost", "") else cfg.host
    demo = build_page(PageConfig(models, out_dir, why, ZoomIn() if cfg.zoom_in else None), url_hint=f"http://{host}:{cfg.port or 7860}/")
    try:
        demo.launch(server_name=host, server_port=cfg.port, share=False, prevent_thread_lock=True, quiet=True,
                    inbrowser=False, show_error=True, footer_links=["api", "settings"], ssr_mode=False,
                    allowed_paths=[str(out_dir)], mcp_server=False)
    except OSError as exc:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise InputError(f"cannot listen on {host}:{cfg.port or '7860+'} ({exc})") from None
    return RunningApp(demo.local_url, models, why, demo, out_dir)


def serve(cfg: AppConfig) -> None:
    """`oace app`: start, say which models and where, and serve until Ctrl-C."""
    app = start(cfg)
    print(f"oace app: models: {', '.join(m.name for m in app.models.all())} ({app.why})")
    print(f"oace app: open {app.url} (offline; Ctrl-C stops it)", flush=True)
    try:
        app.demo.block_thread()
    finally:
        app.close()
