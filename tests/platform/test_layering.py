"""The import layers of docs/architecture.md, read from the source (module-level and lazy imports alike):
no core package imports a plugin, ``serve`` and torch-free ``platform`` import no torch, and ``platform``
reaches ``serve`` only inside the verbs that serve."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE = ("platform", "pretrain", "finetune", "serve")
TORCH = ("torch", "lightning", "timm", "transformers", "monai", "peft")
TORCH_SIDE = {"gguf_conversion.py"}
"""Platform modules that are torch's side by design (besides ``platform/training``): GGUF conversion
needs ``transformers``; only a pull of a packaged GGUF imports it."""


def _imports(path: Path, top_level_only: bool = False) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``path`` (only the module's own statements when asked)."""
    tree = ast.parse(path.read_text("utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _sources(*folders: str) -> list[Path]:
    return [p for folder in folders for p in sorted((REPO / folder).rglob("*.py")) if "templates" not in p.parts]


@pytest.mark.parametrize("path", _sources(*CORE), ids=lambda p: str(p.relative_to(REPO)))
def test_no_core_module_imports_a_plugin(path):
    assert [(line, m) for line, m in _imports(path) if m.startswith("vfm.plugins")] == []


@pytest.mark.parametrize(
    "path",
    [p for p in _sources("serve", "platform") if "training" not in p.parts and p.name not in TORCH_SIDE],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_serve_and_platform_are_torch_free(path):
    assert [(line, m) for line, m in _imports(path) if m.split(".")[0] in TORCH] == []


@pytest.mark.parametrize("path", _sources("platform"), ids=lambda p: str(p.relative_to(REPO)))
def test_platform_does_not_import_serve_at_module_level(path):
    assert [(line, m) for line, m in _imports(path, top_level_only=True) if m.startswith("vfm.serve")] == []
