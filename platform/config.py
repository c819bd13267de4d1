"""Configuration is data: defaults, then a YAML file, then ``key.sub=value`` overrides.

Every run writes the fully resolved config next to its outputs (``config.yaml``);
that file alone, passed back with ``--config``, reproduces the run.
"""

from __future__ import annotations

import copy
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_text


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A new dict: ``update`` merged into ``base``, recursing into nested mappings."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_override(text: str) -> dict[str, Any]:
    """``"a.b=3"`` -> ``{"a": {"b": 3}}``; the value is parsed as YAML (numbers, lists, null)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or any(not part for part in key.split(".")):
        raise VfmError(f"bad override {text!r}", fix="write overrides as section.key=value, e.g. pretrain.max_steps=50")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):  # YAML 1.1 reads "1e-3" as text; users mean a number
        try:
            value = float(value)
        except ValueError:
            pass
    nested: dict[str, Any] = {}
    cursor = nested
    parts = key.strip().split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return nested


def load_yaml_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from a file, with clear errors for the usual mistakes."""
    path = Path(path)
    if not path.is_file():
        raise VfmError("config file not found", where=str(path), fix="pass an existing YAML file to --config")
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as err:
        raise VfmError(f"config is not valid YAML: {str(err).splitlines()[0]}", where=str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise VfmError("config must be a YAML mapping", where=str(path), fix="write key: value pairs at the top level")
    return data


def resolve_config(
    defaults: dict[str, Any], config_file: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> dict[str, Any]:
    """Defaults < config file < overrides, in that order of precedence."""
    config = copy.deepcopy(defaults)
    if config_file:
        config = deep_merge(config, load_yaml_file(config_file))
    for text in overrides:
        config = deep_merge(config, parse_override(text))
    return config


def check_known_keys(
    config: dict[str, Any], defaults: dict[str, Any], *, settings_sections: tuple[str, ...] = ("pretrain", "finetune")
) -> None:
    """Refuse a config section, or a field of a section, that ``defaults`` (a pipeline's
    ``default_config()``) does not have: a typo is an error, not a silently ignored value. Fields of
    ``settings_sections`` are checked where they are read (:func:`build_settings`).

    Raises:
        VfmError: naming the unknown keys and the valid ones.
    """
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise VfmError(
            f"unknown config section(s) {', '.join(unknown)}",
            fix=f"valid sections are: {', '.join(sorted(defaults))}",
        )
    for section, values in config.items():
        known = defaults.get(section)
        if section in settings_sections or not isinstance(values, dict) or not isinstance(known, dict):
            continue
        fields = sorted(set(values) - set(known))
        if fields:
            raise VfmError(
                f"unknown config field(s) {', '.join(f'{section}.{k}' for k in fields)}",
                fix=f"valid fields in '{section}' are: {', '.join(sorted(known))}",
            )


def write_config(config: dict[str, Any], out_dir: str | Path, name: str = "config.yaml") -> Path:
    """Atomically write the resolved config into ``out_dir``."""
    return atomic_write_text(Path(out_dir) / name, yaml.safe_dump(config, sort_keys=False))


def build_settings(cls: type, data: dict[str, Any] | None, section: str) -> Any:
    """Instantiate the settings dataclass ``cls`` from a config section, naming any bad field.

    Unknown keys are refused (a typo must not be silently ignored); values are
    validated and coerced by pydantic against the dataclass's type hints. A number given
    to a text field is taken as its text: YAML reads ``precision=32`` as the number 32.
    """
    import dataclasses

    from pydantic import TypeAdapter, ValidationError

    data = dict(data or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise VfmError(
            f"unknown config field(s) {', '.join(f'{section}.{k}' for k in unknown)}",
            fix=f"valid fields in '{section}' are: {', '.join(sorted(known))}",
        )
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and _is_text_field(hints[name]):
            data[name] = str(value)
        if isinstance(value, bool) and bool not in plain_types(hints[name]):  # pydantic would read true as 1
            raise VfmError(
                f"invalid config: {section}.{name}: {str(value).lower()} is not a {_hint_name(hints[name])}",
                fix=f"give {section}.{name} a {_hint_name(hints[name])}",
            )
    try:
        return TypeAdapter(cls).validate_python(data)
    except ValidationError as err:
        problems = "; ".join(f"{section}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        raise VfmError(f"invalid config: {problems}", fix="correct the named fields") from None


def plain_types(hint: Any) -> set[Any]:
    """The types an annotation allows (``int | None`` -> ``{int, NoneType}``)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return {kind for arg in typing.get_args(hint) for kind in plain_types(arg)}
    return {typing.get_origin(hint) or hint}


def _hint_name(hint: Any) -> str:
    """``"number"`` for numeric fields, else the annotation's type names."""
    kinds = plain_types(hint) - {type(None)}
    if kinds <= {int, float}:
        return "number"
    return " or ".join(sorted(getattr(kind, "__name__", str(kind)) for kind in kinds))


def _is_text_field(hint: Any) -> bool:
    """Whether a type hint takes text and no number: ``str`` or ``str | None``."""
    if hint is str:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return set(typing.get_args(hint)) == {str, type(None)}
    return False
