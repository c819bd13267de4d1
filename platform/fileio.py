"""Atomic file writes (a reader sees the old file or the new one, never half of one), a
format-checked reader for settings files, and a size check for ``.npz`` archives before they are decoded."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from vfm.platform.errors import VfmError


def sha256_file(path: str | Path) -> str:
    """The file's sha256, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json_if_any(path: str | Path) -> Any | None:
    """The JSON in ``path``, or None when the file is missing or not valid JSON (an earlier
    run's record that is only read to be kept)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def read_jsonl_objects(path: str | Path, *, fix: str) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line of a JSON Lines file.

    Args:
        fix: what a line should hold, for the message of a bad line.

    Raises:
        VfmError: the file is missing or not UTF-8, or a line is not valid JSON or not an object.
    """
    path = Path(path)
    if not path.is_file():
        raise VfmError("file not found", where=str(path), fix="check the path")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise VfmError(f"cannot read the file ({err})", where=str(path), fix="save it as UTF-8 JSON Lines") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise VfmError(f"line {number} is not valid JSON ({err.msg})", where=where, fix=fix) from None
        if not isinstance(item, dict):
            raise VfmError(f"line {number} is not a JSON object", where=where, fix=fix)
        rows.append((number, item))
    return rows


def read_format_json(path: str | Path, fmt: str, *, what: str, written_by: str) -> dict[str, Any]:
    """A JSON settings file whose ``"format"`` must be ``fmt`` (an exported model's decoding settings).

    Args:
        what: what the file describes, for the message (e.g. ``"an exported driving commentary model"``).
        written_by: what writes such a folder, for the fix.

    Raises:
        VfmError: the file is missing, unreadable, or of another format.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise VfmError(
            f"cannot read the model settings: {err}", where=str(path), fix=f"pass a folder written by {written_by}"
        ) from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        found = data.get("format") if isinstance(data, dict) else None
        raise VfmError(
            f"not {what} (format {found!r})", where=str(path), fix=f"pass a folder whose {path.name} has format {fmt}"
        )
    return data


def available_memory() -> int:
    """Bytes of memory available now (Linux ``MemAvailable``; physical pages elsewhere)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_npz_size(path: str | Path, max_bytes: int) -> None:
    """Refuse an ``.npz`` whose arrays would decode to more than ``max_bytes`` in all, reading only
    each member's ``.npy`` header (shape and dtype), so a small compressed file cannot expand into
    gigabytes. Unreadable members are left to ``np.load`` to report.

    Raises:
        VfmError: the file is not a zip archive (an ``.npz`` is one), or the decoded size passes ``max_bytes``.
    """
    if Path(path).is_file() and not zipfile.is_zipfile(path):
        raise VfmError(
            "not a numpy .npz archive (an .npz is a zip file of arrays; this file is not)",
            where=str(path),
            fix="save the arrays with numpy.savez or numpy.savez_compressed",
        )
    total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                with archive.open(member) as handle:
                    version = np.lib.format.read_magic(handle)
                    read_header = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read_header(handle)
                total += int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return
    if total > max_bytes:
        raise VfmError(
            f"the .npz holds {total / 2**20:,.0f} MiB of arrays once decoded, more than the "
            f"{max_bytes / 2**20:,.0f} MiB accepted",
            where=str(path),
            fix="pass fewer or smaller frames (downscale the clip) or split the data",
        )
