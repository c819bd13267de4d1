"""Packaging: the `vfm` namespace, no stdlib shadowing, a complete wheel."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

FOLDERS = {
    "platform": "vfm/platform",
    "pretrain": "vfm/pretrain",
    "finetune": "vfm/finetune",
    "serve": "vfm/serve",
    "plugins": "vfm/plugins",
}


def _modules() -> list[str]:
    names = []
    for folder, prefix in FOLDERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO / folder).with_suffix("")
            names.append(".".join([*prefix.split("/"), *rel.parts]).removesuffix(".__init__"))
    return names


def test_root_folders_do_not_shadow_the_standard_library():
    for folder in FOLDERS:
        assert not (REPO / folder / "__init__.py").exists(), f"{folder}/__init__.py would shadow '{folder}'"
    out = subprocess.run(
        [sys.executable, "-c", "import platform; print(platform.system())"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "Linux"


def test_every_module_imports():
    modules = _modules()
    assert "vfm.platform.cli" in modules and "vfm.plugins.retina" in modules
    code = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)\nprint('ok')"
    out = subprocess.run([sys.executable, "-c", code, *modules], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.slow
def test_wheel_contains_every_module_and_the_entry_points(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(tmp_path.glob("vfm-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [
        m
        for m in _modules()
        if f"{m.replace('.', '/')}.py" not in names and f"{m.replace('.', '/')}/__init__.py" not in names
    ]
    assert not missing, f"modules missing from the wheel: {missing}"
    assert "vfm/plugins/retina/manifest.yaml" in names
    templates = [n for n in names if n.startswith("vfm/platform/templates/")]
    assert templates, "plugin templates missing from the wheel"
    entry_points = next(zipfile.ZipFile(wheel).read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert "vfm = vfm.platform.cli:main" in entry_points
    assert "[vfm.plugins]" in entry_points and "retina = vfm.plugins.retina:plugin" in entry_points
    assert not any(Path(n).parts[0] in FOLDERS for n in names), "a root folder leaked as a top-level package"
