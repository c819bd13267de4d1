"""INT8 bundles gated on the task metric: ``vfm export --quantize int8``.

Every ONNX graph of a verified fp32 bundle is quantized with onnxruntime's dynamic quantization
(int8 weights, activations quantized per batch at run time: no calibration data), the candidate
bundle is scored by the plugin's own ``evaluate`` beside the fp32 one, and it is written only when
each metric the plugin's manifest names in ``export.quantize_gate`` drops by at most ``max_drop``.
The int8 bundle records both scores in ``quantization.json``; a bundle whose record says the gate
failed is refused at load (:func:`check_quantization`).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from vfm.platform.bundle import CHECKSUMS, MANIFEST, Bundle, files_below, load_bundle, write_bundle
from vfm.platform.errors import VfmError
from vfm.platform.manifest import QuantizeGate
from vfm.platform.signing import SIGNATURE

FILE = "quantization.json"
"""What an int8 bundle records: the gate, both bundles' scores, each metric's drop and the sizes."""


def metric_at(result: dict[str, Any], path: str) -> float:
    """The number at ``"a.b.c"`` in an ``evaluate`` result.

    Raises:
        VfmError: the path does not lead to a number (the manifest's gate names a metric evaluate lacks).
    """
    value: Any = result
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise VfmError(
                f"the evaluation has no metric {path!r}",
                fix="fix export.quantize_gate.metrics in the plugin's manifest (dotted paths into evaluate's result)",
            )
        value = value[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise VfmError(f"the evaluation's {path!r} is not a number", fix="name a numeric metric in the gate")
    return float(value)


def quantize_graph(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of one ONNX graph (weights int8, per-channel where supported)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.shape_inference import quant_pre_process

        with tempfile.TemporaryDirectory() as work:
            prepared = Path(work) / "prepared.onnx"
            try:
                quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            except Exception:  # pre-processing only helps; some exporter graphs fail its shape inference
                shutil.copyfile(source, prepared)
            quantize_dynamic(prepared, target, weight_type=QuantType.QInt8, per_channel=True)
    finally:  # its modules call logging.basicConfig when imported: other libraries' debug lines would print
        root.handlers[:], root.level = handlers, level


def _bundle_files(bundle: Bundle, replaced: dict[str, Path]) -> dict[str, bytes | str | Path]:
    """The (verified) bundle's files to copy into a new one, ``replaced`` ones swapped in; its own
    manifest, checksums, signature and quantization record are written anew."""
    own = (MANIFEST, CHECKSUMS, SIGNATURE, FILE)
    return {name: replaced.get(name, bundle.path / name) for name in files_below(bundle.path) if name not in own}


def _size_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 2)


def quantize_gate(plugin: Any) -> QuantizeGate:
    """The plugin's ``export.quantize_gate`` (checked before any export work starts).

    Raises:
        VfmError: the plugin declares none, so an int8 bundle of it cannot be checked.
    """
    gate = plugin.manifest.export.quantize_gate
    if gate is None:
        raise VfmError(
            f"plugin '{plugin.name}' declares no quantization gate, so an int8 bundle cannot be checked",
            fix="add export.quantize_gate (metrics, max_drop) to its manifest, or export without --quantize",
        )
    return gate


def quantize_bundle(pipeline: Any, fp32: Path, out: Path, source: str | None = None) -> dict[str, Any]:
    """Write the int8 version of the fp32 bundle ``fp32`` at ``out`` if it passes the plugin's gate, both
    scored on ``source`` (a labelled data path; None: what the plugin's ``evaluate`` scores a bundle on).

    Returns:
        The record written as ``quantization.json``: ``gate`` (``metrics``, ``max_drop``), ``fp32`` and
        ``int8`` (metric -> score), ``drop`` (metric -> fp32 - int8), ``passed``, ``size_mb`` of both.

    Raises:
        VfmError: the plugin declares no gate, or a metric dropped by more than ``max_drop`` (nothing
            is written then; the fp32 bundle stays as it was).
    """
    from vfm.platform.registry import vfm_version

    gate = quantize_gate(pipeline.plugin)
    original = load_bundle(fp32)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".int8", dir=out.parent))
    try:
        graphs = sorted(name for name in _bundle_files(original, {}) if name.endswith(".onnx"))
        replaced = {}
        for name in graphs:
            replaced[name] = work / "graphs" / name
            replaced[name].parent.mkdir(parents=True, exist_ok=True)
            quantize_graph(original.path / name, replaced[name])
        files = _bundle_files(original, replaced)
        build = dict(
            plugin_manifest=original.plugin_manifest, models=original.manifest["models"], vfm_version=vfm_version()
        )
        candidate = write_bundle(work / "candidate", files=files, **build)
        scores = {"fp32": pipeline.evaluate(fp32, source=source), "int8": pipeline.evaluate(candidate, source=source)}
        record: dict[str, Any] = {
            "method": "onnxruntime dynamic quantization, int8 weights (per channel), int8 activations per batch",
            "gate": {"metrics": list(gate.metrics), "max_drop": gate.max_drop},
            "data": source,
            **{kind: {m: metric_at(result, m) for m in gate.metrics} for kind, result in scores.items()},
            "graphs": graphs,
        }
        record["drop"] = {m: round(record["fp32"][m] - record["int8"][m], 6) for m in gate.metrics}
        record["passed"] = all(drop <= gate.max_drop + 1e-12 for drop in record["drop"].values())
        record["size_mb"] = {"fp32": _size_mb(original.path), "int8": _size_mb(candidate)}
        if not record["passed"]:
            worst = max(record["drop"], key=record["drop"].get)
            raise VfmError(
                f"the int8 bundle was not written: {worst} fell from {record['fp32'][worst]:.4f} to "
                f"{record['int8'][worst]:.4f} (more than the gate's {gate.max_drop:g})",
                where=str(fp32),
                fix="serve the fp32 bundle, which is unchanged",
            )
        write_bundle(out, files={**files, FILE: json.dumps(record, indent=2) + "\n"}, **build)
        return record
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check_quantization(bundle: Bundle) -> None:
    """Refuse a bundle whose ``quantization.json`` records a failed gate (it was never meant to be served)."""
    if not (bundle.path / FILE).is_file():
        return
    record = bundle.json(FILE)
    if not isinstance(record, dict) or record.get("passed") is not True:
        raise VfmError(
            "the bundle is quantized and its record does not show a passed metric gate",
            where=str(bundle.path / FILE),
            fix="serve the fp32 bundle, or re-export with 'vfm export --quantize int8'",
        )
