"""A plugin: its validated manifest plus lazily imported components.

The object a plugin's entry point exposes is a :class:`Plugin`. Creating it reads
only ``manifest.yaml``; components (torch-heavy ones included) are imported when
first asked for, so listing plugins stays fast and torch-free.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import Any

import yaml

from vfm.platform.errors import VfmError
from vfm.platform.manifest import Manifest, parse_manifest
from vfm.platform.tasks import REQUIRED_COMPONENTS, TASK_DEFAULTS, TASK_REQUIRED, task_components


def import_object(path: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute."""
    module_name, _, attr = path.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Plugin:
    """A vfm plugin rooted at an importable package holding ``manifest.yaml``.

    Args:
        package: the plugin's import name, e.g. ``"vfm.plugins.retina"``.
        manifest_file: the manifest's file name inside that package.
    """

    package: str
    manifest_file: str = "manifest.yaml"
    overrides: tuple[tuple[str, str], ...] = ()
    _loaded: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_package(cls, package: str) -> Plugin:
        return cls(package=package)

    def with_components(self, **paths: str) -> Plugin:
        """A copy whose named components come from these import paths (e.g. a baseline model)."""
        merged = dict(self.overrides) | paths
        return Plugin(self.package, self.manifest_file, tuple(sorted(merged.items())))

    @cached_property
    def manifest(self) -> Manifest:
        source = f"{self.package}/{self.manifest_file}"
        try:
            text = resources.files(self.package).joinpath(self.manifest_file).read_text("utf-8")
        except (FileNotFoundError, ModuleNotFoundError) as err:
            raise VfmError("plugin manifest not found", where=source, fix="ship manifest.yaml as package data") from err
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise VfmError(f"manifest is not valid YAML: {err}".splitlines()[0], where=source) from None
        return parse_manifest(data, source=source)

    @property
    def name(self) -> str:
        return self.manifest.name

    def component_path(self, name: str) -> str:
        """The import path of a component: an override, else the manifest's, else the task default."""
        declared = dict(self.overrides).get(name) or getattr(self.manifest.components, name, None)
        if declared:
            return declared
        default = TASK_DEFAULTS.get(self.manifest.task, {}).get(name)
        if default is None:
            raise VfmError(
                f"plugin '{self.name}' has no '{name}' component and task '{self.manifest.task}' has no default for it",
                where=f"{self.package}/{self.manifest_file}",
                fix=f"declare components.{name}: 'package.module:attribute' in the manifest",
            )
        return default

    def component(self, name: str) -> Any:
        """Import (once) and return a component, with a clear error if it is broken."""
        if name not in self._loaded:
            path = self.component_path(name)
            try:
                self._loaded[name] = import_object(path)
            except Exception as err:
                raise VfmError(
                    f"plugin '{self.name}': component '{name}' ({path}) failed to import: {type(err).__name__}: {err}",
                    fix="install the plugin's dependencies (pip install 'vfm[train]') or fix the import path",
                ) from err
        return self._loaded[name]

    def check_components(self) -> list[str]:
        """Names of required components that cannot be resolved (without importing them)."""
        missing = []
        for name in (*REQUIRED_COMPONENTS, *TASK_REQUIRED.get(self.manifest.task, ())):
            try:
                self.component_path(name)
            except VfmError:
                missing.append(name)
        return missing

    def unused_components(self) -> list[str]:
        """Components the manifest declares that the platform never resolves for its task."""
        declared = {name for name, path in self.manifest.components.model_dump().items() if path}
        return sorted(declared - task_components(self.manifest.task))
