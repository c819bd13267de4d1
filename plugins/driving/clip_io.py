"""Read a driving clip from whatever a user hands over, as the commentary model's frames.

:func:`read_clip` returns ``(frames uint8 [N, H, W, 3], ego_speed float32 [N])``, oldest frame
first, one frame per decision step (every :data:`FRAME_INTERVAL_S` seconds, the rate the
simulator renders and the model is trained at), or raises a one-line :class:`VfmError` saying
what is wrong, where, and how to fix it. Torch-free (numpy, Pillow).

Sources:

- an ``.npz`` with ``frames`` uint8 [N, H, W, 3] and optionally ``ego_speed`` (m/s, a scalar
  or [N]; NaN: unknown) — the layout of a bundle's ``examples/``;
- an animated GIF, APNG (``.png``) or WebP, every frame; a still image is a 1-frame clip;
- a video (``.mp4``, ``.avi``, ``.mov``, ``.webm``, ``.mkv``), with whichever reader is installed
  (``imageio``, ``av`` or ``cv2``; none is a dependency of vfm);
- a folder of image files (sorted by name), or a list of image paths (one clip file in a
  list is read as that file);
- a mapping ``{"frames": <any of the above, or an array>, "ego_speed": ...}`` or an array.

Timing: frames that carry timestamps (videos; animations with frame durations) are resampled
to one frame every :data:`FRAME_INTERVAL_S` seconds (the frame showing at 0, 0.5, 1.0 s, ...).
Animations without durations, folders, lists, ``.npz`` files and arrays are taken as one frame
per decision step already.

Size: with ``size`` given, every frame is centre-cropped to a square and resized to
``size`` x ``size`` as it is read (:func:`fit_frames`), so a long high-resolution video never
holds more than ``N x size x size x 3`` bytes.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from vfm.platform.errors import VfmError
from vfm.platform.fileio import check_npz_size
from vfm.platform.image_io import check_dimensions, read_image

FRAME_INTERVAL_S = 0.5
"""Seconds between the model's frames (the simulator's decision rate, ``scenarios.DECISION_HZ`` = 2)."""

MAX_FRAMES = 600
"""The most frames one clip may have after resampling (5 minutes); longer input is refused
while it is read, so a long video never ties up the server."""
MAX_NPZ_BYTES = 512 * 2**20
"""The most an ``.npz`` clip may decode to (600 frames of 512 x 512 RGB fit; a decompression bomb does not)."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
ANIMATION_SUFFIXES = (".gif", ".png", ".apng", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".webm", ".mkv", ".m4v")
CLIP_SUFFIXES = sorted({".npz", *IMAGE_SUFFIXES, *ANIMATION_SUFFIXES, *VIDEO_SUFFIXES})
"""Every file type a clip may come in (the demo's upload takes these)."""
_VIDEO_FIX = (
    "pip install 'imageio[ffmpeg]' (or av, or opencv-python-headless), or convert the video "
    "to an animated GIF or a folder of PNG frames"
)


