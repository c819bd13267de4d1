"""Reading clips from real files: .npz, animated GIF / APNG / WebP (resampled to 2 Hz by their frame
durations), folders and lists of images, arrays and mappings; videos through whichever reader is
installed (a stand-in reader here); fitting frames to the model's size; one-line errors."""

from __future__ import annotations

import re
import sys
import types
from itertools import count
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vfm.platform.errors import VfmError
from vfm.plugins.driving.clip_io import fit_frames, read_clip


def frames(n: int = 6, height: int = 16, width: int = 16) -> np.ndarray:
    """uint8 [n, height, width, 3]; frame i is filled with 20 * i (so each frame is recognisable)."""
    return np.stack([np.full((height, width, 3), 20 * i, np.uint8) for i in range(n)])


def save_animation(path, clip: np.ndarray, **options) -> None:
    stills = [Image.fromarray(f) for f in clip]
    stills[0].save(path, save_all=True, append_images=stills[1:], **options)


def levels(clip: np.ndarray) -> list[int]:
    return [int(f[0, 0, 0]) for f in clip]


def one_line_error(source, message: str, **options) -> VfmError:
    with pytest.raises(VfmError, match=re.escape(message)) as err:
        read_clip(source, **options)
    assert "\n" not in str(err.value) and "fix:" in str(err.value)
    return err.value


def test_npz_with_per_frame_scalar_or_no_speed(tmp_path):
    clip = frames()
    np.savez(
        tmp_path / "a.npz",
        frames=clip,
        ego_speed=np.arange(6, dtype=np.float32),
        commentary=np.array([""] * 6),
        scenario=np.array("highway"),
    )
    np.savez(tmp_path / "b.npz", frames=clip, ego_speed=np.float32(4.5))
    np.savez(tmp_path / "c.npz", frames=clip)
    got, speed = read_clip(tmp_path / "a.npz")
    assert np.array_equal(got, clip) and speed.tolist() == list(range(6)) and speed.dtype == np.float32
    assert read_clip(tmp_path / "b.npz")[1].tolist() == [4.5] * 6
    assert np.isnan(read_clip(str(tmp_path / "c.npz"))[1]).all()


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("clip.gif", {}),
        ("clip.png", {}),
        ("clip.webp", {"lossless": True}),
        ("timed.gif", {"duration": 500}),
        ("timed.png", {"duration": 500}),
        ("timed.webp", {"lossless": True, "duration": 500}),
    ],
)
def test_animations_give_every_frame_at_two_hertz(tmp_path, name, options):
    save_animation(tmp_path / name, frames(), **options)
    clip, speed = read_clip(tmp_path / name)
    assert levels(clip) == [0, 20, 40, 60, 80, 100] and clip.shape == (6, 16, 16, 3) and np.isnan(speed).all()


@pytest.mark.parametrize("suffix", [".gif", ".png", ".webp"])
def test_faster_animations_are_resampled_by_their_durations(tmp_path, suffix):
    save_animation(tmp_path / f"fast{suffix}", frames(10), duration=100, lossless=True)  # 10 Hz for 1 s
    assert levels(read_clip(tmp_path / f"fast{suffix}")[0]) == [0, 100]  # the frames showing at 0 and 0.5 s
    save_animation(tmp_path / f"slow{suffix}", frames(2), duration=1000, lossless=True)  # 1 Hz for 2 s
    assert levels(read_clip(tmp_path / f"slow{suffix}")[0]) == [0, 0, 20, 20]


