"""``PretrainSettings.compile``: the compiled training step trains the same model as eager.

The test uses the ``aot_eager`` backend: dynamo captures the forward, AOTAutograd traces the
backward, and eager kernels run both, so the whole compile path is exercised without the minute
of C++ code generation that ``inductor`` needs on a CPU. The numbers must then match eager.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vfm.platform.errors import VfmError
from vfm.pretrain.mae import MaeConfig
from vfm.pretrain.mae_training import PretrainSettings, pretrain_mae

pytestmark = pytest.mark.slow

CFG = MaeConfig.preset(
    "tiny", img_size=32, embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2
)


def run(out_dir: Path, compile_backend: str | None) -> list[float]:
    """Pretrain 4 steps; the per-step training losses from the CSV log."""
    images = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    settings = PretrainSettings(
        max_steps=4,
        batch_size=4,
        warmup_steps=1,
        precision="32",
        accelerator="cpu",
        devices=1,
        figure_every_n_epochs=0,
        seed=1,
        compile=compile_backend,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pretrain_mae(images, CFG, settings, out_dir, progress=False)
    finally:
        torch.set_num_threads(threads)
    with open(next(out_dir.glob("logs/version_*/metrics.csv")), newline="") as handle:
        return [float(row["train/loss"]) for row in csv.DictReader(handle) if row.get("train/loss")]


def test_compiled_training_step_matches_eager_and_keeps_the_checkpoint_keys(tmp_path):
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    eager = run(tmp_path / "eager", None)
    assert not torch._dynamo.utils.counters["stats"]["unique_graphs"]
    compiled = run(tmp_path / "compiled", "aot_eager")
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # the step did go through dynamo
    assert len(eager) == len(compiled) == 4
    np.testing.assert_allclose(compiled, eager, rtol=1e-5)
    assert eager[0] != eager[-1]  # it trained
    weights = {name: load_file(tmp_path / name / "mae.safetensors") for name in ("eager", "compiled")}
    assert weights["eager"].keys() == weights["compiled"].keys()
    for key, value in weights["eager"].items():
        torch.testing.assert_close(weights["compiled"][key], value, rtol=1e-4, atol=1e-5)
    checkpoints = {
        name: torch.load(tmp_path / name / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for name in ("eager", "compiled")
    }
    assert checkpoints["eager"].keys() == checkpoints["compiled"].keys()


def test_unknown_backend_is_named_with_the_fix():
    with pytest.raises(VfmError, match="unknown torch.compile backend 'inductr'.*inductor"):
        PretrainSettings(compile="inductr")