def read_clip(source: Any, *, size: int | None = None, max_frames: int = MAX_FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """Read a clip (see the module docstring for the sources).

    Args:
        source: a path (``.npz``, animation, video, image, folder), a list of image paths,
            a mapping with ``frames`` (and ``ego_speed``), or an array [N, H, W, 3].
        size: fit each frame to ``size`` x ``size`` (:func:`fit_frames`); None keeps the size.
        max_frames: the most frames accepted (after resampling to the model's frame rate).

    Returns:
        ``frames`` uint8 [N, H, W, 3] (``H = W = size`` when given) and ``ego_speed``
        float32 [N] in m/s (NaN where unknown).

    Raises:
        VfmError: missing or unreadable file, no video reader installed, zero frames, frames of
            different sizes, non-RGB or non-uint8 arrays, more than ``max_frames`` frames, or an
            ``ego_speed`` of the wrong length or negative.
    """
    if isinstance(source, Mapping):
        if "frames" not in source:
            raise VfmError(
                f"the clip mapping has no 'frames' (keys: {sorted(map(str, source))})",
                where="frames",
                fix="pass {'frames': uint8 [N, H, W, 3] or a clip file, 'ego_speed': m/s}",
            )
        frames, speed = read_clip(source["frames"], size=size, max_frames=max_frames)
        if source.get("ego_speed") is not None:
            speed = check_speed(source["ego_speed"], len(frames), "ego_speed")
        return frames, speed
    if isinstance(source, np.ndarray):
        return _from_array(source, size, max_frames, "<array>"), np.full(len(source), np.nan, np.float32)
    if isinstance(source, (str, os.PathLike)):
        return _read_path(Path(source), size, max_frames)
    if isinstance(source, Sequence) and not isinstance(source, (bytes, bytearray)):
        if len(source) == 1:
            return read_clip(source[0], size=size, max_frames=max_frames)
        return _read_images([Path(p) for p in source], size, max_frames, "<file list>")
    raise VfmError(
        f"cannot read a clip from a {type(source).__name__}",
        where="read_clip",
        fix="pass a clip file (.npz, GIF, video), a folder or list of images, or an array [N, H, W, 3]",
    )


def fit_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N, H, W, 3] -> uint8 [N, size, size, 3]: each frame centre-cropped to its shorter
    side, then resized bilinearly (Pillow). Frames already ``size`` x ``size`` are returned as they are.

    The crop keeps the middle of a wide dash-cam or top-down frame; the model was trained on
    square frames, so stretching would distort distances instead.
    """
    if frames.shape[1:3] == (size, size):
        return frames
    return np.stack([_fit(frame, size) for frame in frames])


def check_speed(value: Any, n: int, where: str) -> np.ndarray:
    """``ego_speed`` as float32 [n] in m/s: a scalar applies to every frame; NaN means unknown.

    Raises:
        VfmError: not numbers, a length other than ``n``, negative or infinite values.
    """
    try:
        speed = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise VfmError(
            f"ego_speed must be numbers in m/s, not {value!r}"[:200],
            where=where,
            fix="pass one speed in m/s, or one per frame",
        ) from None
    if speed.ndim == 0:
        speed = np.full(n, speed, np.float32)
    if speed.shape != (n,):
        raise VfmError(
            f"ego_speed has shape {list(speed.shape)} but the clip has {n} frames",
            where=where,
            fix="pass one speed (m/s) for the whole clip, or exactly one per frame",
        )
    known = speed[~np.isnan(speed)]
    if np.any(known < 0) or not np.all(np.isfinite(known)):
        bad = float(known[(known < 0) | ~np.isfinite(known)][0])
        raise VfmError(
            f"ego_speed holds {bad:g} m/s; speeds are non-negative and finite",
            where=where,
            fix="pass the speed's magnitude in m/s, NaN where it is unknown",
        )
    return speed


def _read_path(path: Path, size: int | None, max_frames: int) -> tuple[np.ndarray, np.ndarray]:
    if not path.exists():
        raise VfmError("clip file not found", where=str(path), fix="check the path and the working directory")
    if path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
        )
        if not files:
            raise VfmError(
                "the folder holds no image files",
                where=str(path),
                fix=f"put the frames in it as {', '.join(IMAGE_SUFFIXES[:3])} files, named in time order",
            )
        return _read_images(files, size, max_frames, str(path))
    if path.stat().st_size == 0:
        raise VfmError("the clip file is empty (0 bytes)", where=str(path), fix="re-export or re-upload the clip")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _read_npz(path, size, max_frames)
    if suffix in VIDEO_SUFFIXES:
        frames = _collect(_resample(_video_frames(path)), size, max_frames, str(path))
    else:
        frames = _collect(_animation_frames(path), size, max_frames, str(path))
    return frames, np.full(len(frames), np.nan, np.float32)


def _read_npz(path: Path, size: int | None, max_frames: int) -> tuple[np.ndarray, np.ndarray]:
    check_npz_size(path, MAX_NPZ_BYTES)
    try:
        with np.load(path, allow_pickle=False) as data:
            if "frames" not in data.files:
                raise VfmError(
                    f"the .npz has no 'frames' array (arrays: {sorted(data.files)})",
                    where=str(path),
                    fix="save the clip as np.savez(path, frames=uint8 [N, H, W, 3], ego_speed=[N])",
                )
            frames = data["frames"]
            speed = data["ego_speed"] if "ego_speed" in data.files else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise VfmError(
            f"cannot read the .npz ({_first_line(err)})",
            where=str(path),
            fix="the file is corrupt or not a numpy .npz; re-save it with np.savez",
        ) from None
    frames = _from_array(frames, size, max_frames, str(path))
    return frames, (
        np.full(len(frames), np.nan, np.float32)
        if speed is None
        else check_speed(speed, len(frames), f"{path}:ego_speed")
    )


def _from_array(frames: np.ndarray, size: int | None, max_frames: int, where: str) -> np.ndarray:
    """Check an array clip and fit it to ``size``."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise VfmError(
            f"the clip array has shape {list(frames.shape)}, expected RGB frames [N, H, W, 3]",
            where=where,
            fix="stack the frames, channels last, RGB (drop alpha, replicate greyscale)",
        )
    if frames.dtype != np.uint8:
        raise VfmError(
            f"the clip array is {frames.dtype}, expected uint8",
            where=where,
            fix="convert with (frames * 255).round().astype(np.uint8) for values in [0, 1]",
        )
    _check_count(len(frames), max_frames, where)
    if len(frames) == 0 or min(frames.shape[1:3]) < 1:
        raise VfmError(
            f"the clip has no {'frames' if len(frames) == 0 else 'pixels'} (shape {list(frames.shape)})",
            where=where,
            fix="pass at least one frame [N, H, W, 3]",
        )
    check_dimensions(frames.shape[2], frames.shape[1], where, min_size=1)  # the pixel budget of every frame
    return frames if size is None else fit_frames(frames, size)


