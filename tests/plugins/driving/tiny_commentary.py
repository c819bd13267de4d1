"""Test helpers for the commentary model: procedural clips with template text, and tiny models.

The clips are drawn, not simulated: a grey road with lane marks and a red lead car whose size
and position tell the gap; the gap shrinks over the clip when the ego car is closing in. The
commentary and the answers follow from the drawn scene, so a model can learn them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from vfm.plugins.driving.model import CommentaryConfig, CommentaryModel, decoder_config
from vfm.plugins.driving.records import DrivingSample, QAPair
from vfm.plugins.driving.tokenizer import DrivingTokenizer, sample_texts, train_tokenizer
from vfm.plugins.driving.training import CommentaryTrainSettings
from vfm.pretrain.mae import MaeConfig

SCENES = (
    ("accelerate", "free_road", "Accelerating because the road ahead is free."),
    ("slow_down", "slower_lead_vehicle", "Slowing down because the lead vehicle is {gap} m ahead and slower."),
    ("keep_speed", "target_speed_reached", "Keeping speed because the target speed of {speed} m/s is reached."),
)


@contextmanager
def one_thread() -> Iterator[None]:
    """torch and onnxruntime (``VFM_NUM_THREADS``) on one thread: tiny models gain nothing from
    more, and on a shared 2-core machine a second thread waiting for a busy core makes a step
    several times slower."""
    import torch

    threads, env = torch.get_num_threads(), os.environ.get("VFM_NUM_THREADS")
    torch.set_num_threads(1)
    os.environ["VFM_NUM_THREADS"] = "1"
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if env is None:
            os.environ.pop("VFM_NUM_THREADS", None)
        else:
            os.environ["VFM_NUM_THREADS"] = env


def draw_clip(k: int, size: int, gap: float, closing: bool, rng: np.random.Generator) -> np.ndarray:
    """uint8 [k, size, size, 3]: road, lane marks, and a lead car ``gap`` m ahead (none if gap <= 0)."""
    clip = np.zeros((k, size, size, 3), np.uint8)
    clip[..., :] = (70, 70, 70)
    clip[:, :, size // 2 - 1 : size // 2 + 1] = (230, 230, 230)
    for t in range(k):
        clip[t] += rng.integers(0, 12, (size, size, 3), dtype=np.uint8)
        if gap > 0:
            g = gap + 2.0 * (k - 1 - t) if closing else gap  # earlier frames: farther
            row = int(np.clip(size * (1 - g / 60.0), 2, size - 6))
            half = max(2, int(size * 6 / (g + 8)))
            clip[t, row : row + 4, size // 2 + 2 : size // 2 + 2 + half] = (200, 30, 30)
    return clip


def make_samples(n: int = 12, k: int = 3, size: int = 32, seed: int = 0) -> list[DrivingSample]:
    """``n`` samples cycling through :data:`SCENES`, with two QA pairs each; every fifth has no
    speed and every seventh no driver settings."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        action, cause, template = SCENES[i % len(SCENES)]
        gap = int(rng.integers(10, 50)) if action == "slow_down" else 0
        speed = float(rng.integers(10, 30))
        commentary = template.format(gap=gap, speed=int(speed))
        qa = [QAPair("What is the car doing?", action.replace("_", " ")), QAPair("Why?", cause.replace("_", " "))]
        trend = {"slow_down": -1.0, "accelerate": 1.0}.get(action, 0.0)  # m/s per frame
        known = i % 5 != 0  # every fifth sample has no speed at all
        set_speed = speed + 5.0 if action == "accelerate" else speed
        settings = dict(set_speed=set_speed, set_time_gap=1.5) if i % 7 else {}
        samples.append(
            DrivingSample(
                id=f"tiny-{i}",
                scenario="highway",
                frames=draw_clip(k, size, gap, action == "slow_down", rng),
                ego_speed=speed if known else float("nan"),
                action=action,
                cause=cause,
                commentary=commentary,
                qa=qa,
                seed=seed,
                step=i,
                frame_speeds=[speed - trend * (k - 1 - t) for t in range(k)] if known else None,
                **settings,
            )
        )
    return samples


def tiny_tokenizer(samples: list[DrivingSample]) -> DrivingTokenizer:
    return train_tokenizer(sample_texts(samples), vocab_size=300)


def tiny_model(
    tokenizer: DrivingTokenizer, k: int = 3, size: int = 32, patch_grid: int = 2, seed: int = 0
) -> CommentaryModel:
    """ViT 32 wide, 2 blocks, 4x4 patches of 8 px; GPT-2 64 wide, 2 layers."""
    import torch

    torch.manual_seed(seed)
    encoder = MaeConfig.preset("tiny", img_size=size, embed_dim=32, depth=2, num_heads=2).encoder_config()
    config = CommentaryConfig(
        encoder=encoder,
        decoder=decoder_config(tokenizer, "gpt2-tiny", n_positions=128),
        frames=k,
        patch_grid=patch_grid,
        max_question_tokens=12,
        max_new_tokens=40,
    )
    return CommentaryModel(config)


def tiny_settings(**overrides) -> CommentaryTrainSettings:
    """A tiny ViT (MAE "tiny" preset) and GPT-2, a few CPU steps."""
    base = dict(
        encoder="tiny",
        decoder="gpt2-tiny",
        vocab_size=300,
        max_question_tokens=12,
        max_new_tokens=40,
        max_steps=4,
        batch_size=8,
        lr=3e-3,
        warmup_steps=1,
        accelerator="cpu",
        devices=1,
        checkpoint_every_n_steps=2,
    )
    return CommentaryTrainSettings(**{**base, **overrides})


def quick_fit(
    model: CommentaryModel,
    tokenizer: DrivingTokenizer,
    samples: list[DrivingSample],
    steps: int = 30,
    batch_size: int = 8,
    lr: float = 3e-3,
) -> CommentaryModel:
    """A few plain AdamW steps on commentary and QA (no Lightning), so that greedy decoding says
    varied things instead of repeating one token; returns the model in eval mode."""
    import torch

    from vfm.plugins.driving.training import clip_array, collate, make_examples

    cfg = model.config
    examples, _ = make_examples(samples, tokenizer, ("commentary", "qa"), cfg.max_question_tokens, cfg.max_new_tokens)
    frames, speeds = map(torch.from_numpy, clip_array(samples))  # [N, k, H, W, 3], [N, k]
    settings = torch.from_numpy(np.stack([s.driver_settings() for s in samples]))  # [N, 2]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    order = np.random.default_rng(0).permutation(steps * batch_size) % len(examples)
    model.train()
    for step in range(steps):
        batch = collate(
            [examples[i] for i in order[step * batch_size : (step + 1) * batch_size]],
            frames,
            speeds,
            tokenizer.pad_id,
            settings,
        )
        optimizer.zero_grad()
        model(**batch).backward()
        optimizer.step()
    return model.eval()
