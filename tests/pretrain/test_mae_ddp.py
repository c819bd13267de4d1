"""Two DDP processes with batch B train the same MAE as one process with batch 2B.

Why they agree: both see the same global batch at every step (``EpochSampler`` cuts each
epoch's seeded permutation into global batches and rank r takes the r-th slice), each image
gets the same masking noise and augmentation (drawn from the seed and the image's visit key,
not from a per-process RNG), the lr is scaled by the same global batch, and DDP's mean of the
two ranks' gradients is the gradient of the mean loss over the global batch (every sample
masks the same number of patches). What differs is float rounding: the order in which the
gradient sums are formed, and the GEMM blocking at a different batch size. Weights agree to
~1e-7 after 6 steps, except the attention key biases: softmax ignores a shift shared by all
keys, so their exact gradient is zero and the computed one is rounding noise, which AdamW
scales up to +-lr per step. They are left out of the comparison.

The DDP run is this file run as a script; Lightning starts the second rank by running it again.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vfm.pretrain.mae import MaeConfig, MaskedAutoencoderViT
from vfm.pretrain.mae_training import PretrainSettings, pretrain_mae

pytestmark = pytest.mark.slow

STEPS, N_IMAGES, SEED = 6, 24, 5  # 3 global batches of 8 per epoch: the run crosses an epoch
CFG = MaeConfig.preset(
    "tiny", img_size=32, embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2
)


def run(out_dir: Path, devices: int, batch_size: int) -> dict:
    images = np.random.default_rng(1).standard_normal((N_IMAGES, 3, 32, 32)).astype(np.float32)
    settings = PretrainSettings(
        max_steps=STEPS,
        batch_size=batch_size,
        base_lr=0.1,
        warmup_steps=2,
        precision="32",
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        augment=True,
        figure_every_n_epochs=0,
        seed=SEED,
    )
    return pretrain_mae(images, CFG, settings, out_dir, progress=False)


def without_key_biases(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weights with the key third of every ``attn.qkv.bias`` removed."""
    out = dict(weights)
    for name in (k for k in weights if k.endswith("attn.qkv.bias")):
        query, _, value = weights[name].chunk(3)
        out[name] = torch.cat([query, value])
    return out


def losses(out_dir: Path) -> list[float]:
    with open(out_dir / "logs" / "version_0" / "metrics.csv", newline="") as handle:
        return [float(row["train/loss"]) for row in csv.DictReader(handle) if row["train/loss"]]


def test_two_processes_equal_one_with_twice_the_batch(tmp_path):
    ddp_dir, single_dir = tmp_path / "ddp", tmp_path / "single"
    done = subprocess.run([sys.executable, __file__, str(ddp_dir)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MEMBER: 2/2" in done.stderr  # Lightning started the second rank
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each DDP rank
    try:
        assert run(single_dir, devices=1, batch_size=8)["steps"] == STEPS
    finally:
        torch.set_num_threads(threads)

    ddp_loss, single_loss = losses(ddp_dir), losses(single_dir)  # DDP logs the mean over both ranks
    assert len(ddp_loss) == len(single_loss) == STEPS
    np.testing.assert_allclose(ddp_loss, single_loss, rtol=1e-5, atol=0)
    L.seed_everything(SEED, verbose=False)
    initial = without_key_biases(MaskedAutoencoderViT(CFG).state_dict())  # what pretrain_mae starts from
    ddp_w = without_key_biases(load_file(ddp_dir / "mae.safetensors"))
    single_w = without_key_biases(load_file(single_dir / "mae.safetensors"))
    assert ddp_w.keys() == single_w.keys() == initial.keys()
    moved = max((single_w[k] - initial[k]).abs().max().item() for k in initial)
    apart = max((single_w[k] - ddp_w[k]).abs().max().item() for k in initial)
    assert moved > 1e-3 and apart < 1e-4 * moved, (moved, apart)


if __name__ == "__main__":
    torch.set_num_threads(1)
    run(Path(sys.argv[1]), devices=2, batch_size=4)
