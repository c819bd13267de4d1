"""Commentary latency per clip (one decision step) of the driving model: ONNX with the key/value
cache, ONNX without it, and torch.

One decision step is the whole answer for one clip: preprocessing the uint8 frames, the vision
encoder on the k frames, and greedy decoding of the sentence. The model is the default shape of
:class:`~vfm.plugins.driving.training.CommentaryTrainSettings` (MAE "tiny" ViT, GPT-2 "mini"
decoder, 2x2 pooled patch tokens per frame), randomly initialised: latency does not depend on
the weights, only on how many tokens are generated, so each row states that count (a random
model rarely stops early; ``--new-tokens`` caps it). Each timing is the median (and 90th
percentile) of ``--repeats`` runs after one warm-up run.

    python benchmarks/driving_decode_speed.py --frames 4 --image-size 64 --new-tokens 24 --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vfm.plugins.driving.decode import CommentaryRuntime
from vfm.plugins.driving.export import export_commentary
from vfm.plugins.driving.training import CommentaryTrainSettings, build_model

TEXTS = [
    f"{verb} because the lead vehicle is {gap} m ahead and {speed} m/s slower."
    for verb in ("Slowing down", "Keeping speed", "Changing lane left", "Braking", "Yielding")
    for gap in range(5, 80, 7)
    for speed in range(1, 9)
]
TEXTS += ["Accelerating because the road ahead is free.", "What is the car doing?", "Why is it slowing down?"]


def timed(run, repeats: int) -> tuple[float, float, int]:
    """(median ms, p90 ms, tokens of the last run) of ``run() -> tokens`` after one warm-up call."""
    run()
    times, tokens = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        tokens = run()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.9 * len(times)))], tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=24, help="the most tokens generated per clip")
    parser.add_argument("--encoder", default="tiny", help="MAE preset of the ViT")
    parser.add_argument("--decoder", default="gpt2-mini", help="fresh GPT-2 preset")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    args = parser.parse_args()
    if args.threads:
        os.environ["VFM_NUM_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)

    settings = CommentaryTrainSettings(
        encoder=args.encoder, decoder=args.decoder, max_new_tokens=max(args.new_tokens, 40)
    )
    torch.manual_seed(0)
    model, tokenizer = build_model(settings, args.frames, args.image_size, TEXTS)
    model.eval()
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, (2, args.frames, args.image_size, args.image_size, 3), dtype=np.uint8)
    speeds = np.linspace(15.0, 17.0, args.frames, dtype=np.float32)[None].repeat(2, axis=0)  # [2, k] m/s per frame

    with tempfile.TemporaryDirectory() as folder:
        export_commentary(model, tokenizer, Path(folder), clips[:1], speeds[:1])
        runtime = CommentaryRuntime(folder)
        clip, speed = clips[1], speeds[1]  # [k, S, S, 3], [k]

        def onnx(use_cache: bool):
            return lambda: len(runtime.comment(clip, speed, use_cache=use_cache, max_new_tokens=args.new_tokens).tokens)

        @torch.no_grad()
        def torch_greedy() -> int:
            pixels = torch.from_numpy(clip[None]).permute(0, 1, 4, 2, 3).float() / 255.0
            return len(
                model.generate(
                    pixels, torch.from_numpy(speed[None]), tokenizer.prompt(None), tokenizer.eos_id, args.new_tokens
                )[0]
            )

        def encoder_only() -> int:
            runtime.backend.encode(runtime.preprocess(clip), speed[None], np.full((1, 2), np.nan, np.float32))
            return 0

        rows = [
            ("ONNX, KV cache", *timed(onnx(True), args.repeats)),
            ("ONNX, no cache", *timed(onnx(False), args.repeats)),
            ("torch (eager, KV cache)", *timed(torch_greedy, args.repeats)),
            ("ONNX vision encoder only", *timed(encoder_only, args.repeats)),
        ]

    cfg = model.config
    print(
        f"Driving commentary latency per clip: k={cfg.frames} frames {cfg.image_size}x{cfg.image_size}, "
        f"ViT {args.encoder} ({model.vit.embed_dim} wide, {len(model.vit.blocks)} blocks, {cfg.grid}x{cfg.grid} "
        f"patches), decoder {args.decoder} ({model.decoder.config.n_embd} wide, {model.decoder.config.n_layer} "
        f"layers), prefix {cfg.prefix_length} tokens, vocabulary {tokenizer.vocab_size}; "
        f"threads: {torch.get_num_threads()}, {platform.processor() or platform.machine()}, "
        f"median of {args.repeats} runs.\n"
    )
    print("| mode | ms per clip (median) | p90 ms | tokens generated | ms per token |")
    print("|---|---|---|---|---|")
    for name, median, p90, tokens in rows:
        per_token = f"{median / tokens:.2f}" if tokens else "-"
        print(f"| {name} | {median:.1f} | {p90:.1f} | {tokens} | {per_token} |")


if __name__ == "__main__":
    main()
