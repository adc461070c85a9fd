"""Reading images: every bad input is an ImageError naming the file and the problem; every odd
but valid image comes out as upright 8-bit RGB of the right size. Crops are never empty."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import draw_image
from PIL import Image

from shopthelook.core.errors import ImageError
from shopthelook.core.images import crop, load_image, to_rgb
from shopthelook.core.types import Box

# -- helpers ---------------------------------------------------------------------------------


def _noise(size=(64, 48), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def _save(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(width: int, height: int) -> bytes:
    """A 1-bit greyscale PNG whose header claims ``width`` x ``height``; it stays tiny because
    only a few rows of zeros are stored (a real bomb would compress all of them to ~100 KB)."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" * (1 + (width + 7) // 8)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(row * 4, 9))
        + _png_chunk(b"IEND", b"")
    )


def _assert_names(err: pytest.ExceptionInfo, name: str, *problem: str) -> None:
    message = str(err.value)
    assert name in message, message
    assert any(p in message for p in problem), message
    assert "\n" not in message


# -- bad input -------------------------------------------------------------------------------


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError) as err:
        load_image(path)
    _assert_names(err, "empty.jpg", "empty file")


def test_truncated_jpeg(tmp_path):
    whole = _save(_noise((200, 150)), tmp_path / "whole.jpg", quality=90).read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ImageError) as err:
        load_image(path)
    _assert_names(err, "cut.jpg", "truncated")


def test_png_with_corrupt_data(tmp_path):
    data = bytearray(_save(_noise((80, 60)), tmp_path / "ok.png").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 40] = b"\xff" * 40
    path = tmp_path / "corrupt.png"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError) as err:
        load_image(path)
    _assert_names(err, "corrupt.png", "truncated or corrupt", "not a readable image")


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels\n" * 20)
    with pytest.raises(ImageError) as err:
        load_image(path)
    _assert_names(err, "notes.jpg", "not an image")


def test_image_over_the_pixel_limit(tmp_path):
    path = _save(Image.new("RGB", (2000, 1500), (200, 180, 160)), tmp_path / "big.png")
    assert path.stat().st_size < 100_000  # small on disk, large in memory
    with pytest.raises(ImageError) as err:
        load_image(path, max_pixels=1_000_000)
    _assert_names(err, "big.png", "over the limit")
    assert "2000x1500" in str(err.value) and "1,000,000" in str(err.value)
    assert load_image(path, max_pixels=3_000_000).size == (2000, 1500)


def test_decompression_bomb_header_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_bomb_png(30_000, 30_000))
    assert path.stat().st_size < 1_000
    with pytest.raises(ImageError) as err:
        load_image(path)  # the default limit, 40 megapixels
    _assert_names(err, "bomb.png", "over the limit")
    assert "30000x30000" in str(err.value)


def test_missing_path(tmp_path):
    with pytest.raises(ImageError) as err:
        load_image(tmp_path / "nowhere.jpg")
    _assert_names(err, "nowhere.jpg", "no such file")


def test_folder(tmp_path):
    folder = tmp_path / "photos.jpg"
    folder.mkdir()
    with pytest.raises(ImageError) as err:
        load_image(folder)
    _assert_names(err, "photos.jpg", "folder")


def test_bad_bytes_are_named_by_the_caller():
    with pytest.raises(ImageError) as err:
        load_image(b"GIF89a broken", name="upload.gif")
    _assert_names(err, "upload.gif", "not an image", "not a readable image")
    with pytest.raises(ImageError) as err:
        load_image(b"")
    _assert_names(err, "<upload>", "empty")


# -- odd but valid images --------------------------------------------------------------------


def _pixel(image: Image.Image, xy=(0, 0)) -> tuple[int, int, int]:
    return tuple(int(v) for v in image.getpixel(xy))


def _close(a, b, tol=6) -> bool:
    return all(abs(int(x) - int(y)) <= tol for x, y in zip(a, b, strict=True))


def _loaded(path: Path) -> Image.Image:
    image = load_image(path)
    assert image.mode == "RGB"
    return image


def test_cmyk_jpeg(tmp_path):
    cmyk = Image.new("CMYK", (40, 30), (0, 255, 255, 0))  # full magenta + yellow = red
    path = _save(cmyk, tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(path).mode == "CMYK"
    image = _loaded(path)
    assert image.size == (40, 30)
    assert _close(_pixel(image, (20, 15)), (255, 0, 0), tol=12)


def test_16_bit_greyscale_png(tmp_path):
    arr = np.zeros((20, 30), dtype=np.uint16)
    arr[:, 10:20] = 32768
    arr[:, 20:] = 65535
    path = _save(Image.fromarray(arr), tmp_path / "grey16.png")
    assert Image.open(path).mode.startswith("I")
    image = _loaded(path)
    assert image.size == (30, 20)
    assert _pixel(image, (5, 5)) == (0, 0, 0)
    assert _close(_pixel(image, (15, 5)), (128, 128, 128), tol=1)
    assert _pixel(image, (25, 5)) == (255, 255, 255)


def test_dark_16_bit_image_stays_dark(tmp_path):
    # Scaling by the image's own maximum would turn a dim picture white.
    path = _save(Image.fromarray(np.full((8, 8), 1000, dtype=np.uint16)), tmp_path / "dim.png")
    assert _close(_pixel(_loaded(path)), (4, 4, 4), tol=1)


def test_palette_png_without_transparency(tmp_path):
    source = draw_image(3, (50, 40))
    path = _save(source.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), tmp_path / "p.png")
    assert Image.open(path).mode == "P"
    image = _loaded(path)
    assert image.size == (50, 40)
    assert np.abs(np.asarray(image, int) - np.asarray(source, int)).mean() < 20


