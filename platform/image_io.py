"""Robust image decoding for the runtime, the CLI and the demo.

:func:`read_image` turns whatever a user hands over (a path, raw bytes, a numpy array
or a Pillow image) into uint8 RGB, or raises a one-line :class:`VfmError` that says
what is wrong and how to fix it. The image size is checked from the header before any
pixel is decoded, so a decompression bomb never allocates its pixels.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vfm.platform.errors import VfmError

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | np.ndarray | Image.Image
"""Everything :func:`read_image` accepts."""

_DECODE_FIX = "the file is corrupt, truncated or not an image; re-export it as PNG or JPEG"
MIN_SIZE = 8
"""The smallest width and height accepted, in pixels."""
MAX_PIXELS = 50_000_000
"""The most pixels (width x height) one decoded image may have: the budget every container's frames share."""


def read_image(source: ImageSource, *, min_size: int = MIN_SIZE, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an image into uint8 RGB.

    Greyscale is replicated to three channels; transparency (RGBA, LA, P with a
    transparent colour) is composited on black; 16-bit images (Pillow modes I;16 and I)
    are scaled by their bit depth, 0..65535 to 0..255; float images (mode F) in [0, 1]
    are multiplied by 255, in [0, 255] kept, and otherwise stretched to 0..255; CMYK
    and other colour modes are converted; the EXIF orientation is applied. Multi-frame
    files give their first frame.

    Arrays may be [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] (RGBA) of uint8, uint16,
    float in [0, 1] or [0, 255], or another integer type with values in 0..255.

    Args:
        source: a file path, the encoded file's bytes, an array or a Pillow image.
        min_size: the smallest width and height accepted, in pixels.
        max_pixels: the largest width x height accepted; checked before decoding.

    Returns:
        uint8 [H, W, 3], RGB, a fresh array.

    Raises:
        VfmError: a missing, unreadable, empty, corrupt or non-image file; an image
            smaller than ``min_size`` or larger than ``max_pixels``; an array of
            unsupported shape, dtype or values; an unsupported source type.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source, min_size, max_pixels)
    if isinstance(source, Image.Image):
        with _decode_errors("<PIL image>"):
            return _from_pil(source, "<PIL image>", min_size, max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise VfmError(
                "the image data is empty (0 bytes)",
                where="<bytes>",
                fix="pass the encoded file's bytes, e.g. Path(p).read_bytes()",
            )
        return _open_and_convert(io.BytesIO(data), "<bytes>", min_size, max_pixels)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        _check_file(path)
        return _open_and_convert(path, str(path), min_size, max_pixels)
    raise VfmError(
        f"cannot read an image from a {type(source).__name__}",
        where="read_image",
        fix="pass a file path, the file's bytes, a numpy array or a PIL.Image",
    )


def _check_file(path: Path) -> None:
    """Refuse paths that are not readable, non-empty files.

    Args:
        path: the image file.

    Raises:
        VfmError: missing, a directory, not readable, or empty.
    """
    if not path.exists():
        raise VfmError("image file not found", where=str(path), fix="check the path and the working directory")
    if path.is_dir():
        raise VfmError(
            "expected an image file but got a directory",
            where=str(path),
            fix="pass one image file; to load a folder of images use vfm.platform.datasets.load_image_source",
        )
    if not os.access(path, os.R_OK):
        raise VfmError(
            "cannot read the image file (permission denied)",
            where=str(path),
            fix="make the file readable, e.g. chmod u+r",
        )
    if path.stat().st_size == 0:
        raise VfmError("the image file is empty (0 bytes)", where=str(path), fix="re-export or re-download the image")


def _open_and_convert(file: Path | io.BytesIO, where: str, min_size: int, max_pixels: int) -> np.ndarray:
    """Open an encoded image lazily, check its size from the header, then decode it.

    Args:
        file: a path or an in-memory file.
        where: how to name the source in errors.
        min_size: the smallest width and height accepted.
        max_pixels: the largest width x height accepted.

    Returns:
        uint8 [H, W, 3].

    Raises:
        VfmError: unreadable, not an image, corrupt, too small or too large.
    """
    with _decode_errors(where), warnings.catch_warnings():
        # The size is checked against max_pixels below; Pillow's own warning is noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(file) as image:
            return _from_pil(image, where, min_size, max_pixels)


@contextmanager
def _decode_errors(where: str) -> Iterator[None]:
    """Translate Pillow's decoding failures into one-line :class:`VfmError` s.

    Args:
        where: how to name the source in errors.

    Raises:
        VfmError: for a decompression bomb, a permission error, an unknown format, or
            corrupt or truncated data.
    """
    try:
        yield
    except Image.DecompressionBombError as err:
        raise VfmError(
            f"the image is too large to decode safely ({err})",
            where=where,
            fix="downscale the image; a huge size in a small file is how decompression bombs work",
        ) from err
    except PermissionError as err:
        raise VfmError(
            "cannot read the image file (permission denied)", where=where, fix="make the file readable, e.g. chmod u+r"
        ) from err
    except UnidentifiedImageError as err:
        raise VfmError("not a recognised image format", where=where, fix=_DECODE_FIX) from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise VfmError(f"cannot decode the image ({err})", where=where, fix=_DECODE_FIX) from err


def _from_pil(image: Image.Image, where: str, min_size: int, max_pixels: int) -> np.ndarray:
    """Check the size of an opened image, decode it fully and convert it to RGB.

    Args:
        image: an opened, possibly not yet decoded, Pillow image.
        where: how to name the source in errors.
        min_size: the smallest width and height accepted.
        max_pixels: the largest width x height accepted.

    Returns:
        uint8 [H, W, 3].

    Raises:
        VfmError: too small or too large (before decoding).
        OSError: the pixel data is truncated or corrupt (from Pillow).
    """
    width, height = image.size
    check_dimensions(width, height, where, min_size, max_pixels)
    image.load()
    image = ImageOps.exif_transpose(image)
    return _pil_to_rgb(image, where)


def _pil_to_rgb(image: Image.Image, where: str) -> np.ndarray:
    """Convert a decoded Pillow image of any mode to uint8 RGB.

    Args:
        image: a decoded image.
        where: how to name the source in errors.

    Returns:
        uint8 [H, W, 3].
    """
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        grey = _scale_to_uint8(np.asarray(image), where=where, from_file=True)
        return np.repeat(grey[..., None], 3, axis=-1)
    if (image.mode == "P" and "transparency" in image.info) or image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return _composite_on_black(np.asarray(image.convert("RGBA")))
    return np.array(image.convert("RGB"), dtype=np.uint8)


def _from_array(array: np.ndarray, min_size: int, max_pixels: int) -> np.ndarray:
    """Convert an array image to uint8 RGB.

    Args:
        array: [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] of uint8, uint16, float or
            another integer type with values in 0..255.
        min_size: the smallest width and height accepted.
        max_pixels: the largest width x height accepted.

    Returns:
        uint8 [H, W, 3], a fresh array.

    Raises:
        VfmError: unsupported shape, dtype or values; too small or too large.
    """
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise VfmError(
            f"unsupported image array shape {array.shape}",
            where="<array>",
            fix="pass [H, W] greyscale, [H, W, 3] RGB or [H, W, 4] RGBA (channels last)",
        )
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise VfmError(
            f"unsupported image array dtype {array.dtype}",
            where="<array>",
            fix="pass uint8, uint16, or float values in [0, 1] or [0, 255]",
        )
    check_dimensions(array.shape[1], array.shape[0], "<array>", min_size, max_pixels)
    pixels = _scale_to_uint8(array, where="<array>", from_file=False)
    if pixels.ndim == 2:
        return np.repeat(pixels[..., None], 3, axis=-1)
    if pixels.shape[2] == 4:
        return _composite_on_black(pixels)
    return np.array(pixels, dtype=np.uint8, order="C")


def _scale_to_uint8(values: np.ndarray, *, where: str, from_file: bool) -> np.ndarray:
    """Scale pixel values to uint8 by their type's range.

    uint8 is kept and uint16 maps 0..65535 to 0..255. Floats in [0, 1] are multiplied
    by 255 and floats in [0, 255] kept. Other integers in 0..255 are kept for arrays,
    while Pillow's 32-bit mode I (16-bit PNGs and TIFFs) is scaled as 16-bit.

    Args:
        values: any shape, integer or float.
        where: how to name the source in errors.
        from_file: values come from a decoded file (Pillow modes I and F): values
            outside those ranges are stretched linearly to 0..255 instead of refused.

    Returns:
        uint8, the same shape.

    Raises:
        VfmError: non-finite values, or out-of-range array values.
    """
    if values.dtype == np.uint8:
        return values
    if values.dtype == np.uint16:
        return ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    data = values.astype(np.float64)
    if data.size == 0:
        return data.astype(np.uint8)
    if not np.all(np.isfinite(data)):
        raise VfmError(
            "the image contains NaN or infinite values", where=where, fix="replace them, e.g. with np.nan_to_num"
        )
    low, high = float(data.min()), float(data.max())
    is_float = np.issubdtype(values.dtype, np.floating)
    if is_float and low >= 0 and high <= 1:
        data = data * 255
    elif from_file and not is_float and low >= 0 and high <= 65535:
        data = data * 255 / 65535
    elif low >= 0 and high <= 255:
        pass
    elif from_file:
        data = (data - low) * (255 / (high - low))
    else:
        raise VfmError(
            f"image values range from {low:g} to {high:g}, outside 0..255",
            where=where,
            fix="pass uint16 for 16-bit data, floats in [0, 1] or [0, 255], or rescale to uint8",
        )
    return np.clip(np.rint(data), 0, 255).astype(np.uint8)


def _composite_on_black(rgba: np.ndarray) -> np.ndarray:
    """Composite an RGBA image on black.

    Args:
        rgba: uint8 [H, W, 4].

    Returns:
        uint8 [H, W, 3].
    """
    alpha = rgba[..., 3:].astype(np.uint16)
    return ((rgba[..., :3].astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)


def check_dimensions(
    width: int, height: int, where: str, min_size: int = MIN_SIZE, max_pixels: int = MAX_PIXELS
) -> None:
    """Refuse images that are too small or too large.

    Args:
        width: in pixels.
        height: in pixels.
        where: how to name the source in errors.
        min_size: the smallest width and height accepted.
        max_pixels: the largest width x height accepted.

    Raises:
        VfmError: either side below ``min_size`` or more than ``max_pixels`` pixels.
    """
    if width < min_size or height < min_size:
        raise VfmError(
            f"the image is {width}x{height} pixels, smaller than the minimum {min_size}x{min_size}",
            where=where,
            fix=f"use an image at least {min_size} pixels wide and high",
        )
    if width * height > max_pixels:
        raise VfmError(
            f"the image is {width}x{height} = {width * height:,} pixels, more than the limit of {max_pixels:,}",
            where=where,
            fix="downscale the image, or raise max_pixels if you trust the file",
        )
