"""Bundles: the self-contained, checksummed artifact that export writes and serving loads.

Layout of a bundle directory::

    manifest.json       bundle format, plugin name/version/task, vfm version, the plugin manifest
    model.onnx          the exported model(s), named in manifest.json["models"]
    preprocessing.json  the parameters of the plugin's pure-numpy preprocessing
    labels.json         output label names
    metrics.json        evaluation metrics of the exported model
    parity.json         torch vs onnxruntime max abs/rel error per output
    MODEL_CARD.md       intended use, data, metrics, limits
    config.yaml         the resolved training config
    examples/           a few synthetic example inputs for the demo
    SHA256SUMS          sha256 of every other file; verified on load
    SIGNATURE           optional: an Ed25519 signature of SHA256SUMS (:mod:`vfm.platform.signing`)

Writes are atomic: the bundle is assembled in a temporary sibling directory and
renamed into place, so no half-written bundle ever carries the final name.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vfm.platform.errors import VfmError
from vfm.platform.fileio import sha256_file
from vfm.platform.manifest import Manifest, parse_manifest
from vfm.platform.signing import SIGNATURE

BUNDLE_FORMAT = 1
CHECKSUMS = "SHA256SUMS"
MANIFEST = "manifest.json"


def confined(root: Path, name: str) -> Path:
    """``root / name``, refused unless it stays inside ``root``: a relative path without ``..`` whose
    resolved location (symlinks followed) is below ``root``.

    Raises:
        VfmError: the name is absolute, climbs out, or leads out through a symlink.
    """
    relative = Path(name)
    path = root / relative
    if (
        not name
        or relative.is_absolute()
        or ".." in relative.parts
        or not path.resolve().is_relative_to(root.resolve())
    ):
        raise VfmError(
            f"the bundle refers to a file outside itself: {name!r}",
            where=str(root),
            fix="use only bundles written by 'vfm export' from a trusted source",
        )
    return path


def files_below(root: Path) -> list[str]:
    """Every file under ``root`` as a relative POSIX path, sorted (symlinks included, to be refused)."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink())


