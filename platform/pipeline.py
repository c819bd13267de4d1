"""The plugin contract, typed: the :class:`Pipeline` every plugin's ``pipeline`` component implements,
the :class:`ParityReport` every export records, and :func:`write_run_bundle`, the one helper that
assembles a bundle's standard files.

``export`` means the same for every plugin: a trained run in, the ONNX graphs checked against torch
(:class:`ParityReport`), a verified bundle out. Torch-free: pipelines import torch inside their verbs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from vfm.platform.bundle import write_bundle
from vfm.platform.manifest import Manifest
from vfm.platform.model_card import render_model_card
from vfm.platform.plugin import Plugin
from vfm.platform.registry import vfm_version

BASE_MODEL_FILE = "base_model.json"
"""What a fine-tune run started from (:func:`record_base_model`); its bundle carries it and names it on the card."""

Config = dict[str, Any]
Metrics = dict[str, Any]
"""A verb's JSON-able result: ``metrics.json`` of a run, what ``vfm <verb>`` prints."""


@runtime_checkable
class Pipeline(Protocol):
    """What ``plugin.component("pipeline")(plugin)`` returns; each method is one CLI verb or check.

    Config sections: ``data``, ``pretrain``, ``finetune`` (their training fields are
    :class:`vfm.platform.training.settings.TrainSettings` plus the plugin's own), ``evaluate``.
    """

    plugin: Plugin

    def default_config(self) -> Config:
        """The plugin's defaults (from its manifest), before ``--config`` and ``--set``."""
        ...

    def resolve(self, config: Config) -> Config:
        """``config`` merged over :meth:`default_config`."""
        ...

    def pretrain(self, config: Config, out_dir: Path, *, progress: bool = True) -> Metrics:
        """Self-supervised pretraining into ``out_dir``; resumes from ``out_dir/checkpoints/last.ckpt``."""
        ...

    def finetune(self, config: Config, out_dir: Path, *, progress: bool = True) -> Metrics:
        """Task training into the run folder ``out_dir``; resumes from its ``checkpoints/last.ckpt``."""
        ...

    def evaluate(
        self,
        run_dir: Path,
        config_overrides: Config | None = None,
        *,
        source: str | None = None,
        split: str | None = None,
    ) -> Metrics:
        """Score a run (or bundle) on its own validation data, or on ``source`` by path."""
        ...

    def export(self, run_dir: Path, out: Path, *, progress: bool = True) -> Path:
        """A trained run in, ONNX + :class:`ParityReport` + verified bundle (:func:`write_run_bundle`) out."""
        ...

    def smoke_config(self) -> Config:
        """A seconds-long config on the same code path (``vfm plugins validate``, contract tests)."""
        ...

    def check_forward(self) -> dict[str, Any]:
        """A fake-input forward pass with its output shapes checked."""
        ...

    def build_demo_bundle(self, work_dir: Path, *, config: Config | None = None, progress: bool = True) -> Path:
        """Train on the plugin's synthetic data and export, reusing finished steps in ``work_dir``."""
        ...


@dataclass
class OutputParity:
    """How far one ONNX output lies from torch's: ``max |onnx - torch|`` and that over ``max(|torch|, 1e-6)``."""

    max_abs_err: float
    max_rel_err: float | None = None


