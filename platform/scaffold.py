"""``vfm plugins new``: write a complete, installable plugin package for a domain team.

The package is rendered from the template tree ``vfm/platform/templates/image_plugin/``
(shipped as package data). In that tree a file ending in ``.tmpl`` is rendered with
:class:`string.Template` (``$name``, ``$package``, ``$dist``, ``$domain``, ``$title``,
``$vfm_range``) and written without the suffix; any other file is copied as is; a path
segment ``__package__`` becomes the plugin's import package. Template files are never
named ``*.py`` so that pytest and code tools leave vfm's own tree alone.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import metadata, resources
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template

from packaging.version import Version

from vfm.platform.errors import VfmError
from vfm.platform.manifest import Manifest

TEMPLATE = "image_plugin"
_SUFFIX = ".tmpl"
_PACKAGE_SEGMENT = "__package__"
_DOMAIN = re.compile(r"^[A-Za-z0-9][\w .&+/()-]{0,63}$")


@cache
def _name_pattern() -> re.Pattern[str]:
    """The manifest's own pattern for plugin names (one source of truth)."""
    return re.compile(Manifest.model_json_schema()["properties"]["name"]["pattern"])


def _template_root(template: str = TEMPLATE) -> Traversable:
    """The template tree, from an editable install or from a wheel.

    ``vfm.platform`` is a namespace package (no ``__init__.py``). On Python 3.11,
    ``importlib.resources.files`` refuses a namespace path that holds an editable
    install's path-hook entry, so the real directories on ``__path__`` are used then.
    """
    try:
        return resources.files("vfm.platform") / "templates" / template
    except NotADirectoryError:
        import vfm.platform

        folders = [Path(entry) for entry in vfm.platform.__path__ if Path(entry).is_dir()]
        return (folders[0] if folders else Path("vfm", "platform")) / "templates" / template


def _vfm_range() -> str:
    """The vfm versions a new plugin supports: this minor series (this major from 1.0 on)."""
    try:
        version = Version(metadata.version("vfm"))
    except metadata.PackageNotFoundError:
        raise VfmError("vfm is not installed as a distribution", fix="pip install vfm (or pip install -e .)") from None
    if version.major == 0:
        return f">=0.{version.minor},<0.{version.minor + 1}"
    return f">={version.major}.{version.minor},<{version.major + 1}"


def _walk(node: Traversable, parts: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Traversable]]:
    """Every file under ``node``, with its path parts relative to ``node``, in sorted order."""
    files = []
    for child in sorted(node.iterdir(), key=lambda item: item.name):
        if child.name == "__pycache__":
            continue
        if child.is_dir():
            files += _walk(child, (*parts, child.name))
        else:
            files.append(((*parts, child.name), child))
    return files


def _render(template: str, values: dict[str, str]) -> dict[Path, bytes]:
    """The rendered tree: relative path -> file content."""
    root = _template_root(template)
    if not root.is_dir():
        raise VfmError(
            f"plugin template '{template}' is missing from the vfm installation",
            where=str(root),
            fix="reinstall vfm (the templates are package data)",
        )
    rendered: dict[Path, bytes] = {}
    for parts, source in _walk(root):
        relative = Path(*(values["package"] if part == _PACKAGE_SEGMENT else part for part in parts))
        if relative.name.endswith(_SUFFIX):
            text = Template(source.read_text("utf-8")).substitute(values)
            rendered[relative.with_name(relative.name[: -len(_SUFFIX)])] = text.encode("utf-8")
        else:
            rendered[relative] = source.read_bytes()
    return rendered


def create_plugin(name: str, path: str | Path, *, domain: str = "custom", force: bool = False) -> Path:
    """Write a working image-classification plugin package into ``path/vfm-plugin-<name>``.

    The package holds a ``pyproject.toml`` registering the ``vfm.plugins`` entry point,
    a README, the plugin (``src/vfm_plugin_<name>/``: ``__init__.py``, ``manifest.yaml``
    and a deterministic synthetic ``generate``) and its own tests. Once installed
    (``pip install -e``), it is discovered as ``<name>`` and passes its own tests.

    Args:
        name: the plugin name, as the manifest requires: ``^[a-z][a-z0-9_]{1,39}$``.
        path: the directory the package folder is created in.
        domain: the plugin's domain, e.g. ``"dermatology"`` (letters, digits, spaces, ``_.-&+/()``).
        force: write into an existing non-empty package folder, overwriting the template's
            files (other files there are left alone).

    Returns:
        The package folder, ``path/vfm-plugin-<name with _ as ->``.

    Raises:
        VfmError: an invalid name or domain, or a non-empty target without ``force``.
    """
    if not _name_pattern().match(name):
        raise VfmError(
            f"invalid plugin name {name!r}",
            fix="use 2-40 characters: a lower-case letter, then lower-case letters, digits or '_'",
        )
    if not _DOMAIN.match(domain):
        raise VfmError(
            f"invalid domain {domain!r}",
            fix="use up to 64 letters, digits, spaces or _.-&+/() starting with a letter or digit",
        )
    dist = "vfm-plugin-" + name.replace("_", "-")
    target = Path(path) / dist
    if target.exists() and not target.is_dir():
        raise VfmError("the target exists and is not a directory", where=str(target), fix="choose another --path")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise VfmError(
            "the target directory is not empty",
            where=str(target),
            fix="choose another --path, or pass --force to overwrite the template's files",
        )
    values = {
        "name": name,
        "package": f"vfm_plugin_{name}",
        "dist": dist,
        "domain": domain,
        "title": name.replace("_", " ").title(),
        "vfm_range": _vfm_range(),
    }
    rendered = _render(TEMPLATE, values)  # everything is rendered before anything is written
    for relative, content in rendered.items():
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(content)
    return target
