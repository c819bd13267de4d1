"""Bundle signatures: Ed25519 (``cryptography``) over a bundle's ``SHA256SUMS``.

``SHA256SUMS`` lists the sha256 of every other file and loading refuses unlisted files, so one
signature over it covers the whole bundle. The signature lives in ``SIGNATURE`` (JSON: the algorithm,
the signing key's fingerprint and the base64 signature), the one file ``SHA256SUMS`` does not list.
Checksums alone catch accidents; a signature checked against a public key you trust catches tampering.

Keys are PEM files, as ``vfm keys new`` or OpenSSL write them
(``openssl genpkey -algorithm ed25519 -out signing.pem``; ``openssl pkey -in signing.pem -pubout -out
signing.pub``). Torch-free.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_text

SIGNATURE = "SIGNATURE"
ALGORITHM = "ed25519"


def _crypto():
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise VfmError("bundle signatures need the cryptography package", fix="pip install 'vfm[serve]'") from None
    return serialization, ed25519


def new_key_pair(out_dir: str | Path, name: str = "vfm-signing") -> dict[str, str]:
    """Write ``<name>.pem`` (the private key, readable by its owner only) and ``<name>.pub`` in
    ``out_dir``; never overwrites.

    Raises:
        VfmError: either file already exists.
    """
    serialization, ed25519 = _crypto()
    out_dir = Path(out_dir)
    private_path, public_path = out_dir / f"{name}.pem", out_dir / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise VfmError("a key file is already there", where=str(path), fix="choose another --out or --name")
    out_dir.mkdir(parents=True, exist_ok=True)
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(private)
        atomic_write_text(public_path, public.decode("ascii"))
    except BaseException:  # a full disk, an interrupt: no half pair left to block the next try
        private_path.unlink(missing_ok=True)
        raise
    return {"private_key": str(private_path), "public_key": str(public_path), "fingerprint": _fingerprint(public)}


def _fingerprint(public_pem: bytes) -> str:
    return "sha256:" + hashlib.sha256(public_pem.strip()).hexdigest()[:32]


def _read_key(path: str | Path, private: bool) -> Any:
    serialization, ed25519 = _crypto()
    path = Path(path)
    kind = "private" if private else "public"
    try:
        data = path.read_bytes()
        key = (
            serialization.load_pem_private_key(data, password=None)
            if private
            else serialization.load_pem_public_key(data)
        )
    except OSError as err:
        raise VfmError(f"cannot read the {kind} key: {err.strerror}", where=str(path)) from None
    except (ValueError, TypeError):
        raise VfmError(
            f"not an unencrypted PEM {kind} key",
            where=str(path),
            fix="pass the .pem (to sign) or .pub (to check) that 'vfm keys new' wrote",
        ) from None
    expected = ed25519.Ed25519PrivateKey if private else ed25519.Ed25519PublicKey
    if not isinstance(key, expected):
        raise VfmError(f"the {kind} key is not an Ed25519 key", where=str(path), fix="make one with 'vfm keys new'")
    return key


def check_private_key(path: str | Path) -> None:
    """Raise the one-line :class:`VfmError` :func:`sign_bundle` would, before any work is done."""
    _read_key(path, private=True)


def _public_pem(public_key: Any) -> bytes:
    serialization, _ = _crypto()
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def sign_bundle(bundle: str | Path, private_key: str | Path) -> dict[str, str]:
    """Sign the bundle's ``SHA256SUMS`` with ``private_key`` into ``SIGNATURE`` (atomically).

    Raises:
        VfmError: the bundle has no ``SHA256SUMS`` or the key is unreadable or not Ed25519.
    """
    bundle = Path(bundle)
    sums = bundle / "SHA256SUMS"
    if not sums.is_file():
        raise VfmError("not a bundle: no SHA256SUMS", where=str(bundle), fix="pass the folder 'vfm export' wrote")
    key = _read_key(private_key, private=True)
    signature = key.sign(sums.read_bytes())
    record = {
        "algorithm": ALGORITHM,
        "key": _fingerprint(_public_pem(key.public_key())),
        "signature": base64.b64encode(signature).decode("ascii"),
    }
    atomic_write_text(bundle / SIGNATURE, json.dumps(record, indent=2) + "\n")
    return record


def verify_signature(bundle: str | Path, public_key: str | Path) -> dict[str, str]:
    """Check the bundle's ``SIGNATURE`` against its ``SHA256SUMS`` and ``public_key`` (the checksums
    themselves are checked by :func:`vfm.platform.bundle.load_bundle`).

    Raises:
        VfmError: no or a malformed signature, another key's, or one that does not match.
    """
    bundle = Path(bundle)
    key = _read_key(public_key, private=False)  # first: says so when cryptography is missing
    from cryptography.exceptions import InvalidSignature

    path = bundle / SIGNATURE
    if not path.is_file():
        raise VfmError(
            "the bundle is not signed, and a signature is required",
            where=str(bundle),
            fix="ask its publisher for a signed bundle ('vfm export ... --sign KEY'), or drop --require-signature",
        )
    try:
        record = json.loads(path.read_text("utf-8"))
        signature = base64.b64decode(record["signature"], validate=True)
        algorithm, fingerprint = record["algorithm"], record["key"]
    except (OSError, ValueError, KeyError, TypeError):
        raise VfmError("the bundle's SIGNATURE is malformed", where=str(path), fix="re-sign the bundle") from None
    expected = _fingerprint(_public_pem(key))
    if algorithm != ALGORITHM:
        raise VfmError(
            f"the bundle's signature uses {algorithm!r}; this vfm checks {ALGORITHM}",
            where=str(path),
            fix="re-sign the bundle with 'vfm export --sign' (Ed25519)",
        )
    if fingerprint != expected:
        raise VfmError(
            f"the bundle is signed by another key ({fingerprint}, not {expected})",
            where=str(bundle),
            fix="check the public key you were given belongs to this bundle's publisher",
        )
    try:
        key.verify(signature, (bundle / "SHA256SUMS").read_bytes())
    except (InvalidSignature, OSError):
        raise VfmError(
            "the bundle's signature does not match its checksums: it was changed after signing",
            where=str(bundle),
            fix="do not use it; get the bundle again from its publisher",
        ) from None
    return {"signed_by": fingerprint}
