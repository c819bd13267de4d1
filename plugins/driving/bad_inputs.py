"""The clips users get wrong, for the reliability suite (:class:`~vfm.platform.bad_input.BadInput`):
files for ``vfm predict`` and the demo's upload, and the demo's speed and cruise-control fields."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from vfm.platform.bad_input import BadInput, write_bytes
from vfm.plugins.driving.clip_io import CLIP_SUFFIXES
from vfm.serve.image_bad_inputs import png_header


def _npz(folder: Path, name: str, **arrays: np.ndarray) -> Path:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    return write_bytes(folder, f"{name}.npz", buffer.getvalue())


def _npz_header_only(folder: Path, name: str, shape: tuple[int, ...]) -> Path:
    """An ``.npz`` whose ``frames`` header claims ``shape`` (uint8) and whose data is missing: a
    few hundred bytes that would decode to gigabytes if the header were trusted."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|u1", "fortran_order": False, "shape": shape})
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("frames.npy", buffer.getvalue() + b"\0" * 1024)
    return write_bytes(folder, f"{name}.npz", archive.getvalue())


def _png(folder: Path, name: str, size: tuple[int, int]) -> Path:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), 90, np.uint8)).save(buffer, format="PNG")
    return write_bytes(folder, name, buffer.getvalue())


def driving_bad_inputs(folder: Path, k: int) -> list[BadInput]:
    """Wrong clips under ``folder`` for a model that reads windows of ``k`` frames; each reaches
    ``vfm predict`` and, where a browser could send it, the app (clip files, speed, set speed, time gap)."""
    good = np.full((k + 2, 32, 32, 3), 100, np.uint8)
    good_npz = _npz(folder, "good", frames=good)
    files = [
        ("empty-npz", write_bytes(folder, "empty.npz", b""), "empty (0 bytes)"),
        ("text-named-npz", write_bytes(folder, "notes.npz", b"frame 1: a car\n"), "not a numpy .npz archive"),
        ("zip-without-arrays", write_bytes(folder, "other.npz", _zip_of_text()), "no 'frames' array"),
        ("npz-without-frames", _npz(folder, "no-frames", images=good), "no 'frames' array"),
        ("npz-grey-frames", _npz(folder, "grey", frames=good[..., 0]), "expected RGB frames"),
        ("npz-float-frames", _npz(folder, "float", frames=good.astype(np.float32)), "expected uint8"),
        ("npz-zero-frames", _npz(folder, "zero", frames=good[:0]), "no frames"),
        ("npz-too-few-frames", _npz(folder, "short", frames=good[: k - 1]), f"needs at least {k}"),
        ("npz-one-frame", _npz(folder, "single", frames=good[:1]), f"needs at least {k}"),
        ("npz-bomb-frames", _npz_header_only(folder, "bomb", (4, 8000, 8000, 3)), "once decoded"),
        ("npz-bomb-frame-count", _npz_header_only(folder, "long", (100_000, 64, 64, 3)), "once decoded"),
        (
            "npz-frame-too-large",
            _npz(folder, "huge", frames=np.zeros((1, 7100, 7100, 3), np.uint8)),
            "more than the limit",
        ),
        (
            "npz-negative-speed",
            _npz(folder, "backwards", frames=good, ego_speed=np.full(len(good), -3.0, np.float32)),
            "non-negative",
        ),
        (
            "npz-infinite-speed",
            _npz(folder, "warp", frames=good, ego_speed=np.full(len(good), np.inf, np.float32)),
            "non-negative and finite",
        ),
        (
            "npz-speed-length",
            _npz(folder, "mismatch", frames=good, ego_speed=np.zeros(3, np.float32)),
            "but the clip has",
        ),
        (
            "npz-bad-settings",
            _npz(folder, "settings", frames=good, driver_settings=np.array([-30.0, 1.5], np.float32)),
            "driver_settings",
        ),
        ("gif-one-frame", write_bytes(folder, "still.gif", _gif_bytes(1)), f"needs at least {k}"),
        ("gif-truncated", write_bytes(folder, "cut.gif", _gif_bytes(k + 2)[:90]), "cannot decode"),
        ("png-bomb", write_bytes(folder, "bomb.png", png_header(100_000, 100_000)), "too large to decode safely"),
        ("png-8k-squared", write_bytes(folder, "big.png", png_header(8_000, 8_000)), "more than the limit"),
        ("video-garbage", write_bytes(folder, "dashcam.mp4", np.random.default_rng(2).bytes(2048)), "video"),
        ("unknown-suffix", write_bytes(folder, "clip.txt", b"frames"), "not a clip format"),
    ]
    inputs = [
        BadInput(name, expect, file=path, app=[[path], None, None, None], app_expect=_refused_upload(path))
        for name, path, expect in files
    ]
    frames = [_png(folder / "mixed", f"{i:02d}.png", (32, 32) if i else (48, 32)) for i in range(k + 1)]
    inputs += [
        BadInput("missing-file", "not found", file=folder / "no-such-clip.npz"),
        BadInput("empty-folder", "no image files", file=_empty_folder(folder / "nothing-here")),
        BadInput("frames-of-two-sizes", "but frame 0 is", file=folder / "mixed", app=[frames, None, None, None]),
        BadInput("a-clip-among-frames", "not a frame", app=[[*frames[1:], good_npz], None, None, None]),
        BadInput("app-no-clip", "no clip given", app=[None, None, None, None]),
        BadInput("app-negative-speed", "less than minimum value 0", app=[[good_npz], -5.0, None, None]),
        BadInput("app-negative-set-speed", "less than minimum value 0", app=[[good_npz], None, -10.0, None]),
        BadInput("app-negative-time-gap", "less than minimum value 0", app=[[good_npz], None, None, -1.0]),
    ]
    return inputs


def _refused_upload(path: Path) -> str | None:
    """Gradio's own refusal of an upload the clip field does not take, else None (vfm's error shows)."""
    return None if path.suffix in CLIP_SUFFIXES else "invalid file type"


def _zip_of_text() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("frames.txt", "not an array")
    return buffer.getvalue()


def _gif_bytes(n: int) -> bytes:
    """An animated GIF of ``n`` 32 px frames, one every 0.5 s."""
    frames = [Image.fromarray(np.full((32, 32, 3), 25 * i % 255, np.uint8)) for i in range(n)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=500)
    return buffer.getvalue()


def _empty_folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
