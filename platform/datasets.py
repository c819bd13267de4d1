"""Torch-free loaders for labelled or unlabelled images given by a path.

:func:`load_image_source` reads three kinds of source into an :class:`ImageSet`:

* a ``.npz`` archive in the MedMNIST layout (``<split>_images``, ``<split>_labels``)
  or with plain ``images``/``labels`` keys;
* an image folder (searched recursively), labelled by a ``filename,label`` CSV or by
  class sub-folders, or unlabelled;
* a ``.csv`` or ``.jsonl`` manifest listing ``path`` and optionally ``label`` and ``split``.

Every problem is a one-line :class:`VfmError` naming the file and the fix; nothing is
skipped silently.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vfm.platform.errors import VfmError
from vfm.platform.fileio import available_memory, check_npz_size, read_jsonl_objects
from vfm.platform.image_io import read_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
"""File suffixes (lower case) read from image folders."""

_SPLIT_FOLDERS = ("train", "training", "val", "valid", "validation", "dev", "test", "testing")
"""Sub-folder names that mark a folder as split into sub-sets."""

_MANIFEST_SUFFIXES = (".csv", ".jsonl")


class SplitNotFound(VfmError):
    """The requested split does not exist in the source (callers may restate the fix)."""


@dataclass
class ImageSet:
    """Images with optional labels, as loaded from one source.

    Attributes:
        images: uint8 [N, H, W, 3] when all images share a size, otherwise a list of N
            uint8 [H_i, W_i, 3] arrays.
        labels: int64 [N], or None for an unlabelled set (pretraining).
        names: N names: file paths relative to the folder or manifest, or
            ``npz:<split>[i]``.
        source: the path the set was loaded from.
    """

    images: list[np.ndarray] | np.ndarray
    labels: np.ndarray | None
    names: list[str]
    source: str

    def __len__(self) -> int:
        """The number of images."""
        return len(self.names)


def load_image_source(
    path: str | Path,
    *,
    split: str | None = None,
    labels_csv: str | Path | None = None,
    label_names: Sequence[str] | None = None,
) -> ImageSet:
    """Load images (and labels, when there are any) from a ``.npz``, a folder or a manifest.

    Args:
        path: a ``.npz`` archive, an image folder, or a ``.csv``/``.jsonl`` manifest.
        split: the subset to load: the ``<split>_images`` key of an archive, the
            sub-folder of a folder, or the ``split`` value of manifest rows. None
            loads the only subset there is (or everything).
        labels_csv: for a folder, a CSV with columns ``filename,label`` (filenames
            relative to the folder); by default the folder's ``labels.csv``, if any.
        label_names: the class names, in label order. Labels may then be given by
            name, and numeric labels must lie in ``0..len(label_names)-1``.

    Returns:
        The loaded set. In a folder labelled by a CSV, images the CSV does not list
        are left out; a folder without a CSV is labelled by its class sub-folders
        when every image lies in a sub-folder named ``0``..``K`` or by a label name,
        and is unlabelled otherwise.

    Raises:
        VfmError: a missing path or unsupported kind of source, a missing split, no
            images, a corrupt image (named), a CSV naming a missing file, a label
            count mismatch or a label outside the known range.
    """
    source = Path(path)
    if not source.exists():
        raise VfmError(
            "dataset path not found",
            where=str(source),
            fix="check the path; pass a .npz file, an image folder or a .csv/.jsonl manifest",
        )
    if labels_csv is not None and not source.is_dir():
        raise VfmError(
            "labels_csv only applies to image folders",
            where=str(source),
            fix="put labels in the archive's <split>_labels array or the manifest's label column",
        )
    names = list(label_names) if label_names is not None else None
    if source.is_dir():
        return _load_folder(source, split, Path(labels_csv) if labels_csv is not None else None, names)
    suffix = source.suffix.lower()
    if suffix == ".npz":
        return _load_npz(source, split, names)
    if suffix in _MANIFEST_SUFFIXES:
        return _load_manifest(source, split, names)
    raise VfmError(
        f"unsupported dataset source '{source.suffix or source.name}'",
        where=str(source),
        fix="pass a .npz file, a folder of images, or a .csv/.jsonl manifest with a path column",
    )


def _load_npz(path: Path, split: str | None, label_names: list[str] | None) -> ImageSet:
    """Load a MedMNIST-style archive.

    Args:
        path: the ``.npz`` file.
        split: the ``<split>_images`` key to read, or None.
        label_names: the class names, for the range check.

    Returns:
        The set; images uint8 [N, H, W, 3].

    Raises:
        VfmError: unreadable archive, no image key, missing or ambiguous split, bad
            shapes, label count or range.
    """
    check_npz_size(path, available_memory() // 2)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise VfmError(
            f"cannot read the .npz archive ({err})", where=str(path), fix="re-create it with numpy.savez"
        ) from err
    with archive:
        keys = list(archive.files)
        splits = sorted(key[: -len("_images")] for key in keys if key.endswith("_images"))
        if split is not None:
            if f"{split}_images" not in keys:
                raise SplitNotFound(
                    f"split '{split}' not found; available splits: {', '.join(splits) or 'none'}",
                    where=str(path),
                    fix=f"pass one of the available splits{' or split=None' if 'images' in keys else ''}",
                )
            prefix = split
        elif "images" in keys:
            prefix = ""
        elif len(splits) == 1:
            prefix = splits[0]
        elif splits:
            raise VfmError(
                f"the archive has several splits: {', '.join(splits)}",
                where=str(path),
                fix="choose one with split=...",
            )
        else:
            raise VfmError(
                f"no image array in the archive (keys: {', '.join(keys) or 'none'})",
                where=str(path),
                fix="store images under 'images' or '<split>_images', e.g. np.savez(p, train_images=x, train_labels=y)",
            )
        image_key = f"{prefix}_images" if prefix else "images"
        label_key = f"{prefix}_labels" if prefix else "labels"
        images = _npz_images(archive[image_key], f"{path}:{image_key}")
        raw_labels = archive[label_key] if label_key in keys else None
    labels = None if raw_labels is None else _npz_labels(raw_labels, len(images), label_names, f"{path}:{label_key}")
    tag = prefix or "images"
    return ImageSet(
        images=images, labels=labels, names=[f"npz:{tag}[{i}]" for i in range(len(images))], source=str(path)
    )


def _npz_images(array: np.ndarray, where: str) -> np.ndarray:
    """Normalise an archive's image array to uint8 RGB.

    Args:
        array: [N, H, W], [N, H, W, 1], [N, H, W, 3] or [N, H, W, 4], any dtype
            :func:`read_image` accepts.
        where: the archive and key, for errors.

    Returns:
        uint8 [N, H, W, 3].

    Raises:
        VfmError: an unsupported shape, or values :func:`read_image` refuses.
    """
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if not (array.ndim == 3 or (array.ndim == 4 and array.shape[3] in (3, 4))):
        raise VfmError(
            f"unsupported image array shape {array.shape}",
            where=where,
            fix="store images as [N, H, W] greyscale or [N, H, W, 3] RGB",
        )
    if array.dtype == np.uint8 and array.ndim == 3:
        return np.ascontiguousarray(np.repeat(array[..., None], 3, axis=-1))
    if array.dtype == np.uint8 and array.shape[3] == 3:
        return np.ascontiguousarray(array)
    converted = np.empty((*array.shape[:3], 3), dtype=np.uint8)
    for index, image in enumerate(array):
        try:
            converted[index] = read_image(image, min_size=1)
        except VfmError as err:
            raise VfmError(err.what, where=f"{where}[{index}]", fix=err.fix) from err
    return converted


def _npz_labels(raw: np.ndarray, count: int, label_names: list[str] | None, where: str) -> np.ndarray:
    """Validate an archive's labels.

    Args:
        raw: [N] or [N, 1] integer-valued labels.
        count: the number of images.
        label_names: the class names, for the range check.
        where: the archive and key, for errors.

    Returns:
        int64 [N].

    Raises:
        VfmError: multi-label arrays, non-integer values, a count mismatch or a label
            out of range.
    """
    if raw.ndim == 2 and raw.shape[1] == 1:
        raw = raw[:, 0]
    if raw.ndim != 1:
        raise VfmError(
            f"labels must be [N] or [N, 1], got shape {raw.shape}", where=where, fix="store one class index per image"
        )
    if not (
        np.issubdtype(raw.dtype, np.integer) or (np.issubdtype(raw.dtype, np.floating) and np.all(np.mod(raw, 1) == 0))
    ):
        raise VfmError(
            f"labels must be integer class indices, got {raw.dtype}", where=where, fix="store labels as integers 0..K-1"
        )
    labels = raw.astype(np.int64)
    if len(labels) != count:
        raise VfmError(f"{len(labels)} labels for {count} images", where=where, fix="store exactly one label per image")
    _check_label_range(labels, label_names, where)
    return labels


def _load_folder(folder: Path, split: str | None, labels_csv: Path | None, label_names: list[str] | None) -> ImageSet:
    """Load an image folder, labelled by a CSV, by class sub-folders, or not at all.

    Args:
        folder: the folder.
        split: a sub-folder to load instead of the whole folder, or None.
        labels_csv: an explicit labels CSV, or None to use ``labels.csv`` if present.
        label_names: the class names.

    Returns:
        The set.

    Raises:
        VfmError: missing split sub-folder, no images, bad CSV, unreadable image.
    """
    root = folder
    if split is not None:
        root = folder / split
        if not root.is_dir():
            subfolders = sorted(child.name for child in folder.iterdir() if child.is_dir())
            raise SplitNotFound(
                f"split '{split}' not found: no sub-folder of that name"
                f" (sub-folders: {', '.join(subfolders) or 'none'})",
                where=str(folder),
                fix=f"create {root}, pass an existing split, or pass split=None to load the whole folder",
            )
    csv_path = labels_csv if labels_csv is not None else root / "labels.csv"
    labels: np.ndarray | None
    if labels_csv is not None or csv_path.is_file():
        relative, labels = _read_labels_csv(csv_path, root, label_names)
    else:
        files = _image_files(root)
        if not files:
            raise VfmError(
                "no images found in the folder",
                where=str(root),
                fix=f"add images with one of the suffixes {', '.join(IMAGE_SUFFIXES)} (sub-folders are searched too)",
            )
        relative = [file.relative_to(root).as_posix() for file in files]
        labels = _class_folder_labels(relative, label_names)
    images = [_read(root / name) for name in relative]
    return ImageSet(images=_stack_if_uniform(images), labels=labels, names=relative, source=str(root))


def _image_files(root: Path) -> list[Path]:
    """List the image files under a folder, recursively, sorted, skipping hidden paths.

    Args:
        root: the folder.

    Returns:
        The image files, sorted by their path relative to ``root``.
    """
    files = [
        file
        for file in root.rglob("*")
        if file.suffix.lower() in IMAGE_SUFFIXES
        and file.is_file()
        and not any(part.startswith(".") for part in file.relative_to(root).parts)
    ]
    return sorted(files, key=lambda file: file.relative_to(root).as_posix())


def _read_labels_csv(csv_path: Path, root: Path, label_names: list[str] | None) -> tuple[list[str], np.ndarray]:
    """Read a ``filename,label`` CSV for a folder.

    Args:
        csv_path: the CSV.
        root: the folder the filenames are relative to.
        label_names: the class names.

    Returns:
        The filenames (sorted, relative to ``root``) and their int64 [N] labels.

    Raises:
        VfmError: missing CSV or columns, an empty CSV, a duplicate or missing file,
            or a bad label.
    """
    rows = _read_csv_rows(csv_path, required=("filename", "label"))
    if not rows:
        raise VfmError("the labels CSV has no rows", where=str(csv_path), fix="add one 'filename,label' row per image")
    by_name: dict[str, int] = {}
    for line, row in rows:
        where = f"{csv_path}:{line}"
        name = Path(row["filename"].strip()).as_posix()
        if name in by_name:
            raise VfmError(f"'{name}' is listed twice", where=where, fix="list each image once")
        if not (root / name).is_file():
            raise VfmError(
                f"the labels CSV names a missing file '{name}'",
                where=where,
                fix=f"check that the file exists under {root}, or remove the row",
            )
        by_name[name] = _parse_label(row["label"], label_names, where)
    names = sorted(by_name)
    return names, np.array([by_name[name] for name in names], dtype=np.int64)


def _class_folder_labels(relative: list[str], label_names: list[str] | None) -> np.ndarray | None:
    """Labels from class sub-folders, when the folder is laid out that way.

    Args:
        relative: image paths relative to the folder, POSIX style.
        label_names: the class names.

    Returns:
        int64 [N] when every image lies in a first-level sub-folder and every such
        sub-folder is named by a class index or a label name; otherwise None.

    Raises:
        VfmError: a class-index sub-folder outside the known label range.
    """
    parts = [name.split("/") for name in relative]
    if any(len(part) < 2 for part in parts):
        return None
    classes = sorted({part[0] for part in parts})
    if all(name.isdigit() for name in classes):
        labels = np.array([int(part[0]) for part in parts], dtype=np.int64)
        _check_label_range(labels, label_names, "class sub-folders")
        return labels
    if label_names is not None and all(name in label_names for name in classes):
        return np.array([label_names.index(part[0]) for part in parts], dtype=np.int64)
    return None


def _load_manifest(manifest: Path, split: str | None, label_names: list[str] | None) -> ImageSet:
    """Load a ``.csv`` or ``.jsonl`` manifest of image paths.

    Args:
        manifest: the manifest; paths in it are relative to its folder.
        split: keep only rows whose ``split`` equals this, or None for all rows.
        label_names: the class names.

    Returns:
        The set; labelled when the manifest has labels.

    Raises:
        VfmError: unreadable manifest, no ``path``, a missing split column, no rows,
            a missing file, a missing or bad label, an unreadable image.
    """
    records = (
        _read_csv_rows(manifest, required=("path",))
        if manifest.suffix.lower() == ".csv"
        else read_jsonl_objects(manifest, fix='write one object per line, e.g. {"path": "a.png", "label": 0}')
    )
    if split is not None:
        if not any("split" in row for _, row in records):
            raise SplitNotFound(
                f"split '{split}' requested but the manifest has no split column",
                where=str(manifest),
                fix="add a 'split' column or field, or pass split=None to load every row",
            )
        available = sorted({str(row.get("split", "")) for _, row in records})
        records = [(line, row) for line, row in records if str(row.get("split", "")) == split]
        if not records:
            raise SplitNotFound(
                f"no rows with split '{split}'; available splits: {', '.join(available)}",
                where=str(manifest),
                fix="pass one of the available splits",
            )
    if not records:
        raise VfmError("the manifest lists no images", where=str(manifest), fix="add one row per image with a 'path'")
    base = manifest.parent
    has_labels = any(row.get("label") not in (None, "") for _, row in records)
    names: list[str] = []
    labels: list[int] = []
    images: list[np.ndarray] = []
    for line, row in records:
        where = f"{manifest}:{line}"
        name = str(row.get("path") or "").strip()
        if not name:
            raise VfmError(
                "row has no path", where=where, fix="give every row a 'path' to an image, relative to the manifest"
            )
        file = base / name
        if not file.is_file():
            raise VfmError(
                f"the manifest names a missing file '{name}'",
                where=where,
                fix=f"check that the file exists relative to {base}, or remove the row",
            )
        if has_labels:
            if row.get("label") in (None, ""):
                raise VfmError(
                    "row has no label while other rows do",
                    where=where,
                    fix="label every row, or leave the label column empty everywhere",
                )
            labels.append(_parse_label(row["label"], label_names, where))
        names.append(name)
        images.append(_read(file))
    return ImageSet(
        images=_stack_if_uniform(images),
        labels=np.array(labels, dtype=np.int64) if has_labels else None,
        names=names,
        source=str(manifest),
    )


def _read_csv_rows(path: Path, *, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """Read a CSV with a header row.

    Args:
        path: the CSV.
        required: columns that must be present.

    Returns:
        (line number, row) pairs, skipping blank rows.

    Raises:
        VfmError: missing or unreadable file, missing columns.
    """
    if not path.is_file():
        raise VfmError("CSV file not found", where=str(path), fix="check the path")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [column.strip() for column in reader.fieldnames or []]
            missing = [column for column in required if column not in columns]
            if missing:
                raise VfmError(
                    f"the CSV lacks column(s) {', '.join(missing)} (has: {', '.join(columns) or 'none'})",
                    where=str(path),
                    fix=f"add a header row with {','.join(required)}",
                )
            return [
                (reader.line_num, {key.strip(): (value or "") for key, value in row.items() if key is not None})
                for row in reader
                if any((value or "").strip() for value in row.values() if isinstance(value, str))
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise VfmError(
            f"cannot read the CSV ({err})", where=str(path), fix="save it as UTF-8 CSV with a header row"
        ) from err


def _parse_label(value: object, label_names: list[str] | None, where: str) -> int:
    """Parse one label: a class index, or a label name when names are known.

    Args:
        value: an int, an integer-valued float, or a string.
        label_names: the class names.
        where: the file and line, for errors.

    Returns:
        The class index.

    Raises:
        VfmError: an unknown name or an index out of range.
    """
    if isinstance(value, bool):
        index = None
    elif isinstance(value, int):
        index = value
    elif isinstance(value, float) and value.is_integer():
        index = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        index = int(value.strip())
    elif isinstance(value, str) and label_names is not None and value.strip() in label_names:
        index = label_names.index(value.strip())
    else:
        index = None
    if index is None:
        known = (
            f"a class index or one of: {', '.join(label_names)}"
            if label_names
            else "an integer class index (or pass label_names to use names)"
        )
        raise VfmError(f"unknown label {value!r}", where=where, fix=f"use {known}")
    _check_label_range(np.array([index]), label_names, where)
    return index


def _check_label_range(labels: np.ndarray, label_names: list[str] | None, where: str) -> None:
    """Require labels in ``0..len(label_names)-1``, or non-negative when names are unknown.

    Args:
        labels: int [N].
        label_names: the class names.
        where: the source, for errors.

    Raises:
        VfmError: a label out of range.
    """
    if labels.size == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        raise VfmError(f"label {low} is negative", where=where, fix="use class indices 0..K-1")
    if label_names is not None and high >= len(label_names):
        raise VfmError(
            f"label {high} is outside the known range 0..{len(label_names) - 1} ({', '.join(label_names)})",
            where=where,
            fix="fix the label, or pass the full list of label_names",
        )


def _read(file: Path) -> np.ndarray:
    """Read one dataset image; a failure names the file.

    Args:
        file: the image file.

    Returns:
        uint8 [H, W, 3].

    Raises:
        VfmError: the image cannot be read, with the fix and a note that it is part of
            a dataset.
    """
    try:
        return read_image(file)
    except VfmError as err:
        raise VfmError(
            f"dataset image {file.name}: {err.what}",
            where=str(file),
            fix=f"{err.fix}; or remove the file (or its row) from the dataset",
        ) from err


def _stack_if_uniform(images: list[np.ndarray]) -> list[np.ndarray] | np.ndarray:
    """Stack images into one array when they all share a size.

    Args:
        images: uint8 [H_i, W_i, 3] each.

    Returns:
        uint8 [N, H, W, 3] if all sizes match (and N > 0), otherwise the list.
    """
    if images and all(image.shape == images[0].shape for image in images):
        return np.stack(images)
    return images
