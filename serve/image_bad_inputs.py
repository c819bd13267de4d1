"""The image files users get wrong, for the reliability suite (:class:`~vfm.platform.bad_input.BadInput`).

Shared by every plugin whose input is one image (the ``image-classification`` task's predictor);
each file goes through ``vfm predict`` and the demo's upload.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from vfm.platform.bad_input import BadInput, write_bytes


def _png(size: tuple[int, int] = (32, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` and whose pixels are a few bytes of zlib:
    a decompression bomb's shape, without the bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def _corrupt_pixels() -> bytes:
    """A PNG whose header is valid and whose compressed pixel data is garbage."""
    data = bytearray(_png((64, 64)))
    start = data.index(b"IDAT") + 4
    data[start + 2 : start + 40] = bytes(range(38))
    return bytes(data)


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("photo.png", _png())
    return buffer.getvalue()


def image_bad_inputs(folder: Path) -> list[BadInput]:
    """Wrong image files under ``folder``; each reaches ``vfm predict`` and, where a browser could send it, the app."""
    not_image = "not a recognised image format"
    cases = [
        ("empty-file", "photo.png", b"", "empty (0 bytes)"),
        ("text-named-png", "notes.png", b"patient 17: follow up in 3 months\n", not_image),
        ("html-named-jpg", "page.jpg", b"<!doctype html><html><body>404</body></html>", not_image),
        ("pdf-named-png", "scan.png", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n", not_image),
        ("zip-named-png", "images.png", _zip(), not_image),
        ("svg", "drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"/>', not_image),
        ("random-bytes", "noise.jpg", np.random.default_rng(1).bytes(4096), not_image),
        ("no-suffix-text", "README", b"just text\n" * 20, not_image),
        ("npy-named-png", "array.png", b"\x93NUMPY\x01\x00v\x00{'descr': '<f4'}", not_image),
        ("truncated-png", "cut.png", _png((64, 64))[:60], "cannot decode the image"),
        ("truncated-jpeg", "cut.jpg", _jpeg()[:400], "cannot decode the image"),
        ("jpeg-header-only", "header.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "cannot decode the image"),
        ("corrupt-png-pixels", "garbled.png", _corrupt_pixels(), "cannot decode the image"),
        ("bomb-100k-squared", "bomb.png", png_header(100_000, 100_000), "too large to decode safely"),
        ("bomb-8k-squared", "bomb8k.png", png_header(8_000, 8_000), "more than the limit"),
        ("bomb-one-long-side", "strip.png", png_header(1_000_000, 60), "more than the limit"),
        ("too-small", "tiny.png", _png((4, 4)), "small"),
        ("one-pixel-high", "line.png", _png((512, 1)), "small"),
    ]
    inputs = []
    for name, file_name, data, expect in cases:
        path = write_bytes(folder / name, file_name, data)
        refused = None if "." in file_name else "invalid file type"  # the upload takes image types only
        inputs.append(BadInput(name, expect, file=path, app=[path], app_expect=refused))
    inputs += [
        BadInput("missing-file", "not found", file=folder / "no-such-photo.png"),
        BadInput("a-folder", "directory", file=folder),
        BadInput("no-upload", "no image given", app=[None]),
    ]
    return inputs
