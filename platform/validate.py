"""``vfm plugins validate``: schema -> imports -> fake-input forward -> export + ONNX parity -> demo smoke.

Each step is recorded with its outcome; the first failing step stops the run, and the
report says which step failed and why.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vfm.platform.errors import VfmError
from vfm.platform.plugin import Plugin
from vfm.platform.tasks import task_components


def _demo_smoke(bundle: Path) -> dict[str, Any]:
    """Serve the bundle on a free local port and call its predict endpoint once."""
    from gradio_client import Client

    from vfm.serve.app import build_app, free_port, launch
    from vfm.serve.runtime import open_predictor

    predictor = open_predictor(bundle)
    app = build_app([predictor])
    port = free_port()
    launch(app, [predictor], port=port, block=False)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        result = client.predict(*predictor.smoke_inputs(), api_name=f"/{predictor.plugin.name}_predict")
        return {"endpoint": f"/{predictor.plugin.name}_predict", "outputs": len(result)}
    finally:
        app.close()


def validate_plugin(plugin: Plugin, *, progress: bool = False, work_dir: Path | None = None) -> dict[str, Any]:
    """Run every check on ``plugin``; returns ``{"plugin", "passed", "steps": [...]}``."""
    steps: list[dict[str, Any]] = []
    state: dict[str, Any] = {}

    def schema() -> dict[str, Any]:
        missing, unused = plugin.check_components(), plugin.unused_components()
        if missing:
            raise VfmError(f"components cannot be resolved: {', '.join(missing)}")
        if unused:
            raise VfmError(
                f"components declared but never used by task '{plugin.manifest.task}': {', '.join(unused)}",
                fix="remove them from the manifest's components",
            )
        return {"schema_version": plugin.manifest.schema_version, "task": plugin.manifest.task}

    def imports() -> dict[str, Any]:
        declared = {name for name, path in plugin.manifest.components.model_dump().items() if path}
        names = sorted(declared | task_components(plugin.manifest.task))
        return {name: plugin.component_path(name) for name in names if plugin.component(name) is not None}

    def forward() -> dict[str, Any]:
        state["pipeline"] = plugin.component("pipeline")(plugin)
        return state["pipeline"].check_forward()

    def export() -> dict[str, Any]:
        pipeline = state["pipeline"]
        bundle = pipeline.build_demo_bundle(work / "build", config=pipeline.smoke_config(), progress=progress)
        state["bundle"] = bundle
        report = json.loads((bundle / "parity.json").read_text("utf-8"))
        if not report["passed"]:
            raise VfmError(f"ONNX parity failed: {report['outputs']}")
        return {"bundle": str(bundle), "parity": report["outputs"]}

    def demo() -> dict[str, Any]:
        return _demo_smoke(state["bundle"])

    checks: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("schema", schema),
        ("imports", imports),
        ("forward", forward),
        ("export_parity", export),
        ("demo", demo),
    ]
    with tempfile.TemporaryDirectory(prefix="vfm-validate-") as tmp:
        work = Path(work_dir or tmp)
        for name, check in checks:
            started = time.perf_counter()
            try:
                detail = check()
                steps.append(
                    {"step": name, "ok": True, "seconds": round(time.perf_counter() - started, 2), "detail": detail}
                )
            except Exception as err:  # the report must name the failing step, whatever broke
                reason = str(err) if isinstance(err, VfmError) else f"{type(err).__name__}: {err}"
                steps.append(
                    {"step": name, "ok": False, "seconds": round(time.perf_counter() - started, 2), "error": reason}
                )
                break
    passed = len(steps) == len(checks) and all(s["ok"] for s in steps)
    return {"plugin": plugin.name, "passed": passed, "steps": steps}
