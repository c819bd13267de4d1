"""Dataset loading from .npz archives, image folders and manifests, with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vfm.platform.datasets import ImageSet, load_image_source
from vfm.platform.errors import VfmError

NAMES = ["none", "mild", "moderate"]


def _png(path: Path, value: int, size: tuple[int, int] = (10, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value, value)).save(path)
    return path


def _first_pixel(image_set: ImageSet, index: int) -> int:
    return int(image_set.images[index][0, 0, 0])


def test_npz_medmnist_layout(tmp_path: Path) -> None:
    path = tmp_path / "retina.npz"
    rng = np.random.default_rng(0)
    np.savez(
        path,
        train_images=rng.integers(0, 256, (6, 12, 12, 3), dtype=np.uint8),
        train_labels=np.arange(6).reshape(6, 1) % 3,
        test_images=rng.integers(0, 256, (2, 12, 12, 3), dtype=np.uint8),
        test_labels=np.array([[0], [2]]),
    )
    train = load_image_source(path, split="train")
    assert isinstance(train.images, np.ndarray) and train.images.shape == (6, 12, 12, 3)
    assert train.labels is not None and train.labels.dtype == np.int64 and train.labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert train.names[1] == "npz:train[1]" and len(train) == 6
    assert load_image_source(path, split="test").labels.tolist() == [0, 2]
    with pytest.raises(VfmError, match=r"several splits: test, train"):
        load_image_source(path)
    with pytest.raises(VfmError, match=r"split 'val' not found; available splits: test, train"):
        load_image_source(path, split="val")
    with pytest.raises(VfmError, match=r"label 2 is outside the known range 0\.\.1"):
        load_image_source(path, split="train", label_names=["a", "b"])


def test_npz_greyscale_single_split_and_plain_keys(tmp_path: Path) -> None:
    single = tmp_path / "single.npz"
    np.savez(single, val_images=np.full((3, 8, 8), 77, np.uint8))
    loaded = load_image_source(single)
    assert loaded.images.shape == (3, 8, 8, 3) and loaded.images.max() == 77
    assert loaded.labels is None and loaded.names[0] == "npz:val[0]"
    plain = tmp_path / "plain.npz"
    np.savez(plain, images=np.full((2, 8, 8, 1), 0.5, np.float32), labels=np.array([1, 0]))
    loaded = load_image_source(plain)
    assert loaded.images.dtype == np.uint8 and loaded.images[0, 0, 0].tolist() == [128, 128, 128]
    assert loaded.labels.tolist() == [1, 0]


def test_npz_errors(tmp_path: Path) -> None:
    no_images = tmp_path / "none.npz"
    np.savez(no_images, x=np.zeros(3))
    with pytest.raises(VfmError, match=r"no image array in the archive .keys: x."):
        load_image_source(no_images)
    mismatch = tmp_path / "mismatch.npz"
    np.savez(mismatch, images=np.zeros((3, 8, 8), np.uint8), labels=np.array([0, 1]))
    with pytest.raises(VfmError, match=r"2 labels for 3 images"):
        load_image_source(mismatch)
    negative = tmp_path / "negative.npz"
    np.savez(negative, images=np.zeros((2, 8, 8), np.uint8), labels=np.array([0, -1]))
    with pytest.raises(VfmError, match=r"negative"):
        load_image_source(negative)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip file at all")
    with pytest.raises(VfmError, match=r"not a numpy .npz archive"):
        load_image_source(corrupt)


def test_folder_with_labels_csv(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    _png(folder / "b.png", 20)
    _png(folder / "a.png", 10)
    _png(folder / "sub" / "c.jpg", 30)
    (folder / "labels.csv").write_text("filename,label\nb.png,moderate\na.png,0\nsub/c.jpg,1\n")
    loaded = load_image_source(folder, label_names=NAMES)
    assert loaded.names == ["a.png", "b.png", "sub/c.jpg"]
    assert loaded.labels.tolist() == [0, 2, 1]
    assert isinstance(loaded.images, np.ndarray) and loaded.images.shape == (3, 10, 10, 3)
    assert _first_pixel(loaded, 1) == 20
    with pytest.raises(VfmError, match=r"unknown label 'moderate'"):
        load_image_source(folder)


def test_folder_with_explicit_csv_and_missing_file(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    _png(folder / "a.png", 10)
    _png(folder / "unlisted.png", 10)
    labels = tmp_path / "my_labels.csv"
    labels.write_text("filename,label\na.png,1\n")
    loaded = load_image_source(folder, labels_csv=labels)
    assert loaded.names == ["a.png"] and loaded.labels.tolist() == [1]
    labels.write_text("filename,label\na.png,1\ngone.png,0\n")
    with pytest.raises(VfmError, match=r"missing file 'gone.png'") as err:
        load_image_source(folder, labels_csv=labels)
    assert "my_labels.csv:3" in str(err.value)
    labels.write_text("file,label\na.png,1\n")
    with pytest.raises(VfmError, match=r"lacks column.s. filename"):
        load_image_source(folder, labels_csv=labels)
    labels.write_text("filename,label\na.png,5\n")
    with pytest.raises(VfmError, match=r"outside the known range"):
        load_image_source(folder, labels_csv=labels, label_names=NAMES)


def test_folder_with_class_subfolders(tmp_path: Path) -> None:
    numeric = tmp_path / "numeric"
    _png(numeric / "0" / "x.png", 1)
    _png(numeric / "2" / "y.png", 2, size=(12, 9))
    _png(numeric / "2" / "z.png", 3)
    loaded = load_image_source(numeric)
    assert loaded.names == ["0/x.png", "2/y.png", "2/z.png"]
    assert loaded.labels.tolist() == [0, 2, 2]
    assert isinstance(loaded.images, list) and loaded.images[1].shape == (9, 12, 3)
    named = tmp_path / "named"
    _png(named / "mild" / "x.png", 1)
    _png(named / "none" / "y.png", 2)
    assert load_image_source(named, label_names=NAMES).labels.tolist() == [1, 0]
    assert load_image_source(named).labels is None  # names unknown: unlabelled


def test_unlabelled_folder_and_split_subfolder(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    _png(folder / "train" / "p1.png", 5)
    _png(folder / "train" / ".hidden" / "skip.png", 5)
    _png(folder / "test" / "q1.bmp", 6)
    _png(folder / "test" / "q2.tiff", 7)
    (folder / "test" / "notes.txt").write_text("not an image")
    train = load_image_source(folder, split="train")
    assert train.names == ["p1.png"] and train.labels is None
    assert train.source == str(folder / "train")
    test = load_image_source(folder, split="test")
    assert test.names == ["q1.bmp", "q2.tiff"] and test.labels is None
    with pytest.raises(VfmError, match=r"split 'val' not found.*sub-folders: test, train"):
        load_image_source(folder, split="val")


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(VfmError, match=r"dataset path not found"):
        load_image_source(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(VfmError, match=r"no images found"):
        load_image_source(empty)
    broken = tmp_path / "broken"
    _png(broken / "good.png", 1)
    (broken / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(VfmError, match=r"bad.png") as err:
        load_image_source(broken)
    assert "fix:" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(VfmError, match=r"unsupported dataset source"):
        load_image_source(_png(tmp_path / "single.png", 1))
    with pytest.raises(VfmError, match=r"labels_csv only applies to image folders"):
        load_image_source(_png(tmp_path / "x.png", 1), labels_csv=tmp_path / "l.csv")


def test_jsonl_manifest(tmp_path: Path) -> None:
    _png(tmp_path / "img" / "a.png", 10)
    _png(tmp_path / "img" / "b.png", 20)
    _png(tmp_path / "img" / "c.png", 30)
    manifest = tmp_path / "set.jsonl"
    rows = [
        {"path": "img/a.png", "label": 0, "split": "train"},
        {"path": "img/b.png", "label": "mild", "split": "train"},
        {"path": "img/c.png", "label": 2, "split": "test"},
    ]
    manifest.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n")
    train = load_image_source(manifest, split="train", label_names=NAMES)
    assert train.names == ["img/a.png", "img/b.png"] and train.labels.tolist() == [0, 1]
    assert _first_pixel(train, 1) == 20
    everything = load_image_source(manifest, label_names=NAMES)
    assert len(everything) == 3
    with pytest.raises(VfmError, match=r"no rows with split 'val'; available splits: test, train"):
        load_image_source(manifest, split="val", label_names=NAMES)
    manifest.write_text('{"path": "img/a.png"}\n{"path": "img/missing.png"}\n')
    with pytest.raises(VfmError, match=r"missing file 'img/missing.png'") as err:
        load_image_source(manifest)
    assert "set.jsonl:2" in str(err.value)
    manifest.write_text('{"path": "img/a.png"}\nnot json\n')
    with pytest.raises(VfmError, match=r"line 2 is not valid JSON") as err:
        load_image_source(manifest)
    assert "set.jsonl:2" in str(err.value)


def test_csv_manifest(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", 10)
    _png(tmp_path / "b.png", 20, size=(14, 10))
    manifest = tmp_path / "set.csv"
    manifest.write_text("path\na.png\nb.png\n")
    unlabelled = load_image_source(manifest)
    assert unlabelled.labels is None and isinstance(unlabelled.images, list)
    with pytest.raises(VfmError, match=r"no split column"):
        load_image_source(manifest, split="train")
    manifest.write_text("path,label\na.png,1\nb.png,\n")
    with pytest.raises(VfmError, match=r"row has no label") as err:
        load_image_source(manifest)
    assert "set.csv:3" in str(err.value)
    manifest.write_text("path,label\na.png,1\nb.png,7\n")
    with pytest.raises(VfmError, match=r"label 7 is outside the known range 0\.\.2"):
        load_image_source(manifest, label_names=NAMES)
    manifest.write_text("image,label\na.png,1\n")
    with pytest.raises(VfmError, match=r"lacks column.s. path"):
        load_image_source(manifest)
