"""``vfm plugins new`` writes a package that installs, is discovered and passes its own tests;
outside plugins that are broken (import error, invalid manifest, duplicate name) are
reported with their distribution and reason, and never break the others.

Installs go to a ``--target`` folder under ``tmp_path`` and are seen through ``PYTHONPATH``
in subprocesses, so the test never touches the environment it runs in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from vfm.platform.errors import VfmError
from vfm.platform.manifest import parse_manifest
from vfm.platform.scaffold import create_plugin

NAME = "scaffold_demo"
DIST = "vfm-plugin-scaffold-demo"
PACKAGE = "vfm_plugin_scaffold_demo"

_PRINT_REGISTRY = """
import json
from vfm.platform.registry import discover

registry = discover()
print(json.dumps({
    "plugins": {name: {"distribution": registry.distributions[name], "manifest_name": plugin.manifest.name,
                       "package": plugin.package} for name, plugin in registry.plugins.items()},
    "broken": [{"name": b.name, "distribution": b.distribution, "entry_point": b.entry_point, "reason": b.reason}
               for b in registry.broken],
}))
"""


def _python(args: list[str], *, sites: list[Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run this interpreter with only ``sites`` added to its path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(site) for site in sites)}
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def _registry(sites: list[Path], cwd: Path) -> dict:
    """``discover()`` in a fresh interpreter that also sees ``sites``."""
    proc = _python(["-c", _PRINT_REGISTRY], sites=sites, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _broken(registry: dict) -> dict[str, list[dict]]:
    by_name: dict[str, list[dict]] = {}
    for entry in registry["broken"]:
        by_name.setdefault(entry["name"], []).append(entry)
    return by_name


def _write_dist(site: Path, dist: str, entry_points: dict[str, str], files: dict[str, str]) -> None:
    """A minimal installed distribution, written by hand: metadata, entry points, modules."""
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[vfm.plugins]\n" + "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    )
    for relative, text in files.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_text(text)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A scaffolded plugin, pip-installed into a private ``--target`` folder."""
    root = tmp_path_factory.mktemp("scaffold")
    package = create_plugin(NAME, root / "src", domain="testing")
    site = root / "site"
    pip = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--disable-pip-version-check",
        "--target",
        str(site),
        str(package),
    ]
    proc = subprocess.run(pip, cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return SimpleNamespace(root=root, package=package, site=site)


def test_create_plugin_writes_the_documented_tree(tmp_path: Path):
    package = create_plugin("my_domain", tmp_path, domain="dermatology")

    assert package == tmp_path / "vfm-plugin-my-domain"
    files = sorted(str(p.relative_to(package)) for p in package.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "pyproject.toml",
        "src/vfm_plugin_my_domain/__init__.py",
        "src/vfm_plugin_my_domain/manifest.yaml",
        "src/vfm_plugin_my_domain/synthetic.py",
        "tests/test_plugin.py",
    ]
    project = tomllib.loads((package / "pyproject.toml").read_text())
    assert project["project"]["name"] == "vfm-plugin-my-domain"
    assert "vfm>=0.1,<0.2" in project["project"]["dependencies"]
    assert project["project"]["entry-points"]["vfm.plugins"] == {"my_domain": "vfm_plugin_my_domain:plugin"}
    assert project["tool"]["setuptools"]["package-data"] == {"vfm_plugin_my_domain": ["manifest.yaml"]}
    manifest_file = package / "src/vfm_plugin_my_domain/manifest.yaml"
    manifest = parse_manifest(yaml.safe_load(manifest_file.read_text()), source=str(manifest_file))
    assert (manifest.name, manifest.domain, manifest.task) == ("my_domain", "dermatology", "image-classification")
    assert manifest.labels == ["circle", "square", "triangle"]
    assert manifest.components.generator == "vfm_plugin_my_domain.synthetic:generate"
    readme = (package / "README.md").read_text()
    assert "vfm serve bundles/my_domain" in readme and "vfm plugins validate my_domain" in readme


@pytest.mark.parametrize("name", ["x", "Retina", "1st", "has-dash", "has space", "a" * 41, ""])
def test_create_plugin_refuses_invalid_names(tmp_path: Path, name: str):
    with pytest.raises(VfmError, match="invalid plugin name"):
        create_plugin(name, tmp_path)
    assert not any(tmp_path.iterdir())


def test_create_plugin_refuses_a_non_empty_target_unless_forced(tmp_path: Path):
    target = tmp_path / "vfm-plugin-taken"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")

    with pytest.raises(VfmError, match="not empty.*--force"):
        create_plugin("taken", tmp_path)
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]

    assert create_plugin("taken", tmp_path, force=True) == target
    assert (target / "src/vfm_plugin_taken/manifest.yaml").is_file()
    assert (target / "notes.txt").read_text() == "keep me"