def test_palette_png_with_transparency_is_composited_on_white(tmp_path):
    pal = Image.new("P", (10, 10), 0)
    pal.putpalette([0, 0, 0, 0, 0, 255] + [0] * (254 * 3))
    pal.paste(1, (5, 0, 10, 10))  # right half blue, left half index 0 (transparent black)
    path = _save(pal, tmp_path / "ptrans.png", transparency=0)
    image = _loaded(path)
    assert _pixel(image, (1, 5)) == (255, 255, 255)
    assert _pixel(image, (8, 5)) == (0, 0, 255)


def test_rgba_png_is_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (3, 1))
    rgba.putdata([(255, 0, 0, 0), (0, 0, 255, 255), (0, 0, 0, 128)])
    image = _loaded(_save(rgba, tmp_path / "rgba.png"))
    assert _pixel(image, (0, 0)) == (255, 255, 255)
    assert _pixel(image, (1, 0)) == (0, 0, 255)
    assert _close(_pixel(image, (2, 0)), (127, 127, 127), tol=2)


def test_la_png(tmp_path):
    la = Image.new("LA", (4, 2), (0, 255))
    la.putpixel((0, 0), (0, 0))
    image = _loaded(_save(la, tmp_path / "la.png"))
    assert image.size == (4, 2)
    assert _pixel(image, (0, 0)) == (255, 255, 255)
    assert _pixel(image, (3, 1)) == (0, 0, 0)


def test_exif_rotated_jpeg_is_turned_upright(tmp_path):
    stored = Image.new("RGB", (60, 40), (255, 255, 255))
    stored.paste((255, 0, 0), (0, 0, 15, 10))  # a red mark in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = _save(stored, tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    image = _loaded(path)
    assert image.size == (40, 60)  # width and height swap
    assert _close(_pixel(image, (36, 3)), (255, 0, 0), tol=40)  # the mark is now top-right
    assert _close(_pixel(image, (3, 3)), (255, 255, 255), tol=40)


@pytest.mark.parametrize("size", [(1, 1), (3, 3)])
def test_tiny_images(tmp_path, size):
    path = _save(Image.new("RGB", size, (10, 200, 30)), tmp_path / f"tiny{size[0]}.png")
    image = _loaded(path)
    assert image.size == size
    assert _pixel(image) == (10, 200, 30)


@pytest.mark.parametrize("mode", ["L", "1", "I", "F", "RGB"])
def test_other_modes_become_rgb(mode):
    image = to_rgb(Image.new(mode, (5, 4)))
    assert image.mode == "RGB" and image.size == (5, 4)


def test_bytes_file_objects_and_pil_images_are_accepted(tmp_path):
    data = _save(draw_image(1), tmp_path / "d.png").read_bytes()
    assert load_image(data).size == (96, 80)
    assert load_image(io.BytesIO(data)).size == (96, 80)
    assert load_image(str(tmp_path / "d.png")).size == (96, 80)
    assert load_image(Image.new("LA", (7, 5))).mode == "RGB"


# -- crops -----------------------------------------------------------------------------------


def test_crop_inside_the_image_is_exact():
    image = draw_image(2, (100, 80))
    part = crop(image, Box(10, 20, 50, 60))
    assert part.size == (40, 40)
    assert part.tobytes() == image.crop((10, 20, 50, 60)).tobytes()


def test_crop_rounds_fractional_edges_outwards():
    assert crop(draw_image(2, (100, 80)), Box(10.6, 20.2, 49.1, 59.9)).size == (40, 40)


def test_crop_margin_grows_and_is_clipped():
    image = draw_image(2, (100, 80))
    assert crop(image, Box(20, 20, 60, 60), margin=0.25).size == (60, 60)
    assert crop(image, Box(0, 0, 100, 80), margin=0.5).size == (100, 80)


def _colours(image: Image.Image) -> set[tuple[int, ...]]:
    return {tuple(p) for p in np.asarray(image).reshape(-1, 3).tolist()}


@pytest.mark.parametrize(
    "box",
    [
        Box(50.2, 40.1, 50.3, 40.2),  # smaller than a pixel
        Box(30, 30, 30, 30),  # empty
        Box(150, 10, 200, 40),  # right of the image
        Box(-40, -40, -10, -10),  # above and left of it
        Box(-10, -10, 500, 500),  # around all of it
        Box(99.5, 79.5, 120, 90),  # the last pixel and beyond
    ],
)
def test_crop_is_never_empty_and_never_leaves_the_image(box):
    image = draw_image(2, (100, 80))
    for margin in (0.0, 0.1):
        part = crop(image, box, margin)
        assert 1 <= part.width <= 100 and 1 <= part.height <= 80
        # no black padding from outside the image: every pixel comes from the picture
        assert _colours(part) <= _colours(image)
