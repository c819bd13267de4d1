"""Bundle signatures: a key pair from the CLI, a signed bundle accepted with its public key, and every way
a signature can fail refused in one line; unsigned bundles keep working."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from tests.conftest import forge_file, run_vfm
from vfm.platform.bundle import load_bundle, write_bundle
from vfm.platform.errors import VfmError
from vfm.platform.registry import get_plugin
from vfm.platform.signing import SIGNATURE, new_key_pair, sign_bundle, verify_signature


def _bundle(out: Path) -> Path:
    return write_bundle(
        out,
        plugin_manifest=get_plugin("retina").manifest,
        models={"model": "model.onnx"},
        files={"model.onnx": b"\x08\x01fake-onnx", "labels.json": json.dumps(["a", "b"])},
        vfm_version="0.1.0",
    )


@pytest.fixture
def keys(tmp_path):
    return new_key_pair(tmp_path / "keys"), new_key_pair(tmp_path / "keys", name="someone-else")


def test_new_keys_are_private_and_never_overwritten(keys, tmp_path):
    ours, _ = keys
    assert stat.S_IMODE(os.stat(ours["private_key"]).st_mode) == 0o600
    assert Path(ours["public_key"]).read_text().startswith("-----BEGIN PUBLIC KEY-----")
    with pytest.raises(VfmError, match="already there"):
        new_key_pair(tmp_path / "keys")


def test_a_signed_bundle_loads_and_verifies(keys, tmp_path):
    ours, _ = keys
    bundle = _bundle(tmp_path / "b")
    assert not load_bundle(bundle).signed
    record = sign_bundle(bundle, ours["private_key"])
    assert record["key"] == ours["fingerprint"]
    assert load_bundle(bundle).signed, "SIGNATURE is the one file the checksums do not list"
    assert verify_signature(bundle, ours["public_key"]) == {"signed_by": ours["fingerprint"]}


def test_tampering_and_wrong_keys_are_refused(keys, tmp_path):
    ours, theirs = keys
    bundle = _bundle(tmp_path / "b")
    with pytest.raises(VfmError, match="not signed, and a signature is required"):
        verify_signature(bundle, ours["public_key"])
    sign_bundle(bundle, ours["private_key"])
    with pytest.raises(VfmError, match="signed by another key"):
        verify_signature(bundle, theirs["public_key"])
    with pytest.raises(VfmError, match="not an unencrypted PEM public key"):
        verify_signature(bundle, ours["private_key"])

    forged = tmp_path / "forged"  # a changed file with its checksum recomputed: the checksums pass, the signature not
    shutil.copytree(bundle, forged)
    forge_file(forged, "labels.json", json.dumps(["b", "a"]))
    load_bundle(forged)
    with pytest.raises(VfmError, match="changed after signing"):
        verify_signature(forged, ours["public_key"])
    (forged / SIGNATURE).write_text("{not json")
    with pytest.raises(VfmError, match="SIGNATURE is malformed"):
        verify_signature(forged, ours["public_key"])


def test_keys_that_are_not_ed25519_or_missing_get_one_line(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "ec.pem").write_bytes(
        other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    bundle = _bundle(tmp_path / "b")
    with pytest.raises(VfmError, match="not an Ed25519 key"):
        sign_bundle(bundle, tmp_path / "ec.pem")
    with pytest.raises(VfmError, match="cannot read the private key"):
        sign_bundle(bundle, tmp_path / "missing.pem")
    assert not (bundle / SIGNATURE).exists()


@pytest.mark.slow
def test_the_cli_signs_at_export_and_predict_requires_the_signature(retina_run, tmp_path):
    keys = json.loads(run_vfm("keys", "new", "--out", str(tmp_path)).stdout)
    bundle = tmp_path / "bundle"
    result = run_vfm(
        "export", "retina", "--run", str(retina_run["finetune"]), "--out", str(bundle), "--sign", keys["private_key"]
    )
    assert result.returncode == 0 and keys["fingerprint"] in result.stdout, result.stderr
    example = str(sorted((bundle / "examples").iterdir())[0])
    heat = ("--explain-dir", str(tmp_path / "explanations"))
    signed = run_vfm("predict", str(bundle), example, "--require-signature", keys["public_key"], *heat)
    assert signed.returncode == 0, signed.stderr
    unsigned = run_vfm("predict", str(retina_run["bundle"]), example, "--require-signature", keys["public_key"], *heat)
    assert unsigned.returncode == 2 and "not signed" in unsigned.stderr and "Traceback" not in unsigned.stderr
    plain = run_vfm("predict", str(retina_run["bundle"]), example, *heat)
    assert plain.returncode == 0 and "not signed" in plain.stderr, "an unsigned bundle works, and says so"
    bad_key = run_vfm(
        "export", "retina", "--run", str(retina_run["finetune"]), "--out", str(tmp_path / "x"), "--sign", example
    )
    assert bad_key.returncode == 2 and "PEM" in bad_key.stderr and not (tmp_path / "x").exists()
