"""Robust image decoding: every supported input, and a clear error for every bad one."""

from __future__ import annotations

import io
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vfm.platform import image_io
from vfm.platform.errors import VfmError
from vfm.platform.image_io import read_image


def _rgb(height: int = 12, width: int = 16) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _save(image: Image.Image, path: Path, **params: object) -> Path:
    image.save(path, **params)
    return path


def _one_line(err: pytest.ExceptionInfo[VfmError]) -> str:
    text = str(err.value)
    assert "\n" not in text and "fix:" in text
    return text


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".webp"])
def test_lossless_formats_round_trip(tmp_path: Path, suffix: str) -> None:
    pixels = _rgb()
    params = {"lossless": True} if suffix == ".webp" else {}
    path = _save(Image.fromarray(pixels), tmp_path / f"a{suffix}", **params)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (12, 16, 3)
    np.testing.assert_array_equal(out, pixels)
    np.testing.assert_array_equal(read_image(str(path)), pixels)
    np.testing.assert_array_equal(read_image(path.read_bytes()), pixels)


def test_jpeg_and_pil_image(tmp_path: Path) -> None:
    pixels = np.full((20, 20, 3), (200, 120, 40), dtype=np.uint8)
    path = _save(Image.fromarray(pixels), tmp_path / "a.jpg", quality=95)
    assert np.abs(read_image(path).astype(int) - pixels).max() <= 3
    np.testing.assert_array_equal(read_image(Image.fromarray(pixels)), pixels)


def test_greyscale_jpeg_is_replicated(tmp_path: Path) -> None:
    path = _save(Image.new("L", (16, 16), 90), tmp_path / "grey.jpg")
    out = read_image(path)
    assert out.shape == (16, 16, 3)
    assert np.all(out[..., 0] == out[..., 1]) and np.all(out[..., 1] == out[..., 2])
    assert abs(int(out[0, 0, 0]) - 90) <= 2


def test_rgba_png_is_composited_on_black(tmp_path: Path) -> None:
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    rgba[...] = (200, 100, 50, 128)
    rgba[0, 0, 3] = 0
    rgba[1, 1, 3] = 255
    out = read_image(_save(Image.fromarray(rgba), tmp_path / "rgba.png"))
    assert out[0, 0].tolist() == [0, 0, 0]
    assert out[1, 1].tolist() == [200, 100, 50]
    assert out[5, 5].tolist() == [100, 50, 25]


def test_la_and_transparent_palette_png(tmp_path: Path) -> None:
    la = Image.fromarray(np.dstack([np.full((9, 9), 200, np.uint8), np.full((9, 9), 0, np.uint8)]), mode="LA")
    assert read_image(_save(la, tmp_path / "la.png")).max() == 0
    palette = Image.new("P", (9, 9), 1)
    palette.putpalette([0, 0, 0, 250, 10, 10] + [0] * 762)
    palette.putpixel((0, 0), 0)
    out = read_image(_save(palette, tmp_path / "p.png", transparency=1))
    assert out[4, 4].tolist() == [0, 0, 0]  # index 1 is transparent
    opaque = read_image(_save(palette, tmp_path / "p2.png"))
    assert opaque[4, 4].tolist() == [250, 10, 10]


def test_16_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 65535, 257 * 100], [1000, 32768, 65535]] * 5, dtype=np.uint16)
    values = np.tile(values, (1, 5))
    path = _save(Image.fromarray(values), tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I")
    out = read_image(path)
    assert out.shape == (10, 15, 3)
    assert out[0, :3, 0].tolist() == [0, 255, 100]
    assert out[1, 1, 0] == 128


def test_mode_i_and_mode_f_images(tmp_path: Path) -> None:
    mode_i = Image.fromarray(np.full((8, 8), 65535, dtype=np.int32), mode="I")
    assert read_image(mode_i)[0, 0].tolist() == [255, 255, 255]
    unit = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    path = _save(Image.fromarray(unit), tmp_path / "unit.tif")
    out = read_image(path)
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255
    wide = Image.fromarray(unit * 1000 - 500)
    stretched = read_image(wide)
    assert stretched.min() == 0 and stretched.max() == 255


def test_cmyk_jpeg_is_converted(tmp_path: Path) -> None:
    path = _save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "cmyk.jpg", quality=95)
    out = read_image(path)
    assert out.shape == (16, 16, 3)
    assert out[8, 8, 0] > 240 and out[8, 8, 1] < 15 and out[8, 8, 2] < 15


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.new("RGB", (30, 10), (10, 200, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    out = read_image(_save(image, tmp_path / "rotated.jpg", exif=exif))
    assert out.shape == (30, 10, 3)


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.full((9, 9), 7, np.uint8), 7),
        (np.full((9, 9, 1), 7, np.uint8), 7),
        (np.full((9, 9, 3), 7, np.uint8), 7),
        (np.full((9, 9, 3), 257 * 7, np.uint16), 7),
        (np.full((9, 9, 3), 0.5, np.float32), 128),
        (np.full((9, 9, 3), 100.0, np.float64), 100),
        (np.full((9, 9, 3), 42, np.int64), 42),
    ],
)
def test_arrays(array: np.ndarray, expected: int) -> None:
    out = read_image(array)
    assert out.shape == (9, 9, 3) and out.dtype == np.uint8
    assert np.all(out == expected)
    assert not np.shares_memory(out, array)