def test_installed_plugin_is_discovered_through_its_entry_point(installed: SimpleNamespace):
    registry = _registry([installed.site], installed.root)

    assert registry["plugins"][NAME] == {"distribution": DIST, "manifest_name": NAME, "package": PACKAGE}
    assert "retina" in registry["plugins"]
    assert NAME not in _broken(registry)


def test_installed_plugin_passes_its_own_tests(installed: SimpleNamespace):
    proc = _python(
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], sites=[installed.site], cwd=installed.package
    )

    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout


def test_broken_outside_plugins_are_reported_and_the_others_still_load(installed: SimpleNamespace, tmp_path: Path):
    site = tmp_path / "broken-site"
    _write_dist(
        site,
        "vfm-plugin-boom",
        {"boom": "vfm_boom_plugin:plugin"},
        {"vfm_boom_plugin.py": "raise RuntimeError('boom on import')\n"},
    )
    plugin_module = "from vfm.platform.plugin import Plugin\n\nplugin = Plugin.from_package(__name__)\n"
    _write_dist(
        site,
        "vfm-plugin-bad-manifest",
        {"bad_manifest": "vfm_bad_manifest:plugin"},
        {
            "vfm_bad_manifest/__init__.py": plugin_module,
            "vfm_bad_manifest/manifest.yaml": "schema_version: 1\nname: bad_manifest\nmodality: sound\n",
        },
    )

    registry = _registry([installed.site, site], tmp_path)
    broken = _broken(registry)

    [boom] = broken["boom"]
    assert boom["distribution"] == "vfm-plugin-boom"
    assert boom["reason"] == "RuntimeError: boom on import"
    [bad] = broken["bad_manifest"]
    assert bad["distribution"] == "vfm-plugin-bad-manifest"
    assert bad["reason"].startswith("invalid manifest:")
    assert "modality" in bad["reason"] and "version" in bad["reason"]
    assert {"retina", NAME} <= set(registry["plugins"])


def test_a_duplicate_name_makes_both_plugins_broken(tmp_path: Path):
    site = tmp_path / "dup-site"
    _write_dist(
        site,
        "vfm-plugin-retina-clone",
        {"retina": "vfm_retina_clone:plugin"},
        {"vfm_retina_clone.py": "from vfm.plugins.retina import plugin\n"},
    )

    registry = _registry([site], tmp_path)

    assert "retina" not in registry["plugins"]
    entries = _broken(registry)["retina"]
    assert sorted(entry["distribution"] for entry in entries) == ["vfm", "vfm-plugin-retina-clone"]
    for entry in entries:
        assert entry["reason"].startswith("duplicate plugin name 'retina'")
        assert "vfm (vfm.plugins.retina:plugin)" in entry["reason"]
        assert "vfm-plugin-retina-clone (vfm_retina_clone:plugin)" in entry["reason"]


@pytest.mark.slow
def test_installed_plugin_passes_vfm_plugins_validate(installed: SimpleNamespace):
    """The generated plugin goes through every validate step: schema, imports, fake-input forward,
    export + ONNX parity, and a demo smoke call on a real local Gradio server."""
    proc = _python(["-m", "vfm.platform.cli", "plugins", "validate", NAME], sites=[installed.site], cwd=installed.root)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["passed"], proc.stdout[-3000:] + proc.stderr[-3000:]
    assert [step["step"] for step in report["steps"]] == ["schema", "imports", "forward", "export_parity", "demo"]
    assert all(out["max_abs_err"] <= 1e-4 for out in report["steps"][3]["detail"]["parity"].values())


def test_validate_names_the_failing_step(tmp_path: Path):
    """A plugin whose generator cannot be imported fails at 'imports', and the CLI exits non-zero."""
    site = tmp_path / "site"
    manifest = yaml.safe_load((Path(__file__).parents[2] / "plugins/retina/manifest.yaml").read_text())
    manifest["name"] = "halfbuilt"
    manifest["components"] = {"generator": "halfbuilt_pkg.synthetic:generate"}
    _write_dist(
        site,
        "halfbuilt-dist",
        {"halfbuilt": "halfbuilt_pkg:plugin"},
        {
            "halfbuilt_pkg/__init__.py": "from vfm.platform.plugin import Plugin\nplugin = Plugin.from_package(__name__)\n",
            "halfbuilt_pkg/manifest.yaml": yaml.safe_dump(manifest),
            "halfbuilt_pkg/synthetic.py": "import not_installed_anywhere\n",
        },
    )
    proc = _python(["-m", "vfm.platform.cli", "plugins", "validate", "halfbuilt"], sites=[site], cwd=tmp_path)
    report = json.loads(proc.stdout)
    assert proc.returncode == 2 and not report["passed"]
    assert report["steps"][-1]["step"] == "imports" and "not_installed_anywhere" in report["steps"][-1]["error"]
