"""`oace app` in a real browser: headless Chromium (Debian's package, driven by Selenium) loads a
sample, taps it, and the mask appears with the tapped pixel inside it; the page asks nothing of
any host but the app's own. The screenshot comes from `benchmarks/app_screenshot.py`, the code
that makes docs/figures/app.png.
"""

from __future__ import annotations

import importlib.util
import io
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow  # TensorFlow conversions / training loops: make test-fast leaves it out

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("app_screenshot", REPO / "benchmarks" / "app_screenshot.py")
app_screenshot = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("app_screenshot", app_screenshot)  # its dataclasses look their module up there
_spec.loader.exec_module(app_screenshot)


@pytest.fixture(scope="module")
def server():
    from oace.app import AppConfig, start

    app = start(AppConfig(models=("reference",), threads=1))  # trained: a tap on the cat segments the cat
    yield app
    app.close()


def test_a_tap_on_a_sample_shows_a_mask_that_contains_the_tapped_pixel(server, tmp_path):
    shot = app_screenshot.capture(server.url, tmp_path / "app.png", sample="chelsea", at=(0.45, 0.55))
    assert shot.photo_size == (451, 300)
    assert abs(shot.tap[0] - shot.expected[0]) <= 1.5 and abs(shot.tap[1] - shot.expected[1]) <= 1.5
    assert shot.overlays == 1 and len(shot.mask_urls) == 1
    with urllib.request.urlopen(shot.mask_urls[0], timeout=30) as response:
        mask = np.array(Image.open(io.BytesIO(response.read())))
    assert mask.shape == (300, 451) and set(np.unique(mask)) <= {0, 255}
    assert mask[shot.tap[1], shot.tap[0]] == 255
    assert 0.01 < (mask == 255).mean() < 0.9
    assert shot.hosts == ("127.0.0.1",)  # offline: no CDN, no analytics, no fonts from the network
    with Image.open(shot.screenshot) as im:
        assert im.format == "PNG" and im.width >= 1000


def test_a_non_image_upload_shows_a_message_and_the_page_keeps_working(server, tmp_path):
    from selenium.webdriver.common.by import By

    fake = tmp_path / "holiday.jpg"
    fake.write_text("not a photo")
    driver = app_screenshot.chrome()
    try:
        driver.get(server.url)
        field = app_screenshot._wait(lambda: driver.find_element(By.CSS_SELECTOR, "#upload input[type=file]"), 60,
                                     "the upload field")
        field.send_keys(str(fake))
        message = app_screenshot._wait(lambda: driver.find_element(By.ID, "message").text
                                       if "holiday.jpg" in driver.find_element(By.ID, "message").text else None,
                                       120, "the message")
        assert message == "Could not do that: holiday.jpg: not an image file Pillow can read (UnidentifiedImageError)"
        driver.find_elements(By.CSS_SELECTOR, "#samples img")[1].click()  # the page still answers
        app_screenshot._wait(lambda: "astronaut" in driver.find_element(By.ID, "message").text, 120, "a sample")
    finally:
        driver.quit()


def test_a_negative_tap_and_undo_from_the_page(server):
    from selenium.webdriver.common.by import By

    driver = app_screenshot.chrome()
    message = lambda: driver.find_element(By.ID, "message").text  # noqa: E731
    try:
        driver.get(server.url)
        app_screenshot._wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#samples img"), 60, "samples")[0].click()
        app_screenshot._wait(lambda: "chelsea" in message(), 120, "the photo")
        app_screenshot._tap(driver, (0.45, 0.55))
        app_screenshot._wait(lambda: "Click 1 (positive)" in message(), 120, "the first mask")
        driver.find_elements(By.CSS_SELECTOR, "#mode input[type=radio]")[1].click()
        app_screenshot._tap(driver, (0.1, 0.1))
        app_screenshot._wait(lambda: "Click 2 (negative)" in message(), 120, "the second mask")
        rows = driver.find_element(By.ID, "rows").text
        assert "# click 1" in rows and "# click 2" in rows and "22 padding rows" in rows
        driver.find_element(By.ID, "undo").click()
        app_screenshot._wait(lambda: message() == "Undone: 1 click(s) left.", 120, "the undo")
    finally:
        driver.quit()