def test_rgba_array_is_composited_on_black() -> None:
    rgba = np.zeros((9, 9, 4), np.float32)
    rgba[...] = (1.0, 0.5, 0.0, 0.5)
    assert read_image(rgba)[0, 0].tolist() == [128, 64, 0]


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((9, 9, 2), np.uint8), "shape"),
        (np.zeros((2, 9, 9, 3), np.uint8), "shape"),
        (np.zeros(81, np.uint8), "shape"),
        (np.zeros((9, 9, 3), np.complex64), "dtype"),
        (np.zeros((9, 9, 3), bool), "dtype"),
        (np.full((9, 9, 3), 300.0), "outside 0..255"),
        (np.full((9, 9, 3), -1, np.int32), "outside 0..255"),
        (np.full((9, 9, 3), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_arrays(array: np.ndarray, message: str) -> None:
    with pytest.raises(VfmError, match=message) as err:
        read_image(array)
    _one_line(err)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VfmError, match=r"file not found") as err:
        read_image(tmp_path / "nope.png")
    assert "nope.png" in _one_line(err)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(VfmError, match=r"directory") as err:
        read_image(tmp_path)
    _one_line(err)


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _save(Image.fromarray(_rgb()), tmp_path / "locked.png")
    monkeypatch.setattr(image_io.os, "access", lambda *_: False)
    with pytest.raises(VfmError, match=r"permission denied") as err:
        read_image(path)
    _one_line(err)


def test_permission_error_while_opening(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _save(Image.fromarray(_rgb()), tmp_path / "locked.png")

    def refuse(*_: object, **__: object) -> Image.Image:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(image_io.Image, "open", refuse)
    with pytest.raises(VfmError, match=r"permission denied"):
        read_image(path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_for_real(tmp_path: Path) -> None:
    path = _save(Image.fromarray(_rgb()), tmp_path / "locked.png")
    path.chmod(0)
    try:
        with pytest.raises(VfmError, match=r"permission denied"):
            read_image(path)
    finally:
        path.chmod(0o600)


def test_empty_file_and_empty_bytes(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(VfmError, match=r"empty") as err:
        read_image(empty)
    _one_line(err)
    with pytest.raises(VfmError, match=r"empty"):
        read_image(b"")


def test_random_bytes_are_not_an_image(tmp_path: Path) -> None:
    junk = np.random.default_rng(1).integers(0, 256, 2048, dtype=np.uint8).tobytes()
    with pytest.raises(VfmError, match=r"not a recognised image") as err:
        read_image(junk)
    _one_line(err)
    path = tmp_path / "junk.png"
    path.write_bytes(junk)
    with pytest.raises(VfmError, match=r"not a recognised image"):
        read_image(path)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_file(tmp_path: Path, suffix: str) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
        buffer, format=suffix[1:].replace("jpg", "jpeg")
    )
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(VfmError, match=r"cannot decode") as err:
        read_image(path)
    assert "cut" in _one_line(err)


def test_too_small(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (1, 1)), tmp_path / "dot.png")
    with pytest.raises(VfmError, match=r"1x1 pixels, smaller than the minimum 8x8") as err:
        read_image(path)
    _one_line(err)
    with pytest.raises(VfmError, match=r"smaller"):
        read_image(np.zeros((4, 100, 3), np.uint8))
    assert read_image(np.zeros((4, 4, 3), np.uint8), min_size=4).shape == (4, 4, 3)


def _png_claiming(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize(("width", "height"), [(100_000, 100_000), (8_000, 8_000), (12_000, 10_000)])
def test_huge_header_is_refused_before_decoding(tmp_path: Path, width: int, height: int) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_claiming(width, height))
    start = time.perf_counter()
    with pytest.raises(VfmError, match=r"too large|more than the limit") as err:
        read_image(path)
    assert time.perf_counter() - start < 0.5
    _one_line(err)


def test_max_pixels_applies_to_arrays_and_files(tmp_path: Path) -> None:
    path = _save(Image.fromarray(_rgb(20, 20)), tmp_path / "a.png")
    with pytest.raises(VfmError, match=r"20x20 = 400 pixels, more than the limit of 399"):
        read_image(path, max_pixels=399)
    with pytest.raises(VfmError, match=r"more than the limit"):
        read_image(_rgb(20, 20), max_pixels=399)


def test_unsupported_source_type() -> None:
    with pytest.raises(VfmError, match=r"cannot read an image from a int"):
        read_image(3)  # type: ignore[arg-type]
