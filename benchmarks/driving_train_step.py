"""Seconds per training step of the driving commentary model, per encoder size, on this machine.

A step is what ``vfm finetune driving`` does per batch: forward (the ViT over every frame, the
decoder over prefix and text), backward and an AdamW update, on random clips of ``--frames``
frames of ``--size`` px and ``--tokens`` text tokens. Use it to size a run before starting it:
12,000 steps at the printed rate is the fine-tune's training time.

    python benchmarks/driving_train_step.py [--presets tiny small] [--precision bf16|fp32] [--threads 2]

Prints JSON: per preset the parameters (millions) and the median seconds per step after
``--warmup`` steps.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time

import torch

from vfm.plugins.driving.training import CommentaryTrainSettings, build_model

TEXT = "slowing down: the car ahead is 30 m away and closing, and the left lane is blocked."
"""Text the tokenizer is trained on (the timing does not depend on it)."""


def seconds_per_step(
    preset: str, frames: int, size: int, batch: int, tokens: int, precision: str, warmup: int, steps: int
) -> dict:
    """Median seconds per training step of the model with the ``preset`` encoder."""
    model, tokenizer = build_model(CommentaryTrainSettings(encoder=preset), frames, size, [TEXT] * 50)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    clip, speed = torch.rand(batch, frames, 3, size, size), torch.full((batch, frames), 20.0)  # [B, k, 3, S, S], [B, k]
    text = torch.randint(0, tokenizer.vocab_size, (batch, tokens))  # [B, T]
    times = []
    for _ in range(warmup + steps):
        started = time.perf_counter()
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
        with autocast:
            loss = model(clip, speed, text, text)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - started)
    return {
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "seconds_per_step": round(statistics.median(times[warmup:]), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"], help="MAE encoder presets")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--size", type=int, default=96, help="frame side in pixels")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=30, help="text tokens per example")
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = {
        "frames": args.frames,
        "size": args.size,
        "batch": args.batch,
        "precision": args.precision,
        "threads": args.threads,
    }
    for preset in args.presets:
        report[preset] = seconds_per_step(
            preset, args.frames, args.size, args.batch, args.tokens, args.precision, args.warmup, args.steps
        )
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
