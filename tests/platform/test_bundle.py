"""Bundles: atomic writes, checksum verification, tampering refused."""

import json
from pathlib import Path

import pytest

from vfm.platform.bundle import load_bundle, write_bundle
from vfm.platform.errors import VfmError
from vfm.platform.registry import get_plugin


def _write(out: Path, **extra) -> Path:
    files = {
        "model.onnx": b"\x08\x01fake-onnx",
        "labels.json": json.dumps(["a", "b"]),
        "examples/00.png": b"png",
    } | extra
    return write_bundle(
        out,
        plugin_manifest=get_plugin("retina").manifest,
        models={"model": "model.onnx"},
        files=files,
        vfm_version="0.1.0",
    )


def test_roundtrip(tmp_path):
    bundle = load_bundle(_write(tmp_path / "b"))
    assert bundle.plugin_name == "retina"
    assert bundle.json("labels.json") == ["a", "b"]
    assert bundle.model_path().read_bytes().endswith(b"fake-onnx")
    assert [p.name for p in bundle.examples()] == ["00.png"]
    sums = (tmp_path / "b" / "SHA256SUMS").read_text()
    assert "manifest.json" in sums and "examples/00.png" in sums


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda b: (b / "model.onnx").write_bytes(b"evil"), "checksum mismatch for model.onnx"),
        (lambda b: (b / "extra.py").write_text("import os"), "not in its checksums: extra.py"),
        (lambda b: (b / "labels.json").unlink(), "missing: labels.json"),
        (lambda b: (b / "SHA256SUMS").unlink(), "no SHA256SUMS"),
        (lambda b: (b / "SHA256SUMS").write_text("garbage\n"), "malformed"),
    ],
)
def test_tampered_bundle_is_refused(tmp_path, tamper, message):
    path = _write(tmp_path / "b")
    tamper(path)
    with pytest.raises(VfmError, match=message):
        load_bundle(path)


def test_missing_and_not_a_directory(tmp_path):
    with pytest.raises(VfmError, match="not found"):
        load_bundle(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(VfmError, match="directory"):
        load_bundle(tmp_path / "file")


def test_failed_write_leaves_previous_bundle_intact(tmp_path):
    path = _write(tmp_path / "b")
    with pytest.raises(FileNotFoundError):
        _write(tmp_path / "b", **{"weights.bin": tmp_path / "does-not-exist"})
    assert load_bundle(path).json("labels.json") == ["a", "b"]
    assert [p.name for p in tmp_path.iterdir()] == ["b"]  # no partial directory left behind


def test_rewrite_replaces_and_refuses_foreign_directory(tmp_path):
    _write(tmp_path / "b")
    _write(tmp_path / "b", **{"labels.json": json.dumps(["x"])})
    assert load_bundle(tmp_path / "b").json("labels.json") == ["x"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(VfmError, match="not a vfm bundle"):
        _write(tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"