def _read_images(paths: list[Path], size: int | None, max_frames: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    _check_count(len(paths), max_frames, where)
    for path in paths:
        if path.suffix.lower() in VIDEO_SUFFIXES or path.suffix.lower() == ".npz":
            raise VfmError(
                f"{path.name} is a clip, not a frame; several files must all be image frames",
                where=where,
                fix="pass one clip file on its own, or only image files",
            )
    frames = _collect(((read_image(path), str(path)) for path in paths), size, max_frames, where)
    return frames, np.full(len(frames), np.nan, np.float32)


def _animation_frames(path: Path) -> Iterator[tuple[Image.Image, str]]:
    """The frames of an image file (one for a still image), resampled when the first frame has
    a duration; each is yielded while the file is positioned on it (convert it before the next)."""
    try:
        with Image.open(path) as image:
            check_dimensions(*image.size, f"{path} frame 0")
            image.load()
            if not image.info.get("duration"):
                for index in range(getattr(image, "n_frames", 1)):
                    image.seek(index)
                    yield image, f"{path} frame {index}"
            else:
                yield from _resample(_timed_frames(image, path))
    except VfmError:
        raise
    except Image.DecompressionBombError:
        raise VfmError(
            "the image is too large to decode safely",
            where=str(path),
            fix="downscale the clip; a huge size in a small file is how decompression bombs work",
        ) from None
    except UnidentifiedImageError:
        if path.suffix.lower() in CLIP_SUFFIXES:
            raise VfmError(
                f"cannot decode the clip (not a valid {path.suffix} file)",
                where=str(path),
                fix="the file is corrupt, truncated or not an image or animation; re-export it",
            ) from None
        raise VfmError(
            f"not a clip format vfm reads ({path.suffix or 'no suffix'})",
            where=str(path),
            fix=f"pass an .npz, an animated GIF/APNG/WebP, a video ({', '.join(VIDEO_SUFFIXES[:3])}) or image frames",
        ) from None
    except Exception as err:  # Pillow raises many types (OSError, EOFError, SyntaxError, ...)
        raise VfmError(
            f"cannot decode the clip ({_first_line(err)})",
            where=str(path),
            fix="the file is corrupt, truncated or not an image or animation; re-export it",
        ) from None


def _timed_frames(image: Image.Image, path: Path) -> Iterator[tuple[float, Image.Image, str]]:
    """``(end s, frame, name)`` of every frame of an animation with frame durations."""
    end = 0.0
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        image.load()
        end += (image.info.get("duration") or 0) / 1000.0
        yield end, image, f"{path} frame {index}"


def _resample(timed: Iterable[tuple[float, Any, str]]) -> Iterator[tuple[Any, str]]:
    """The frame showing at each multiple of :data:`FRAME_INTERVAL_S` (0, 0.5, 1.0 s, ...).

    Args:
        timed: ``(end s, frame, name)`` in time order, the first frame showing from 0 s and each
            until its end (when the next starts), so a zero-length frame is never kept.

    Yields:
        ``(frame, name)``; a frame showing at several sample times is yielded for each.
    """
    next_time = 0.0
    for end, frame, name in timed:
        while next_time < end - 1e-9:
            yield frame, name
            next_time += FRAME_INTERVAL_S


def _video_frames(path: Path) -> Iterator[tuple[float, np.ndarray, str]]:
    """``(end s, RGB frame, name)`` of every frame of a video, with the first installed
    reader of ``imageio``, ``av`` and ``cv2``."""
    for reader in (_imageio_frames, _av_frames, _cv2_frames):
        frames = reader(path)
        if frames is not None:
            return frames
    raise VfmError("no video reader is installed", where=str(path), fix=_VIDEO_FIX)


def _imageio_frames(path: Path) -> Iterator[tuple[float, np.ndarray, str]] | None:
    try:
        import imageio.v3 as iio
    except ImportError:
        return None

    def frames() -> Iterator[tuple[float, np.ndarray, str]]:
        with _video_errors(path):
            fps = float(iio.immeta(path).get("fps") or 0)
            for index, frame in enumerate(iio.imiter(path)):
                yield _timed(index, fps, frame, path)

    return frames()


def _av_frames(path: Path) -> Iterator[tuple[float, np.ndarray, str]] | None:
    try:
        import av
    except ImportError:
        return None

    def frames() -> Iterator[tuple[float, np.ndarray, str]]:
        with _video_errors(path), av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or 0)
            for index, frame in enumerate(container.decode(stream)):
                yield _timed(index, fps, frame.to_ndarray(format="rgb24"), path)

    return frames()


