"""Reading images safely: every failure becomes an ImageError that names the file.

Odd but valid images (CMYK, 16-bit grey, palette, alpha, EXIF-rotated, tiny) are converted
to upright 8-bit RGB so that every later stage sees one format.
"""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from shopthelook.core.errors import ImageError

# Our own pixel limit (checked from the header, before decoding) replaces PIL's global one,
# which would raise a DecompressionBombError only at twice its limit and only warn below.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False

DEFAULT_MAX_PIXELS = 40_000_000

ImageSource = str | Path | bytes | IO[bytes] | Image.Image


def _pil_open(fp) -> Image.Image:
    """PIL's own Image.open. ultralytics replaces it with a wrapper that, on an unidentified
    file, tries to pip-install a HEIF plugin and logs a traceback: not for our error path."""
    opener = Image.open
    module = sys.modules.get(getattr(opener, "__module__", "") or "")
    original = getattr(module, "_image_open", None) if module is not None else None
    return (original if callable(original) else opener)(fp)


def _describe(source: ImageSource, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, Image.Image):
        return "<image>"
    return "<upload>"


def load_image(
    source: ImageSource,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str | None = None,
    max_side: int | None = None,
) -> Image.Image:
    """Open ``source`` (path, bytes, file object or PIL image) as upright 8-bit RGB.

    With ``max_side`` the result is at most that many pixels on its long side: a JPEG is
    decoded at reduced size (libjpeg scales by 1/2, 1/4 or 1/8 while decoding), anything
    else is reduced after decoding. Raises ImageError with the file name and the problem for
    anything unreadable.
    """
    label = _describe(source, name)
    if isinstance(source, Image.Image):
        return to_rgb(source)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise ImageError(f"{label}: no such file")
        if path.is_dir():
            raise ImageError(f"{label}: is a folder, not an image file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageError(f"{label}: cannot be read ({exc.strerror or exc})") from None
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        data = source.read()
    if len(data) == 0:
        raise ImageError(f"{label}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = _pil_open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(f"{label}: not an image (unrecognised format)") from None
    except Exception as exc:  # PIL raises many types for malformed headers
        raise ImageError(f"{label}: not a readable image ({exc})") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageError(f"{label}: image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(
            f"{label}: {width}x{height} = {width * height:,} pixels is over the limit of "
            f"{max_pixels:,} (raise max_image_pixels if this image is genuine)"
        )
    try:
        if max_side and max(width, height) > max_side:
            image.draft(image.mode, (max_side, max_side))  # only JPEGs act on it
        image.load()
    except Exception as exc:
        raise ImageError(f"{label}: truncated or corrupt image data ({exc})") from None
    try:
        image = to_rgb(image)
    except (ValueError, OSError) as exc:  # e.g. a colour mode PIL cannot convert to RGB
        raise ImageError(f"{label}: unsupported image ({image.mode} mode: {exc})") from None
    if max_side and max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Upright 8-bit RGB; transparency is composited on white (catalog shots are on white)."""
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # a malformed EXIF block must not make a valid picture unreadable
        pass
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(image, dtype=np.float64)
        hi = float(arr.max()) if arr.size else 0.0
        # 16-bit pixels map 0..65535 onto 0..255 whatever the content, so a dark 16-bit photo
        # stays dark; 32-bit "I" images holding 8-bit values are kept as they are.
        if mode.startswith("I;16") or 255 < hi <= 65535:
            scale = 255.0 / 65535.0
        elif hi > 65535:
            scale = 255.0 / hi
        else:
            scale = 1.0
        image = Image.fromarray(np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8), "L")
    elif mode == "F":
        arr = np.asarray(image, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        image = Image.fromarray(arr.astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image


def crop(image: Image.Image, box, margin: float = 0.0) -> Image.Image:
    """Crop ``box`` (a shopthelook.core.types.Box) grown by ``margin``; never an empty image."""
    width, height = image.size
    b = box.expanded(margin, width, height) if margin else box
    # Clip every edge into the image so that a box partly or wholly outside it still gives
    # at least one real pixel (PIL would pad the outside with black, or refuse).
    x1 = min(max(0, int(np.floor(b.x1))), width - 1)
    y1 = min(max(0, int(np.floor(b.y1))), height - 1)
    x2 = min(max(x1 + 1, int(np.ceil(b.x2))), width)
    y2 = min(max(y1 + 1, int(np.ceil(b.y2))), height)
    return image.crop((x1, y1, x2, y2))