def test_still_image_folder_list_array_and_mapping(tmp_path):
    clip = frames(4)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(clip):
        Image.fromarray(frame).save(folder / f"frame_{i:03d}.png")
    (folder / "notes.txt").write_text("not a frame")
    (folder / ".hidden.png").write_bytes(b"")
    assert levels(read_clip(folder)[0]) == levels(clip)
    assert levels(read_clip([str(p) for p in sorted(folder.glob("frame_*.png"))])[0]) == levels(clip)
    assert read_clip(folder / "frame_002.png")[0].shape == (1, 16, 16, 3)
    assert read_clip(clip)[0] is clip
    got, speed = read_clip({"frames": folder, "ego_speed": [1, 2, 3, np.nan]})
    assert levels(got) == levels(clip) and speed[:3].tolist() == [1, 2, 3] and np.isnan(speed[3])


def test_fit_frames_centre_crops_then_resizes(tmp_path):
    wide = np.zeros((2, 20, 40, 3), np.uint8)
    wide[:, :, :10] = (0, 0, 255)  # blue sides, cropped away
    wide[:, :, 30:] = (0, 0, 255)
    wide[:, :, 10:30] = (255, 0, 0)
    fitted = fit_frames(wide, 8)
    assert fitted.shape == (2, 8, 8, 3) and (fitted[..., 0] == 255).all() and (fitted[..., 2] == 0).all()
    square = frames(2, 8, 8)
    assert fit_frames(square, 8) is square
    np.savez(tmp_path / "wide.npz", frames=wide)
    assert np.array_equal(read_clip(tmp_path / "wide.npz", size=8)[0], fitted)


def test_file_errors(tmp_path):
    one_line_error(tmp_path / "none.gif", "clip file not found")
    (tmp_path / "empty.npz").write_bytes(b"")
    one_line_error(tmp_path / "empty.npz", "the clip file is empty (0 bytes)")
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip")
    one_line_error(tmp_path / "corrupt.npz", "not a numpy .npz archive")
    import zipfile

    with zipfile.ZipFile(tmp_path / "garbled.npz", "w") as archive:  # a zip, but its member is not an array
        archive.writestr("frames.npy", b"\x93NUMPY garbage")
    one_line_error(tmp_path / "garbled.npz", "cannot read the .npz")
    np.savez(tmp_path / "other.npz", images=frames())
    one_line_error(tmp_path / "other.npz", "the .npz has no 'frames' array (arrays: ['images'])")
    (tmp_path / "corrupt.gif").write_bytes(b"GIF89a\x10\x00\x10\x00\x80 broken")
    one_line_error(tmp_path / "corrupt.gif", "cannot decode the clip")
    (tmp_path / "nothing").mkdir()
    one_line_error(tmp_path / "nothing", "the folder holds no image files")
    one_line_error([tmp_path / "a.png", tmp_path / "b.npz"], "b.npz is a clip, not a frame")
    one_line_error(3, "cannot read a clip from a int")


def test_frame_errors(tmp_path):
    for i, size in enumerate([(16, 16), (16, 16), (20, 12)]):
        Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8)).save(tmp_path / f"{i}.png")
    error = one_line_error(tmp_path, "frame 2 is 20x12 (WxH) but frame 0 is 16x16")
    assert error.where.endswith("2.png")
    one_line_error(np.zeros((0, 8, 8, 3), np.uint8), "the clip has no frames")
    one_line_error(np.zeros((3, 8, 8, 4), np.uint8), "shape [3, 8, 8, 4], expected RGB frames [N, H, W, 3]")
    one_line_error(np.zeros((3, 8, 8), np.uint8), "expected RGB frames")
    one_line_error(np.zeros((3, 8, 8, 3), np.float32), "the clip array is float32, expected uint8")
    one_line_error(frames(7), "the clip has more than 5 frames (2.5 s at one frame per 0.5 s)", max_frames=5)
    save_animation(tmp_path / "long.gif", frames(7))
    one_line_error(tmp_path / "long.gif", "more than 5 frames", max_frames=5)


