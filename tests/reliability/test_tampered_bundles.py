"""A tampered or damaged bundle of every installed plugin is refused by ``vfm predict`` in one line:
every file changed, deleted or (with the checksums recomputed, as someone tampering would) made
unreadable; files added; paths reaching outside the bundle; a signature required but missing or
broken. Cases are made from each bundle's own file list, so a new plugin is covered as it registers."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import PLUGINS

from vfm.platform.cli import EXIT_USER_ERROR, main
from vfm.platform.signing import new_key_pair, sign_bundle

pytestmark = pytest.mark.slow
Tamper = Callable[[Path], None]


def resum(bundle: Path, extra: str = "") -> None:
    """Recompute SHA256SUMS over the bundle's files (plus ``extra`` lines), as someone tampering would."""
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(bundle).as_posix()}\n"
        for p in sorted(bundle.rglob("*"))
        if p.is_file() and p.name not in ("SHA256SUMS", "SIGNATURE")
    ]
    (bundle / "SHA256SUMS").write_text("".join(lines) + extra)


def _listed(bundle: Path) -> list[str]:
    return [line.split("  ", 1)[1] for line in (bundle / "SHA256SUMS").read_text().splitlines()]


def _flip(name: str) -> Tamper:
    def tamper(bundle: Path) -> None:
        data = bytearray((bundle / name).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (bundle / name).write_bytes(bytes(data))

    return tamper


def _replace(name: str, data: bytes) -> Tamper:
    """Replace the file's content with ``data`` and recompute the checksums."""

    def tamper(bundle: Path) -> None:
        (bundle / name).write_bytes(data)
        resum(bundle)

    return tamper


def _model_outside(bundle: Path) -> None:
    (bundle.parent / "outside.onnx").write_bytes(b"\x08\x01evil")
    manifest = json.loads((bundle / "manifest.json").read_text())
    role = next(iter(manifest["models"]))
    (bundle / "manifest.json").write_text(json.dumps(manifest | {"models": {role: "../outside.onnx"}}))
    resum(bundle)


def _symlink_out(bundle: Path) -> None:
    (bundle.parent / "secret.txt").write_text("secret")
    (bundle / "examples" / "zz-link.png").symlink_to(bundle.parent / "secret.txt")
    resum(bundle)


def tamperings(bundle: Path) -> list[tuple[str, Tamper, str | None]]:
    """``(id, tamper, fragment of the error)`` for a bundle. None: a clear one-line error, or, for a file
    prediction never reads, the untouched bundle's answer (never a different one)."""
    files = _listed(bundle)
    cases: list[tuple[str, Tamper, str | None]] = [
        ("extra-file", lambda b: (b / "extra.py").write_text("import os"), "not in its checksums: extra.py"),
        ("no-checksums", lambda b: (b / "SHA256SUMS").unlink(), "no SHA256SUMS"),
        ("garbled-checksums", lambda b: (b / "SHA256SUMS").write_text("garbage\n"), "malformed"),
        ("model-outside", _model_outside, "outside itself: '../outside.onnx'"),
        ("sums-outside", lambda b: resum(b, f"{'0' * 64}  ../../etc/passwd\n"), "outside itself"),
        ("symlink-out", _symlink_out, "outside itself: 'examples/zz-link.png'"),
    ]
    for name in files:
        cases += [
            (f"changed:{name}", _flip(name), f"checksum mismatch for {name}"),
            (f"deleted:{name}", lambda b, n=name: (b / n).unlink(), f"missing: {name}"),
        ]
        if name.endswith(".json"):
            cases += [
                (f"not-json:{name}", _replace(name, b"{\x00\xff"), f"{name} is not valid JSON"),
                (f"wrong-shape:{name}", _replace(name, b"[]" if name != "manifest.json" else b"{}"), None),
            ]
        if name.endswith(".onnx"):
            cases.append((f"not-onnx:{name}", _replace(name, b"\x08\x07\x12"), None))
    return cases


def _one_line_error(code: int, out: str, err: str) -> str | None:
    """The error of a refused ``vfm predict``, or None when it was not a clean one-line refusal."""
    lines = [line for line in err.splitlines() if line.startswith("vfm:")]
    if code != EXIT_USER_ERROR or "Traceback" in err or len(lines) != 1 or "internal error" in lines[0]:
        return None
    return lines[0]


@pytest.mark.parametrize("plugin", PLUGINS)
def test_every_tampered_or_damaged_file_is_refused_in_one_line(plugin, smoke_bundles, tmp_path, capfd):
    source = smoke_bundles[plugin]
    example = tmp_path / f"input{sorted((source / 'examples').iterdir())[0].suffix}"
    shutil.copy(sorted((source / "examples").iterdir())[0], example)
    cases = tamperings(source)
    explained = ["--explain-dir", str(tmp_path / "explained")]
    assert main(["predict", str(source), str(example), *explained]) == 0
    untouched = capfd.readouterr().out
    failures = []
    for index, (name, tamper, expect) in enumerate(cases):
        bundle = tmp_path / f"case{index}" / "bundle"
        shutil.copytree(source, bundle)
        tamper(bundle)
        code = main(["predict", str(bundle), str(example), *explained])
        out, err = capfd.readouterr()
        message = _one_line_error(code, out, err)
        if expect is None and code == 0 and out == untouched:
            continue  # a file prediction does not read: the same answer
        if message is None:
            failures.append(f"{name}: not a one-line refusal (exit {code}): {err.strip()[-400:] or out[:300]}")
        elif expect is not None and expect not in message:
            failures.append(f"{name}: expected {expect!r} in: {message}")
    assert not failures, f"{len(failures)} of {len(cases)}:\n" + "\n".join(failures)


@pytest.mark.parametrize("plugin", PLUGINS)
def test_a_required_signature_that_is_missing_or_broken_is_refused(plugin, smoke_bundles, tmp_path, capfd):
    keys = new_key_pair(tmp_path / "keys")
    public, private = keys["public_key"], keys["private_key"]
    bundle = tmp_path / "bundle"
    shutil.copytree(smoke_bundles[plugin], bundle)
    example = sorted((bundle / "examples").iterdir())[0]
    args = ["predict", str(bundle), str(example), "--require-signature", str(public)]
    args += ["--explain-dir", str(tmp_path / "explained")]

    assert main(args) == EXIT_USER_ERROR
    assert "not signed" in capfd.readouterr().err

    sign_bundle(bundle, private)
    assert main(args) == 0, capfd.readouterr().err
    capfd.readouterr()

    labels = _listed(bundle)[0]  # a file changed and the checksums recomputed: only the signature catches it
    _flip(labels)(bundle)
    resum(bundle)
    assert main(args) == EXIT_USER_ERROR
    message = _one_line_error(EXIT_USER_ERROR, "", capfd.readouterr().err)
    assert message is not None and "signature" in message