def _cv2_frames(path: Path) -> Iterator[tuple[float, np.ndarray, str]] | None:
    try:
        import cv2
    except ImportError:
        return None

    def frames() -> Iterator[tuple[float, np.ndarray, str]]:
        capture = cv2.VideoCapture(str(path))
        try:
            if not capture.isOpened():
                raise VfmError(
                    "cannot open the video",
                    where=str(path),
                    fix="the file is corrupt or its codec unsupported; re-encode it as H.264 MP4",
                )
            fps, index = float(capture.get(cv2.CAP_PROP_FPS) or 0), 0
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield _timed(index, fps, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), path)
                index += 1
        finally:
            capture.release()

    return frames()


def _timed(index: int, fps: float, frame: np.ndarray, path: Path) -> tuple[float, np.ndarray, str]:
    """A video frame's ``(end s, frame, name)`` at ``fps``; without a frame rate every frame is
    taken as one decision step."""
    return (index + 1) * (1.0 / fps if fps > 0 else FRAME_INTERVAL_S), frame, f"{path} frame {index}"


@contextmanager
def _video_errors(path: Path) -> Iterator[None]:
    """A video reader's own exceptions as one-line :class:`VfmError` s."""
    try:
        yield
    except VfmError:
        raise
    except Exception as err:  # each reader raises its own types
        raise VfmError(
            f"cannot decode the video ({_first_line(err)})",
            where=str(path),
            fix="the file is corrupt or its codec unsupported; re-encode it as H.264 MP4",
        ) from None


def _collect(frames: Iterable[tuple[Any, str]], size: int | None, max_frames: int, where: str) -> np.ndarray:
    """Decode ``(image, name)`` pairs into uint8 [N, H, W, 3], checking the count and that every
    frame has the first one's size, fitting each to ``size`` when given."""
    out: list[np.ndarray] = []
    first: tuple[int, int] | None = None
    for image, name in frames:
        _check_count(len(out) + 1, max_frames, where)
        pixels = read_image(image) if not isinstance(image, np.ndarray) else _rgb(image, name)
        if first is None:
            first = pixels.shape[:2]
        elif pixels.shape[:2] != first:
            raise VfmError(
                f"frame {len(out)} is {pixels.shape[1]}x{pixels.shape[0]} (WxH) but frame 0 is {first[1]}x{first[0]}",
                where=name,
                fix="give every frame the same size (resize or crop them alike)",
            )
        out.append(pixels if size is None else _fit(pixels, size))
    if not out:
        raise VfmError("the clip has no frames", where=where, fix="pass a clip with at least one frame")
    return np.stack(out)


def _rgb(frame: np.ndarray, name: str) -> np.ndarray:
    """A decoded video frame as uint8 [H, W, 3]."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise VfmError(
            f"the video frame has shape {list(frame.shape)} {frame.dtype}, expected uint8 RGB",
            where=name,
            fix="re-encode the video as 8-bit colour (yuv420p H.264 MP4)",
        )
    return frame


def _fit(frame: np.ndarray, size: int) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [size, size, 3]: centre square crop, bilinear resize."""
    height, width = frame.shape[:2]
    if (height, width) == (size, size):
        return frame
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = Image.fromarray(np.ascontiguousarray(frame[top : top + side, left : left + side]))
    return np.asarray(square.resize((size, size), Image.BILINEAR))


def _first_line(err: Exception) -> str:
    """``"Type: message"``, the message's first line only (errors are shown as one line)."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else 'no message'}"


def _check_count(n: int, max_frames: int, where: str) -> None:
    if n > max_frames:
        seconds = max_frames * FRAME_INTERVAL_S
        raise VfmError(
            f"the clip has more than {max_frames} frames ({seconds:g} s at one frame per {FRAME_INTERVAL_S:g} s)",
            where=where,
            fix=f"cut the clip to at most {seconds:g} s",
        )
