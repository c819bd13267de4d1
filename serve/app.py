"""The Gradio app: one tab per bundle, bound to 127.0.0.1 unless told otherwise.

Torch-free. Each plugin builds its own tab through its ``demo_tab`` component; a bad
input in one tab is an error message there and never stops the server.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vfm.platform.errors import VfmError
from vfm.serve.runtime import Predictor, open_predictor

# No telemetry or update checks: this must run on machines with no internet.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_app(predictors: Sequence[Predictor]) -> Any:
    """A ``gr.Blocks`` app with one tab per predictor."""
    import gradio as gr

    names = [p.plugin.name for p in predictors]
    for name in sorted({n for n in names if names.count(n) > 1}):
        raise VfmError(
            f"two bundles of plugin '{name}' given; each tab serves one plugin",
            fix="serve one bundle per plugin (run a second 'vfm serve' on another --port)",
        )
    with gr.Blocks(title="vfm — vertical foundation models") as app:
        gr.Markdown(
            "# vfm — vertical foundation models\nEach tab serves one exported bundle "
            "(ONNX, torch-free). Synthetic-data demo models are for trying the pipeline, not for decisions."
        )
        with gr.Tabs():
            for predictor in predictors:
                manifest = predictor.plugin.manifest
                with gr.Tab(manifest.demo.title, id=manifest.name):
                    predictor.plugin.component("demo_tab")(predictor)
    return app


def launch(
    app: Any, predictors: Sequence[Predictor], *, host: str = "127.0.0.1", port: int = 7860, block: bool = True
) -> Any:
    """Start the server; bundle folders are the only extra paths it may serve files from."""
    allowed = [str(Path(p.bundle.path).resolve()) for p in predictors]
    app.queue(default_concurrency_limit=2)
    return app.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=not block,
        allowed_paths=allowed,
        show_error=True,
        quiet=not block,
    )


def serve_bundles(
    bundles: Sequence[str | Path], *, host: str = "127.0.0.1", port: int = 7860, block: bool = True
) -> Any:
    """Open every bundle (verified), build the app and serve it."""
    predictors = [open_predictor(path) for path in bundles]
    app = build_app(predictors)
    print(f"serving {len(predictors)} bundle(s) on http://{host}:{port}", flush=True)
    launch(app, predictors, host=host, port=port, block=block)
    return app
