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


def _resum(bundle: Path, extra_lines: str = "") -> None:
    """Recompute SHA256SUMS over the bundle's files, as someone tampering would, plus ``extra_lines``."""
    import hashlib

    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(bundle).as_posix()}\n"
        for p in sorted(bundle.rglob("*"))
        if p.is_file() and p.name != "SHA256SUMS"
    ]
    (bundle / "SHA256SUMS").write_text("".join(lines) + extra_lines)


def test_a_bundle_cannot_reach_outside_itself(tmp_path):
    outside = tmp_path / "outside.onnx"
    outside.write_bytes(b"\x08\x01evil")
    path = _write(tmp_path / "b")
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps(manifest | {"models": {"model": "../outside.onnx"}}))
    _resum(path)
    with pytest.raises(VfmError, match="refers to a file outside itself: '../outside.onnx'"):
        load_bundle(path)

    path = _write(tmp_path / "c")
    _resum(path, f"{'0' * 64}  ../../etc/passwd\n")
    with pytest.raises(VfmError, match="outside itself: '../../etc/passwd'"):
        load_bundle(path)

    path = _write(tmp_path / "d")
    (path / "examples" / "01.png").symlink_to(outside)
    _resum(path)
    with pytest.raises(VfmError, match="outside itself: 'examples/01.png'"):
        load_bundle(path)


def test_a_model_the_checksums_do_not_cover_is_refused(tmp_path):
    path = _write(tmp_path / "b")
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps(manifest | {"models": {"model": "missing.onnx"}}))
    _resum(path)
    with pytest.raises(VfmError, match="model 'missing.onnx' is not one of its checksummed files"):
        load_bundle(path)