@dataclass
class ParityReport:
    """An export's ONNX-vs-torch check, as ``parity.json`` of every bundle holds it.

    Attributes:
        passed: every output within ``atol`` (and every extra check passed).
        outputs: ``"<graph>.<output>"`` (or the output name for one graph) -> :class:`OutputParity`.
        checks: further checks by name, e.g. greedy tokens of a decoder (``{"count", "equal", ...}``).
        versions: opset, onnxruntime and torch versions of the export.
    """

    passed: bool
    atol: float
    rtol: float | None
    n_inputs: int | None
    outputs: dict[str, OutputParity]
    checks: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_graphs(cls, graphs: dict[str, dict[str, Any]], **checks: Any) -> ParityReport:
        """One report over the graphs of an export, each ``{name: report}`` as
        :func:`vfm.finetune.export.export_onnx` returns it; outputs are named ``"<graph>.<output>"``,
        or ``"<output>"`` for a single graph named ``""``. ``checks`` must each hold ``passed``."""
        first = next(iter(graphs.values()))
        outputs = {
            (f"{graph}.{name}" if graph else name): OutputParity(stats["max_abs_err"], stats.get("max_rel_err"))
            for graph, report in graphs.items()
            for name, stats in report["outputs"].items()
        }
        passed = all(r["passed"] for r in graphs.values()) and all(c["passed"] for c in checks.values())
        return cls(
            passed=passed,
            atol=first["atol"],
            rtol=first.get("rtol"),
            n_inputs=first.get("n_inputs"),
            outputs=outputs,
            checks=checks,
            versions={key: first[key] for key in ("opset", "onnxruntime", "torch") if key in first},
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def write_run_bundle(
    out: Path,
    manifest: Manifest,
    *,
    models: dict[str, str],
    model_files: dict[str, Any],
    metrics: Metrics,
    parity: ParityReport,
    config_file: Path,
    card_metrics: dict[str, float] | None = None,
) -> Path:
    """Assemble and verify a bundle: the plugin's files (``model_files``: bundle path -> a file to copy,
    or its bytes / text) plus the standard ones every bundle has: ``metrics.json``, ``parity.json``,
    ``config.yaml`` (the run's), ``base_model.json`` (the run's, when it started from a pretrained
    model; see :func:`vfm.platform.models.sources.base_model_entry`), ``MODEL_CARD.md`` (with
    ``card_metrics``, default the numeric ``metrics``, and the base model) and ``SHA256SUMS``
    (:func:`vfm.platform.bundle.write_bundle`)."""
    from vfm.platform.config import load_yaml_file

    base_file = config_file.parent / BASE_MODEL_FILE
    base_model = json.loads(base_file.read_text("utf-8")) if base_file.is_file() else None
    has_config = config_file.is_file()
    files = dict(model_files) | {
        "metrics.json": json.dumps(metrics, indent=2),
        "parity.json": parity.to_json(),
        "config.yaml": config_file.read_text("utf-8") if has_config else "{}\n",
        "MODEL_CARD.md": render_model_card(
            manifest,
            metrics=metrics if card_metrics is None else card_metrics,
            parity=asdict(parity),
            config=load_yaml_file(config_file) if has_config else {},
            base_model=base_model,
        ),
    }
    if base_model is not None:
        files[BASE_MODEL_FILE] = json.dumps(base_model, indent=2)
    return write_bundle(out, plugin_manifest=manifest, models=models, files=files, vfm_version=vfm_version())


def record_base_model(
    run_dir: Path, reference: str | Path | None, components: dict[str, str | Path | None] | None = None
) -> dict[str, Any] | None:
    """Write the run's ``base_model.json`` (:func:`vfm.platform.models.sources.base_model_entry` of
    ``reference``, the model the run fine-tunes), or remove a stale one when the run uses no pretrained
    model at all. ``components``: further pretrained models the run uses, by role (``{"dense retriever":
    "all-minilm-l6-v2"}``; None values are skipped), recorded under ``"components"``."""
    from vfm.platform.fileio import atomic_write_json
    from vfm.platform.models.sources import base_model_entry

    path = Path(run_dir) / BASE_MODEL_FILE
    others = {role: base_model_entry(ref) for role, ref in (components or {}).items() if ref is not None}
    if reference is None and not others:
        path.unlink(missing_ok=True)
        return None
    entry = base_model_entry(reference) if reference is not None else {"reference": None, "source": {"kind": "fresh"}}
    if others:
        entry["components"] = others
    atomic_write_json(path, entry)
    return entry
