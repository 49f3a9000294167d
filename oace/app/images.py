"""Photos in and pictures out: upload decoding (EXIF rotation honoured), the offline sample photos,
mask overlays, the disagreement map and the mask PNG.

Arrays: photos uint8 [H, W, 3] RGB 0..255; masks bool [H, W] (probability > the model's threshold, as `oace eval`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from oace.errors import InputError

DISPLAY_MAX = 1024  # longest side of the pictures sent to the page
MASK_RGB = (30, 144, 255)
DISAGREE_RGB = (255, 0, 200)
CLICK_RGB = {True: (0, 220, 0), False: (230, 0, 0)}
MAX_PIXELS = 40_000_000  # a decompression bomb is a user error here, not a crash


def load_photo(path: str | Path) -> np.ndarray:
    """Any image file Pillow reads -> uint8 [H, W, 3] RGB, turned upright by its EXIF orientation."""
    p = Path(path)
    try:
        with Image.open(p) as im:
            if im.width * im.height > MAX_PIXELS:
                raise InputError(f"{p.name}: {im.width}x{im.height} is too large (at most {MAX_PIXELS // 1_000_000} Mpx)")
            return np.array(ImageOps.exif_transpose(im).convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"{p.name}: not an image file Pillow can read ({type(exc).__name__})") from None


def sample_photos() -> dict[str, Callable[[], np.ndarray]]:
    """scikit-image's bundled photos (in the wheel, no download): name -> loader of uint8 RGB."""
    from skimage import data

    return {"chelsea": data.chelsea, "astronaut": data.astronaut, "coffee": data.coffee, "rocket": data.rocket,
            "motorcycle": lambda: data.stereo_motorcycle()[0]}


def display_size(width: int, height: int) -> tuple[int, int]:
    """The (width, height) the page shows: the photo, shrunk so its longest side is <= DISPLAY_MAX."""
    scale = min(1.0, DISPLAY_MAX / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def display_to_photo(x: float, y: float, shown: tuple[int, int], photo: tuple[int, int]) -> tuple[int, int]:
    """A pixel of the shown picture (width, height = shown) -> the photo pixel under its center."""
    (sw, sh), (pw, ph) = shown, photo
    return min(pw - 1, max(0, int((x + 0.5) * pw / sw))), min(ph - 1, max(0, int((y + 0.5) * ph / sh)))


def _shown(photo: np.ndarray) -> Image.Image:
    im = Image.fromarray(photo)
    size = display_size(im.width, im.height)
    return im if size == im.size else im.resize(size, Image.BILINEAR)


def _shown_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    im = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.array(im if im.size == size else im.resize(size, Image.NEAREST)) > 127


def draw_clicks(im: Image.Image, clicks: Sequence[tuple[int, int, bool]], photo_wh: tuple[int, int]) -> Image.Image:
    """Dots at the clicks (photo pixels), green positive, red negative, numbered in order."""
    draw = ImageDraw.Draw(im)
    r = max(4, round(max(im.size) / 90))
    for i, (x, y, positive) in enumerate(clicks, 1):
        cx, cy = (x + 0.5) * im.width / photo_wh[0], (y + 0.5) * im.height / photo_wh[1]
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=CLICK_RGB[positive], outline=(255, 255, 255), width=2)
        draw.text((cx + r + 2, cy - r - 2), str(i), fill=(255, 255, 255))
    return im


def photo_with_clicks(photo: np.ndarray, clicks: Sequence[tuple[int, int, bool]]) -> np.ndarray:
    """The tappable picture: the photo at display size with the clicks drawn on it."""
    return np.array(draw_clicks(_shown(photo), clicks, (photo.shape[1], photo.shape[0])))


def overlay(photo: np.ndarray, mask: np.ndarray, clicks: Sequence[tuple[int, int, bool]]) -> np.ndarray:
    """Photo at display size, mask pixels tinted, their outline drawn, clicks on top."""
    im = _shown(photo)
    m = _shown_mask(mask, im.size)
    arr = np.array(im, dtype=np.float32)
    arr[m] = 0.45 * arr[m] + 0.55 * np.array(MASK_RGB, np.float32)
    edge = m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1))
    arr[edge] = 255.0
    return np.array(draw_clicks(Image.fromarray(arr.astype(np.uint8)), clicks, (photo.shape[1], photo.shape[0])))


def disagreement(masks: Sequence[np.ndarray]) -> np.ndarray:
    """bool [H, W]: pixels where the masks do not all agree (for two masks: their XOR)."""
    stack = np.stack([np.asarray(m, dtype=bool) for m in masks])
    return stack.any(axis=0) & ~stack.all(axis=0)


def disagreement_picture(photo: np.ndarray, diff: np.ndarray) -> np.ndarray:
    """The photo greyed and dimmed at display size, disagreeing pixels in magenta."""
    im = _shown(photo)
    grey = np.array(im.convert("L"), dtype=np.float32)[..., None] * 0.5
    arr = np.repeat(grey, 3, axis=2)
    arr[_shown_mask(diff, im.size)] = DISAGREE_RGB
    return arr.astype(np.uint8)


def write_mask_png(mask: np.ndarray, path: Path) -> Path:
    """bool [H, W] -> 8-bit greyscale PNG, 255 object / 0 background, at the photo's size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(path)  # 2-D uint8: mode L
    return path
