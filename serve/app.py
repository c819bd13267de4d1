"""The Gradio app: one tab per bundle, bound to 127.0.0.1 unless told otherwise.

Torch-free. Each plugin builds its own tab through its ``demo_tab`` component; a bad
input in one tab is an error message there and never stops the server.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ServerLimits:
    """What one client can ask of the server.

    Attributes:
        max_upload_mb: the largest file an upload may be (Gradio refuses larger ones with a message).
        queue_size: requests waiting beyond those running; more are turned away ("queue full").
        concurrency: requests running at once per event.
        auth: ``(user, password)`` pairs a login must match; None: no login (loopback only is the default).
    """

    max_upload_mb: float = 25.0
    queue_size: int = 64
    concurrency: int = 2
    auth: list[tuple[str, str]] | None = None


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that no program listens on now (for tests and benchmarks)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_auth_file(path: str | Path) -> list[tuple[str, str]]:
    """``user:password`` lines (blank lines and ``#`` comments skipped) as Gradio's ``auth`` pairs.

    Raises:
        VfmError: the file is missing, empty, or a line has no ``user:password``.
    """
    path = Path(path)
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise VfmError(f"cannot read the login file: {err.__class__.__name__}", where=str(path)) from None
    pairs = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, sep, password = line.strip().partition(":")
        if not sep or not user or not password:
            raise VfmError(
                f"line {number} of the login file is not user:password",
                where=str(path),
                fix="write one user:password per line",
            )
        pairs.append((user, password))
    if not pairs:
        raise VfmError("the login file holds no user:password line", where=str(path), fix="add one")
    return pairs


def launch(
    app: Any,
    predictors: Sequence[Predictor],
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    block: bool = True,
    limits: ServerLimits = ServerLimits(),
) -> Any:
    """Start the server. The bundles' ``examples/`` folders are the only extra paths it serves files
    from (the models, configs and checksums stay private); bound beyond loopback without a login, it
    warns on stderr."""
    if host not in LOOPBACK and limits.auth is None:
        print(
            f"warning: serving on {host}: anyone who can reach this machine can use the app; "
            "pass --auth-file FILE (user:password lines) to require a login",
            file=sys.stderr,
            flush=True,
        )
    allowed = [str((Path(p.bundle.path) / "examples").resolve()) for p in predictors]
    app.queue(default_concurrency_limit=limits.concurrency, max_size=limits.queue_size)
    try:
        return app.launch(
            server_name=host,
            server_port=port,
            prevent_thread_lock=not block,
            allowed_paths=allowed,
            max_file_size=int(limits.max_upload_mb * 2**20),  # bytes
            auth=limits.auth,
            show_error=False,  # gr.Error messages (the users' one-liners) show; other exceptions stay in the log
            quiet=not block,
        )
    except OSError as err:  # Gradio: "Cannot find empty port in range ..."; the OS: cannot bind the host
        raise VfmError(
            f"cannot serve on {host}:{port}: {(str(err).splitlines() or [type(err).__name__])[0]}",
            fix="pass another --port (one no other program uses), or a --host this machine has",
        ) from None


def serve_bundles(
    bundles: Sequence[str | Path],
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    block: bool = True,
    limits: ServerLimits = ServerLimits(),
    public_key: str | Path | None = None,
) -> Any:
    """Open every bundle (verified; signed by ``public_key`` when one is given), build the app and serve it."""
    predictors = [open_predictor(path, public_key) for path in bundles]
    app = build_app(predictors)
    print(f"serving {len(predictors)} bundle(s) on http://{host}:{port}", flush=True)
    launch(app, predictors, host=host, port=port, block=block, limits=limits)
    return app