def write_bundle(
    out: str | Path,
    *,
    plugin_manifest: Manifest,
    models: dict[str, str],
    files: dict[str, bytes | str | Path],
    vfm_version: str,
) -> Path:
    """Assemble a bundle atomically at ``out``, replacing any bundle already there.

    Args:
        out: the bundle directory to create.
        plugin_manifest: the manifest of the plugin that made the model.
        models: role -> relative file name of each ONNX model, e.g. ``{"model": "model.onnx"}``.
        files: relative name -> content (bytes, text, or a path to copy).
        vfm_version: the vfm version that wrote it.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for role, name in models.items():
        if name not in files:
            raise VfmError(f"bundle model '{role}' names {name!r}, which is not among the bundle files")
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        for name, content in files.items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copyfile(content, target)
            else:
                target.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        manifest = {
            "bundle_format": BUNDLE_FORMAT,
            "plugin": {
                "name": plugin_manifest.name,
                "version": plugin_manifest.version,
                "task": plugin_manifest.task,
            },
            "vfm_version": vfm_version,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "models": models,
            "plugin_manifest": plugin_manifest.model_dump(mode="json"),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
        sums = "".join(f"{sha256_file(staging / name)}  {name}\n" for name in files_below(staging))
        (staging / CHECKSUMS).write_text(sums, "utf-8")
        for path in staging.rglob("*"):
            if path.is_file():
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
        _swap_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _swap_into_place(staging: Path, out: Path) -> None:
    """Rename ``staging`` to ``out``; an existing ``out`` is moved aside first, then removed."""
    if out.exists():
        if not (out / CHECKSUMS).exists() and any(out.iterdir()):
            raise VfmError(
                "refusing to replace a non-empty directory that is not a vfm bundle",
                where=str(out),
                fix="choose another --out, or delete that directory yourself",
            )
        aside = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, aside)
        os.replace(staging, out)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(staging, out)


@dataclass(frozen=True)
class Bundle:
    """A loaded, checksum-verified bundle."""

    path: Path
    manifest: dict[str, Any]
    plugin_manifest: Manifest

    @property
    def signed(self) -> bool:
        """Whether the bundle carries a signature (checked only against a key: ``--require-signature``)."""
        return (self.path / SIGNATURE).is_file()

    @property
    def plugin_name(self) -> str:
        return self.manifest["plugin"]["name"]

    def file(self, name: str) -> Path:
        """A file of the bundle (:func:`confined` to it)."""
        return confined(self.path, name)

    def json(self, name: str) -> Any:
        return json.loads(self.file(name).read_text("utf-8"))

    def model_path(self, role: str = "model") -> Path:
        return self.file(self.manifest["models"][role])

    def examples(self) -> list[Path]:
        folder = self.path / "examples"
        return sorted(folder.iterdir()) if folder.is_dir() else []


def verify_checksums(path: Path) -> None:
    """Raise VfmError unless every file matches SHA256SUMS and no file is unlisted."""
    sums_file = path / CHECKSUMS
    if not sums_file.is_file():
        raise VfmError("bundle has no SHA256SUMS", where=str(path), fix="re-export the bundle with 'vfm export'")
    listed: dict[str, str] = {}
    for line in sums_file.read_text("utf-8").splitlines():
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            raise VfmError("SHA256SUMS is malformed", where=str(sums_file), fix="re-export the bundle")
        listed[name] = digest
    present = set(files_below(path)) - {CHECKSUMS, SIGNATURE}  # SIGNATURE signs SHA256SUMS itself
    for name in sorted(present - set(listed)):
        raise VfmError(
            f"bundle contains a file not in its checksums: {name}",
            where=str(path),
            fix="the bundle was modified after export; re-export it or remove the file",
        )
    for name, digest in listed.items():
        file = confined(path, name)
        if not file.is_file():
            raise VfmError(f"bundle file missing: {name}", where=str(path), fix="re-export the bundle")
        if sha256_file(file) != digest:
            raise VfmError(
                f"checksum mismatch for {name}: the bundle was modified or corrupted",
                where=str(path),
                fix="re-export the bundle or restore it from a trusted copy",
            )


def check_json_files(path: Path) -> None:
    """Refuse a bundle holding a ``.json`` file that is not valid UTF-8 JSON (damaged, or edited with the
    checksums recomputed), naming the file, before anything reads it."""
    for name in files_below(path):
        if not name.endswith(".json"):
            continue
        try:
            json.loads((path / name).read_text("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise VfmError(
                f"bundle file {name} is not valid JSON ({str(err).splitlines()[0][:120]})",
                where=str(path),
                fix="re-export the bundle or restore it from a trusted copy",
            ) from None


def load_bundle(path: str | Path) -> Bundle:
    """Load and verify a bundle directory (checksums, format, plugin manifest)."""
    path = Path(path)
    if not path.exists():
        raise VfmError("bundle not found", where=str(path), fix="pass the directory written by 'vfm export'")
    if not path.is_dir():
        raise VfmError("a bundle is a directory", where=str(path), fix="pass the directory written by 'vfm export'")
    verify_checksums(path)
    check_json_files(path)
    manifest = json.loads((path / MANIFEST).read_text("utf-8"))
    if not isinstance(manifest, dict):
        raise VfmError(
            f"bundle manifest is a JSON {type(manifest).__name__}, not an object",
            where=str(path / MANIFEST),
            fix="re-export the bundle",
        )
    if manifest.get("bundle_format") != BUNDLE_FORMAT:
        raise VfmError(
            f"unsupported bundle format {manifest.get('bundle_format')!r} (this vfm reads {BUNDLE_FORMAT})",
            where=str(path),
            fix="re-export the bundle with this version of vfm",
        )
    plugin_manifest = parse_manifest(manifest.get("plugin_manifest"), source=f"{path}/{MANIFEST}")
    listed = set(files_below(path))
    for role, name in (manifest.get("models") or {}).items():
        if confined(path, str(name)).relative_to(path).as_posix() not in listed:
            raise VfmError(
                f"the bundle's {role} model {name!r} is not one of its checksummed files",
                where=str(path),
                fix="re-export the bundle with 'vfm export'",
            )
    return Bundle(path=path, manifest=manifest, plugin_manifest=plugin_manifest)