@pytest.mark.parametrize(
    ("speed", "message"),
    [
        ([1.0, 2.0], "ego_speed has shape [2] but the clip has 6 frames"),
        ([1, 2, 3, 4, 5, -1], "ego_speed holds -1 m/s"),
        (np.inf, "ego_speed holds inf m/s"),
        ("fast", "ego_speed must be numbers in m/s"),
    ],
)
def test_speed_errors(tmp_path, speed, message):
    one_line_error({"frames": frames(), "ego_speed": speed}, message)
    if not isinstance(speed, str):
        np.savez(tmp_path / "bad.npz", frames=frames(), ego_speed=np.asarray(speed, np.float32))
        assert one_line_error(tmp_path / "bad.npz", message).where.endswith("bad.npz:ego_speed")


def _no_video_readers(monkeypatch) -> None:
    for name in ("imageio", "imageio.v3", "av", "cv2"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError


def _fake_imageio(monkeypatch, fps: float, video) -> None:
    """A stand-in ``imageio.v3`` whose video has ``fps`` and the frames of ``video()``."""
    _no_video_readers(monkeypatch)
    v3 = types.SimpleNamespace(immeta=lambda path: {"fps": fps}, imiter=lambda path: video())
    monkeypatch.setitem(sys.modules, "imageio", types.SimpleNamespace(v3=v3))
    monkeypatch.setitem(sys.modules, "imageio.v3", v3)


def test_video_without_a_reader_says_what_to_install(tmp_path, monkeypatch):
    _no_video_readers(monkeypatch)
    (tmp_path / "drive.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    error = one_line_error(tmp_path / "drive.mp4", "no video reader is installed")
    assert "pip install 'imageio[ffmpeg]'" in error.fix and "GIF" in error.fix


def test_video_is_resampled_to_two_hertz_and_fitted(tmp_path, monkeypatch):
    (tmp_path / "drive.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    _fake_imageio(monkeypatch, 10.0, lambda: iter(frames(12, 24, 32)))  # 10 fps, 1.2 s
    clip, speed = read_clip(tmp_path / "drive.mp4", size=8)
    assert levels(clip) == [0, 100, 200] and clip.shape == (3, 8, 8, 3) and np.isnan(speed).all()


def test_endless_or_broken_video_stops_with_an_error(tmp_path, monkeypatch):
    (tmp_path / "drive.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    decoded = count()

    def endless():
        while True:
            next(decoded)
            yield np.zeros((8, 8, 3), np.uint8)

    _fake_imageio(monkeypatch, 30.0, endless)
    one_line_error(tmp_path / "drive.mp4", "more than 600 frames")
    assert next(decoded) < 601 * 15 + 2  # stopped as soon as the limit was passed

    def broken():
        yield np.zeros((8, 8, 3), np.uint8)
        raise RuntimeError("moov atom not found\nsecond line")

    _fake_imageio(monkeypatch, 30.0, broken)
    one_line_error(tmp_path / "drive.mp4", "cannot decode the video (RuntimeError: moov atom not found)")


def bomb_npz(path: Path, shape: tuple[int, ...] = (4, 8000, 8000, 3)) -> Path:
    """An .npz whose 'frames' header declares ``shape`` (768 MB of uint8 by default) over a few bytes of
    data: what a decompression bomb looks like before it is decoded, without building it."""
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("frames.npy", header.getvalue() + b"\0" * 64)
    return path


def test_a_clip_that_would_decode_to_gigabytes_is_refused_before_decoding(tmp_path):
    with pytest.raises(VfmError, match=r"the .npz holds 732 MiB of arrays once decoded, more than the 512 MiB"):
        read_clip(bomb_npz(tmp_path / "bomb.npz"))


def test_a_text_file_named_npz_is_refused_as_not_an_archive(tmp_path):
    """Not a numpy hint about pickles: the file is simply not an .npz."""
    (tmp_path / "notes.npz").write_text("frames: none, just text\n")
    with pytest.raises(VfmError, match="not a numpy .npz archive") as info:
        read_clip(tmp_path / "notes.npz")
    assert "pickle" not in str(info.value)
