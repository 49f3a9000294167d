"""`oace app`: a local Gradio page (and API) to tap photos and see every loaded model's mask.

- models.py  which models to open (the main job's bundles, else the reference) and their names
- images.py  photos in (upload with EXIF rotation, scikit-image samples), overlays and PNGs out
- taps.py    one photo's clicks and every model's `model.evaluate.Session` (the `oace eval` path)
- api.py     the stateless `segment` endpoint for scripts
- ui.py      the page: layout and event wiring
- server.py  `AppConfig` and `serve`: bind to loopback, offline, print the URL
See docs/app.md.
"""

from oace.app.server import AppConfig, serve, start

__all__ = ["AppConfig", "serve", "start"]
