"""The model card written into every bundle: intended use, data, metrics, limits."""

from __future__ import annotations

from typing import Any

from vfm.platform.manifest import Manifest


def _metric_rows(metrics: dict[str, Any]) -> list[str]:
    rows = []
    for key, value in metrics.items():
        if isinstance(value, float):
            rows.append(f"| {key} | {value:.4f} |")
        elif isinstance(value, int):
            rows.append(f"| {key} | {value} |")
    return rows


def _base_model_lines(base: dict[str, Any] | None) -> list[str]:
    """The card's "Base model" section from a run's ``base_model.json``
    (:func:`vfm.platform.models.sources.base_model_entry`, with its ``components`` by role)."""
    components = (base or {}).get("components") or {}
    if base is None or base.get("source", {}).get("kind") == "fresh":
        lines = [
            "The main model is trained from random initialisation."
            if components
            else "Trained from random initialisation: no pretrained base model."
        ]
    else:
        lines = _model_lines(base)
    for role, entry in components.items():
        lines += ["", f"The {role} starts from a pretrained model:", *_model_lines(entry)]
    return lines


def _model_lines(base: dict[str, Any]) -> list[str]:
    """One pretrained model's lines: reference, origin, source, licence, weights' sha256."""
    source = base.get("source") or {}
    kind = source.get("kind")
    if kind == "adapted":  # domain-adapted by vfm from another base: name both
        inner = source.get("base") or {}
        origin = f"domain-adapted by `vfm pretrain` from `{inner.get('reference')}`"
        source = inner.get("source") or {}
        kind = source.get("kind")
    else:
        origin = "used as published"
    where = {
        "package": f"the packages {', '.join(f'{k} {v}' for k, v in source.get('packages', {}).items())}",
        "hub": f"the Hugging Face Hub, revision {source.get('commit', source.get('revision'))}",
        "local": f"the local folder {source.get('path')}",
        "file": "a weights file",
    }.get(str(kind), str(kind))
    lines = [
        f"- **Model:** `{base.get('reference')}`"
        + (f" (upstream `{base['upstream']}`)" if base.get("upstream") else "")
        + f", {origin}",
        f"- **Source:** {where}",
        f"- **Licence:** {base.get('licence') or 'not stated: check before redistributing'}",
    ]
    lines += [f"- **sha256** `{name}`: `{digest}`" for name, digest in (base.get("weights_sha256") or {}).items()]
    return lines


def _stopped_by_time(value: Any) -> bool:
    """Whether any training call recorded in ``metrics`` (at any depth) ended at its wall-clock cap."""
    if isinstance(value, dict):
        return value.get("stopped_by_time") is True or any(_stopped_by_time(v) for v in value.values())
    if isinstance(value, list):
        return any(_stopped_by_time(v) for v in value)
    return False


def _time_cap_lines(metrics: dict[str, Any]) -> list[str]:
    """A warning when the run stopped at its ``max_minutes`` cap rather than its planned steps or epochs."""
    if not _stopped_by_time(metrics):
        return []
    return [
        "",
        "**Under-trained:** training stopped at its wall-clock cap (`max_minutes`) before the planned steps "
        "or epochs, so this model depends on how busy the machine was. Re-train without the cap for the "
        "recipe's model.",
    ]


def render_model_card(
    manifest: Manifest,
    *,
    metrics: dict[str, Any],
    parity: dict[str, Any],
    config: dict[str, Any],
    base_model: dict[str, Any] | None = None,
) -> str:
    """Markdown model card for a bundle made by ``manifest``'s plugin; ``base_model``: what it was
    fine-tuned from (None: random initialisation)."""
    data = config.get("data", {})
    source = data.get("source", "unknown")
    if source == "synthetic":
        counts = (
            f" (seed {data.get('seed')}, {data.get('n_train')} training and {data.get('n_val')} validation samples)"
            if "n_train" in data
            else ""
        )
        data_text = f"Synthetic data from the plugin's generator{counts}. No real patient, client or vehicle data."
    elif "train_split" in data:
        data_text = f"`{source}` (train split `{data.get('train_split')}`, validation split `{data.get('val_split')}`)."
    else:
        data_text = f"`{source}`."
    parity_rows = [
        f"| {name} | {out['max_abs_err']:.2e} | "
        f"{'–' if out.get('max_rel_err') is None else format(out['max_rel_err'], '.2e')} |"
        for name, out in parity.get("outputs", {}).items()
    ]
    lines = [
        f"# Model card — {manifest.name} {manifest.version}",
        "",
        f"**Domain:** {manifest.domain} · **Task:** {manifest.task} · **Licence:** {manifest.licence}",
        "",
        "## Intended use",
        manifest.intended_use.strip(),
        "",
        "## Limitations",
        *[f"- {item}" for item in manifest.limitations],
        "",
        "## Base model",
        *_base_model_lines(base_model),
        "",
        "## Training data",
        data_text,
        *_time_cap_lines(metrics),
        "",
        "## Outputs",
        *[f"- `{out.name}` {out.shape}: {out.description}" for out in manifest.outputs],
        "",
        "## Validation metrics",
        "| metric | value |",
        "|---|---|",
        *_metric_rows(metrics),
        "",
        "## Export parity (torch fp32 vs onnxruntime)",
        f"Tolerance: atol {parity.get('atol')}, rtol {parity.get('rtol')}; "
        f"{parity.get('n_inputs')} real inputs; passed: {parity.get('passed')}.",
        "",
        "| output | max abs error | max rel error |",
        "|---|---|---|",
        *parity_rows,
        "",
    ]
    return "\n".join(lines)
