"""The plugin manifest: what a plugin is, what it takes and gives, and how it is built.

A manifest is data (``manifest.yaml`` in the plugin package), validated here with
pydantic so that a bad field is reported by its dotted name. It never imports the
plugin's components: those are ``"module:attribute"`` strings resolved lazily by
:class:`vfm.platform.plugin.Plugin`.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vfm.platform.errors import VfmError

SCHEMA_VERSION = 1
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Strict):
    """One named model input or output.

    ``shape`` uses ints for fixed sizes and names (``"batch"``) for dynamic ones.
    """

    name: str
    dtype: Literal["float32", "float16", "int64", "int32", "uint8", "bool", "string"]
    shape: list[int | str]
    description: str = ""
    value_range: tuple[float, float] | None = None
    labels: list[str] | None = None


class QuantizeGate(_Strict):
    """When an int8 bundle may replace the fp32 one (``vfm export --quantize int8``): each of
    ``metrics`` (dotted paths into the plugin's ``evaluate`` result, higher is better) may drop by at
    most ``max_drop`` (absolute: 0.01 is one point of accuracy)."""

    metrics: list[str] = Field(min_length=1)
    max_drop: float = Field(ge=0, le=1)


class ExportSpec(_Strict):
    """How the model is exported to ONNX, what parity is required, and what an int8 bundle must keep."""

    opset: int = Field(18, ge=13, le=23)
    atol: float = Field(1e-4, gt=0)
    rtol: float = Field(1e-3, gt=0)
    quantize_gate: QuantizeGate | None = None


class DemoSpec(_Strict):
    """How the plugin appears in the Gradio app."""

    title: str
    description: str = ""
    n_examples: int = Field(4, ge=0, le=32)


class Components(_Strict):
    """Lazily imported components, as ``"package.module:attribute"`` strings.

    Any component left out falls back to the task's default
    (:data:`vfm.platform.tasks.TASK_DEFAULTS`).
    """

    generator: str | None = None
    loader: str | None = None
    preprocess: str | None = None
    model: str | None = None
    metrics: str | None = None
    explain: str | None = None
    pipeline: str | None = None
    predictor: str | None = None
    demo_tab: str | None = None

    @field_validator("*")
    @classmethod
    def _import_path(cls, value: str | None) -> str | None:
        if value is not None and not _IMPORT_PATH.match(value):
            raise ValueError(f"{value!r} is not of the form 'package.module:attribute'")
        return value


class Manifest(_Strict):
    """A validated plugin manifest (schema version 1)."""

    schema_version: Literal[1]
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,39}$")
    version: str
    domain: str
    modality: Literal["image", "text", "video", "tabular", "multimodal"]
    task: str
    licence: str
    intended_use: str = Field(min_length=10)
    limitations: list[str] = Field(min_length=1)
    requires: dict[str, str] = {}
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    preprocessing: dict[str, Any] = {}
    training: dict[str, Any] = {}
    export: ExportSpec = ExportSpec()
    demo: DemoSpec
    components: Components = Components()

    @field_validator("version")
    @classmethod
    def _pep440_version(cls, value: str) -> str:
        try:
            Version(value)
        except InvalidVersion as err:
            raise ValueError(f"{value!r} is not a PEP 440 version") from err
        return value

    @field_validator("requires")
    @classmethod
    def _pep440_ranges(cls, value: dict[str, str]) -> dict[str, str]:
        for dist, spec in value.items():
            try:
                SpecifierSet(spec)
            except InvalidSpecifier as err:
                raise ValueError(f"requires.{dist}: {spec!r} is not a PEP 440 range") from err
        return value

    @property
    def labels(self) -> list[str]:
        """Label names of the first output that declares them (empty if none)."""
        return next((out.labels for out in self.outputs if out.labels), [])


def parse_manifest(data: Any, *, source: str) -> Manifest:
    """Validate raw manifest data, or raise one VfmError naming every bad field.

    Args:
        data: the parsed YAML/JSON mapping.
        source: where it came from (a path or plugin name), for the message.
    """
    if not isinstance(data, dict):
        raise VfmError("manifest is not a mapping", where=source, fix="write the manifest as YAML key: value pairs")
    try:
        return Manifest.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in err.errors())
        raise VfmError(
            f"invalid manifest: {problems}",
            where=source,
            fix="correct the named fields (see docs/plugin-sdk.md for the schema)",
        ) from None
