"""Step time of vfm's own MAE trainer (``pretrain_mae``, Lightning), eager vs ``compile="inductor"``.

``benchmarks/mae_throughput.py`` times the bare model; this times what ``vfm pretrain`` runs:
Lightning, the seeded per-image masking noise, the host-to-device copy of each batch, logging and
the lr schedule. It records the time at the start of every training batch (after a CUDA
synchronise) and reports the median step after the first five, so compilation is not counted.
Random images; nothing is written outside ``OUT``.

    python benchmarks/mae_trainer_compile.py --preset base --size 224 --batch 256 --steps 25 --out /tmp/tc
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from vfm.pretrain import mae_training
from vfm.pretrain.mae import MaeConfig
from vfm.pretrain.mae_training import PretrainSettings, pretrain_mae


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="base", help="MAE preset: tiny, small, base, large")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=25, help="training steps per run (the first 5 are not timed)")
    parser.add_argument("--precision", default="bf16-mixed", choices=["32", "bf16-mixed"])
    parser.add_argument("--out", required=True, help="scratch folder for the two runs")
    args = parser.parse_args()
    if args.steps < 8:
        parser.error("--steps must be at least 8: the first 5 are compilation and warmup")

    stamps: list[float] = []

    def on_train_batch_start(module, batch, batch_idx):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    mae_training.MaeModule.on_train_batch_start = on_train_batch_start
    images = np.random.default_rng(0).standard_normal((args.batch * 2, 3, args.size, args.size)).astype(np.float32)
    cfg = MaeConfig.preset(args.preset, img_size=args.size)
    results = {}
    for backend in (None, "inductor"):
        name = backend or "eager"
        stamps.clear()
        settings = PretrainSettings(
            max_steps=args.steps,
            batch_size=args.batch,
            precision=args.precision,
            devices=1,
            figure_every_n_epochs=0,
            checkpoint_every_n_steps=10_000,
            compile=backend,
        )
        pretrain_mae(images, cfg, settings, f"{args.out}/{name}", progress=False)
        step = float(np.median(np.diff(stamps)[5:]))
        results[name] = {
            "median_step_ms": round(step * 1e3, 1),
            "images_per_s": round(args.batch / step),
            "steps_timed": len(stamps) - 6,
        }
        print(name, results[name], flush=True)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(json.dumps({"args": vars(args), "device": device, "torch": torch.__version__, "results": results}))


if __name__ == "__main__":
    main()
