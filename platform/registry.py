"""Plugin discovery through the ``vfm.plugins`` entry-point group.

Built-in plugins register exactly like outside ones (``[project.entry-points."vfm.plugins"]``
in their ``pyproject.toml``). Discovery loads each entry point (a light module holding a
:class:`~vfm.platform.plugin.Plugin`), validates its manifest and its ``requires`` ranges,
and keeps going when one is broken: the broken one is reported with its distribution
name and the reason. Two plugins with the same name are both refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from vfm.platform.errors import VfmError
from vfm.platform.plugin import Plugin

ENTRY_POINT_GROUP = "vfm.plugins"


def vfm_version() -> str:
    """The installed version of vfm itself."""
    return metadata.version("vfm")


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin entry point that could not be used, and why."""

    name: str
    distribution: str
    entry_point: str
    reason: str


@dataclass
class Registry:
    """The outcome of one discovery: usable plugins by name, and broken ones."""

    plugins: dict[str, Plugin] = field(default_factory=dict)
    distributions: dict[str, str] = field(default_factory=dict)
    broken: list[BrokenPlugin] = field(default_factory=list)

    def get(self, name: str) -> Plugin:
        """The plugin called ``name``, or a VfmError saying why it is not usable."""
        if name in self.plugins:
            return self.plugins[name]
        for bad in self.broken:
            if bad.name == name:
                raise VfmError(
                    f"plugin '{name}' (distribution {bad.distribution}) is not usable: {bad.reason}",
                    fix="run 'vfm plugins list' for details; reinstall or upgrade the plugin",
                )
        known = ", ".join(sorted(self.plugins)) or "none"
        raise VfmError(
            f"unknown plugin '{name}' (installed: {known})",
            fix="check the spelling, or pip install the plugin's package",
        )


def _distribution_name(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else "<unknown distribution>"


def _requires_problem(plugin: Plugin) -> str | None:
    """Why the installed packages don't satisfy the manifest's ``requires``, or None."""
    for dist, spec in plugin.manifest.requires.items():
        try:
            installed = metadata.version(dist)
        except metadata.PackageNotFoundError:
            if dist == "vfm":
                return "vfm itself is not installed as a distribution"
            continue  # optional stacks (e.g. torch in a serve-only install) are checked on use
        if not SpecifierSet(spec, prereleases=True).contains(Version(installed), prereleases=True):
            return f"requires {dist}{spec} but {dist} {installed} is installed"
    return None


def _load(ep: metadata.EntryPoint) -> Plugin:
    obj = ep.load()
    if not isinstance(obj, Plugin):
        raise TypeError(f"entry point points to a {type(obj).__name__}, not a vfm Plugin")
    manifest = obj.manifest
    if manifest.name != ep.name:
        raise ValueError(f"entry point is named '{ep.name}' but the manifest says '{manifest.name}'")
    return obj


def discover() -> Registry:
    """Find, load and check every installed plugin. Never raises for one bad plugin."""
    registry = Registry()
    seen: set[tuple[str, str, str]] = set()
    candidates: dict[str, list[tuple[str, metadata.EntryPoint]]] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = _distribution_name(ep)
        key = (ep.name, ep.value, dist)
        if key in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(key)
        candidates.setdefault(ep.name, []).append((dist, ep))

    for name, entries in sorted(candidates.items()):
        if len(entries) > 1:
            dists = " and ".join(f"{d} ({ep.value})" for d, ep in entries)
            for dist, ep in entries:
                registry.broken.append(
                    BrokenPlugin(name, dist, ep.value, f"duplicate plugin name '{name}': provided by {dists}")
                )
            continue
        dist, ep = entries[0]
        try:
            plugin = _load(ep)
            problem = _requires_problem(plugin)
            missing = plugin.check_components()
            if missing:
                problem = f"no component for: {', '.join(missing)}"
        except VfmError as err:
            problem = err.what if not err.where else f"{err.what} [{err.where}]"
        except Exception as err:  # a broken third-party plugin must not break the others
            problem = f"{type(err).__name__}: {err}"
        if problem:
            registry.broken.append(BrokenPlugin(name, dist, ep.value, problem))
        else:
            registry.plugins[name] = plugin
            registry.distributions[name] = dist
    return registry


def get_plugin(name: str) -> Plugin:
    """Discover plugins and return the one called ``name`` (or a clear VfmError)."""
    return discover().get(name)
