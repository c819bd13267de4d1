"""``vfm demo``: build a small bundle for every installed plugin from its synthetic data
generator (cached by plugin version and manifest), then serve them all.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

from vfm.platform.bundle import load_bundle
from vfm.platform.errors import VfmError
from vfm.platform.registry import discover, vfm_version


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else ``$VFM_CACHE_DIR``, else ``~/.cache/vfm``."""
    return Path(cache_dir or os.environ.get("VFM_CACHE_DIR") or Path.home() / ".cache" / "vfm")


def demo_key(recipe_json: str) -> str:
    """Cache key: changes whenever the plugin's manifest, the overrides or vfm's version change."""
    return hashlib.sha256(f"{vfm_version()}\n{recipe_json}".encode()).hexdigest()[:12]


def build_demo_bundles(
    names: list[str] | None = None,
    *,
    cache_dir: str | Path | None = None,
    rebuild: bool = False,
    config: dict | None = None,
) -> dict[str, Path]:
    """Build (or reuse) one demo bundle per plugin; returns plugin name -> bundle path.

    Args:
        names: plugins to build (default: every usable installed plugin).
        cache_dir: see :func:`cache_root`.
        rebuild: ignore cached bundles.
        config: config overrides applied to every plugin's demo build (part of the cache key).

    A broken plugin is reported and skipped; naming an unknown or broken plugin
    explicitly is an error.
    """
    registry = discover()
    for bad in registry.broken:
        print(f"vfm demo: skipping broken plugin '{bad.name}' ({bad.distribution}): {bad.reason}", file=sys.stderr)
    names = names or sorted(registry.plugins)
    if not names:
        raise VfmError("no usable plugins are installed", fix="pip install vfm (built-in plugins) or a plugin package")
    plugins = [registry.get(name) for name in names]
    bundles: dict[str, Path] = {}
    for step, plugin in enumerate(plugins, start=1):
        recipe = json.dumps(
            {"manifest": plugin.manifest.model_dump(mode="json"), "config": config or {}}, sort_keys=True
        )
        work = cache_root(cache_dir) / "demo" / f"{plugin.name}-{plugin.manifest.version}-{demo_key(recipe)}"
        bundle = work / "bundle"
        if bundle.exists() and not rebuild:
            try:
                load_bundle(bundle)
                print(f"[{step}/{len(plugins)}] {plugin.name}: cached bundle {bundle}", file=sys.stderr)
                bundles[plugin.name] = bundle
                continue
            except VfmError as err:
                print(
                    f"[{step}/{len(plugins)}] {plugin.name}: cached bundle unusable ({err}); rebuilding",
                    file=sys.stderr,
                )
        if importlib.util.find_spec("torch") is None:
            raise VfmError(
                f"building the {plugin.name} demo bundle needs the training install (torch); this install serves only",
                fix="pip install 'vfm[train]', or serve bundles you already have with 'vfm serve BUNDLE'",
            )
        print(
            f"[{step}/{len(plugins)}] {plugin.name}: building the demo bundle from synthetic data in {work} "
            "(first run only; interrupted builds resume)",
            file=sys.stderr,
            flush=True,
        )
        started = time.perf_counter()
        pipeline = plugin.component("pipeline")(plugin)
        bundles[plugin.name] = pipeline.build_demo_bundle(work, config=config, progress=True)
        print(
            f"[{step}/{len(plugins)}] {plugin.name}: bundle ready in {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    return bundles
