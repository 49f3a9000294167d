"""Drive `oace app` in headless Chromium: load a sample, tap it, wait for the masks, screenshot.

    python benchmarks/app_screenshot.py --out docs/figures/app.png [--checkpoint M ...] [--sample chelsea --at 0.45 0.55]

Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them) and selenium. The browser
test (tests/test_app_browser.py) calls `capture` on its own server; this script starts one with
the given models (default: as `oace app` chooses) and writes the PNG that the README shows.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import time
import urllib.parse
from pathlib import Path
from typing import Any, Sequence

WINDOW = (1400, 1800)


@dataclasses.dataclass(frozen=True)
class Capture:
    tap: tuple[int, int]  # the photo pixel the page says it received (x, y)
    expected: tuple[float, float]  # the photo pixel under the point the browser clicked
    photo_size: tuple[int, int]  # (width, height)
    mask_urls: tuple[str, ...]  # one 0/255 PNG per model, served by the app
    overlays: int  # pictures in the masks gallery (models, plus the disagreement map)
    hosts: tuple[str, ...]  # every host the page requested something from
    screenshot: Path


def chrome(window: tuple[int, int] = WINDOW) -> Any:
    """Headless system Chromium through its own chromedriver (no Selenium Manager download)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        raise RuntimeError("needs chromium and chromedriver on PATH: apt-get install chromium chromium-driver")
    opts = Options()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={window[0]},{window[1]}", "--force-device-scale-factor=1", "--hide-scrollbars"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(driver))


def _wait(fn: Any, timeout: float, what: str) -> Any:
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        try:
            value = fn()
            if value:
                return value
        except Exception:  # the page is still rendering: elements come and go
            pass
        time.sleep(0.25)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def _hosts(driver: Any) -> tuple[str, ...]:
    hosts = set()
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            url = msg["params"]["request"]["url"]
            if url.startswith(("http:", "https:", "ws:", "wss:")):
                hosts.add(urllib.parse.urlsplit(url).hostname or "")
    return tuple(sorted(hosts))


def _tap(driver: Any, at: tuple[float, float]) -> tuple[tuple[float, float], tuple[int, int]]:
    """Click the tappable photo at fractions `at` of its width/height; (expected photo pixel, photo size)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    img = _wait(lambda: driver.find_element(By.CSS_SELECTOR, "#photo img"), 60, "the photo")
    _wait(lambda: driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img), 60, "pixels")
    nat = driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img)
    box = driver.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height]", img)
    # Gradio shows the picture centred in the <img> box, scaled by r (never up); where it draws it:
    r = min(box[0] / nat[0], box[1] / nat[1], 1.0)
    left, top = (box[0] - nat[0] * r) / 2, (box[1] - nat[1] * r) / 2
    dx, dy = round(left + at[0] * nat[0] * r - box[0] / 2), round(top + at[1] * nat[1] * r - box[1] / 2)
    ActionChains(driver).move_to_element_with_offset(img, dx, dy).click().perform()  # offsets from the centre
    shown = ((box[0] / 2 + dx - left) / r, (box[1] / 2 + dy - top) / r)
    return shown, (int(nat[0]), int(nat[1]))


def capture(url: str, out: Path, sample: str = "chelsea", at: tuple[float, float] = (0.45, 0.55),
            n_models: int = 1, timeout: float = 180.0) -> Capture:
    """Open the page, pick `sample`, tap at `at`, wait for every model's overlay, save a screenshot."""
    from selenium.webdriver.common.by import By

    from oace.app.images import sample_photos

    driver = chrome()
    try:
        driver.get(url)
        thumbs = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#samples img"), 60, "the sample gallery")
        thumbs[list(sample_photos()).index(sample)].click()
        _wait(lambda: sample in driver.find_element(By.ID, "message").text, timeout, f"the {sample} photo")
        shown, nat = _tap(driver, at)
        text = _wait(lambda: re.search(r"Click 1 \(positive\) at x=(\d+), y=(\d+) of the (\d+)x(\d+)",
                                       driver.find_element(By.ID, "message").text), timeout, "the masks")
        want = n_models + (n_models >= 2)  # one overlay per model, plus the disagreement map
        overlays = _wait(lambda: [i for i in driver.find_elements(By.CSS_SELECTOR, "#overlays img")][:want]
                         if len(driver.find_elements(By.CSS_SELECTOR, "#overlays img")) >= want else None,
                         60, f"{want} overlays")
        links = _wait(lambda: [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "#masks a")
                               if a.get_attribute("href")], 60, "the mask PNG links")
        w, h = int(text.group(3)), int(text.group(4))
        expected = (shown[0] * w / nat[0], shown[1] * h / nat[1])
        driver.execute_script("window.scrollTo(0, 0)")
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
        return Capture((int(text.group(1)), int(text.group(2))), expected, (w, h), tuple(links), len(overlays),
                       _hosts(driver), out)
    finally:
        driver.quit()


def main(argv: Sequence[str] | None = None) -> int:
    from oace.app import AppConfig, start

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/figures/app.png"))
    ap.add_argument("--checkpoint", action="append", default=[], help="as `oace app --checkpoint` (default: its choice)")
    ap.add_argument("--sample", default="chelsea")
    ap.add_argument("--at", type=float, nargs=2, default=(0.45, 0.55), metavar=("FX", "FY"))
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    app = start(AppConfig(models=tuple(args.checkpoint), threads=args.threads))
    try:
        shot = capture(app.url, args.out, args.sample, tuple(args.at), n_models=len(app.models.all()))
    finally:
        app.close()
    print(f"{shot.screenshot}: tap at {shot.tap} of {shot.photo_size}, {shot.overlays} overlays, hosts {shot.hosts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
