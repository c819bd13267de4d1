"""Open a bundle for inference: verify it, find its plugin, build the plugin's predictor.

Torch-free: this module and everything it imports run on a serve-only install
(onnxruntime, numpy, Pillow).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Protocol

from packaging.version import Version

from vfm.platform.bad_input import BadInput
from vfm.platform.bundle import Bundle, load_bundle
from vfm.platform.errors import VfmError
from vfm.platform.plugin import Plugin
from vfm.platform.quantize import check_quantization
from vfm.platform.registry import discover
from vfm.platform.signing import verify_signature

log = logging.getLogger("vfm.serve")


class Predictor(Protocol):
    """What every plugin's ``predictor`` component provides."""

    bundle: Bundle
    plugin: Plugin

    def __init__(self, bundle: Bundle, plugin: Plugin) -> None: ...

    def predict(self, source: Any) -> dict[str, Any]:
        """One input (path, bytes, array, ...) -> a result dict (JSON-able except numpy arrays)."""
        ...

    def smoke_inputs(self) -> list[Any]:
        """Arguments for one call of the demo tab's ``/<plugin>_predict`` endpoint (a bundled example)."""
        ...

    def bad_inputs(self, folder: Path) -> list[BadInput]:
        """The mistakes users make with this plugin's inputs, written under ``folder``, each with the
        one-line error it must get (``tests/reliability/`` runs them through the CLI and the app)."""
        ...


def _compatible(installed: str, made_with: str) -> bool:
    """Same major version (same minor too while the major is 0)."""
    a, b = Version(installed), Version(made_with)
    return a.major == b.major and (a.major > 0 or a.minor == b.minor)


def open_predictor(path: str | Path, public_key: str | Path | None = None) -> Predictor:
    """Load and verify the bundle at ``path`` (its checksums; with ``public_key``, also its signature:
    :func:`vfm.platform.signing.verify_signature`) and return its plugin's predictor. An unsigned
    bundle opened without a key is used, with a note that only its checksums were checked."""
    bundle = load_bundle(path)
    if public_key is not None:
        verify_signature(bundle.path, public_key)
    elif not bundle.signed:
        log.info(
            "bundle %s is not signed: its checksums catch accidents, not tampering "
            "(vfm export --sign KEY; vfm predict/serve --require-signature PUBKEY)",
            Path(path).name,
        )
    check_quantization(bundle)
    plugin = discover().get(bundle.plugin_name)
    made_with = bundle.manifest["plugin"]["version"]
    if not _compatible(plugin.manifest.version, made_with):
        raise VfmError(
            f"bundle was made by plugin {plugin.name} {made_with}, but {plugin.manifest.version} is installed",
            where=str(path),
            fix=f"re-export the bundle with the installed plugin, or pip install the {plugin.name} plugin {made_with}",
        )
    predictor_class = plugin.component("predictor")
    try:
        return predictor_class(bundle, plugin)
    except (VfmError, MemoryError):
        raise
    except Exception as err:  # a verified bundle whose files are not what this plugin reads: edited or foreign
        raise VfmError(
            f"the {plugin.name} bundle's files are not what plugin {plugin.name} {plugin.manifest.version} reads "
            f"({type(err).__name__}: {(str(err).splitlines() or [''])[0][:160]})",
            where=str(path),
            fix="re-export the bundle with the installed vfm, or restore it from a trusted copy",
        ) from err


def onnx_session(model_path: Path) -> Any:
    """An onnxruntime CPU session, with threads bounded by ``VFM_NUM_THREADS`` (default: all cores)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    threads = int(os.environ.get("VFM_NUM_THREADS", "0"))
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    # Idle worker threads must sleep, not spin: a predictor holding several sessions (an encoder
    # and decoders) would otherwise have them compete for the cores (measured: docs/log/driving.md,
    # 'Serving').
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types for corrupt models
        raise VfmError(
            f"onnxruntime cannot load the model: {err}".splitlines()[0],
            where=str(model_path),
            fix="re-export the bundle",
        ) from None
