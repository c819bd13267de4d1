"""A serve-only install (`pip install '.[serve]'`, no torch) loads a bundle, predicts and builds the app."""

import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


def test_serve_extra_alone_predicts_and_builds_the_app(retina_run, tmp_path):
    env_dir = tmp_path / "serve-env"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=120)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"{REPO}[serve]"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    assert subprocess.run([str(python), "-c", "import torch"], capture_output=True).returncode != 0, (
        "torch must not be installed by the serve extra"
    )

    bundle = retina_run["bundle"]
    example = sorted((bundle / "examples").iterdir())[0]
    predict = subprocess.run(
        [
            str(env_dir / "bin" / "vfm"),
            "predict",
            str(bundle),
            str(example),
            "--explain-dir",
            str(tmp_path / "explain"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert predict.returncode == 0, predict.stderr[-3000:]
    assert '"label"' in predict.stdout and (tmp_path / "explain").is_dir()

    app = subprocess.run(
        [
            str(python),
            "-c",
            (
                "from vfm.serve.app import build_app; from vfm.serve.runtime import open_predictor; "
                f"build_app([open_predictor({str(bundle)!r})]); print('app ok')"
            ),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert app.returncode == 0 and "app ok" in app.stdout, app.stderr[-3000:]

    demo = subprocess.run(  # nothing cached, nothing to train with: one line, not a missing-module trace
        [
            str(env_dir / "bin" / "vfm"),
            "demo",
            "--build-only",
            "--plugins",
            "retina",
            "--cache-dir",
            str(tmp_path / "c"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 2 and "vfm[train]" in demo.stderr and "internal error" not in demo.stderr, demo.stderr
