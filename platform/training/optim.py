"""AdamW with weight decay on matrices only, and one warmup-then-decay learning-rate schedule."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch


def warmup_decay(
    warmup_steps: int, total_steps: int, *, shape: str = "cosine", floor: float = 0.0
) -> Callable[[int], float]:
    """Multiplier of the peak lr at optimiser step ``s``: linear warmup over ``warmup_steps``, then a
    ``"cosine"`` (or ``"linear"``) decay from 1 to ``floor`` at ``total_steps``."""
    if shape not in ("cosine", "linear"):
        raise ValueError(f"unknown schedule shape {shape!r}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        decayed = 1.0 - progress if shape == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
        return floor + (1.0 - floor) * decayed

    return factor


def decay_groups(
    named_parameters: Iterable[tuple[str, torch.nn.Parameter]],
    *,
    weight_decay: float,
    lr: float,
    no_decay: Callable[[str], bool] = lambda name: False,
    lr_of: Callable[[str], float] | None = None,
) -> list[dict]:
    """The trainable parameters as AdamW groups: weight decay on matrices (``ndim >= 2``) unless
    ``no_decay(name)`` (position tables, tokens); none on biases and norms. ``lr_of(name)`` gives a
    parameter its own peak lr (e.g. a lower one for a pretrained encoder); default ``lr``. One group
    per (lr, decays): the decayed groups first, each kind in the order first met."""
    groups: dict[tuple[float, bool], list[torch.nn.Parameter]] = {}
    for name, param in named_parameters:
        if param.requires_grad:
            decays = param.ndim >= 2 and not no_decay(name)
            groups.setdefault((lr_of(name) if lr_of else lr, decays), []).append(param)
    return [
        {"params": params, "lr": group_lr, "weight_decay": weight_decay if decays else 0.0}
        for (group_lr, decays), params in sorted(groups.items(), key=lambda item: not item[0][1])
    ]


def adamw_with_schedule(
    groups: list[dict],
    *,
    lr: float,
    warmup_steps: int,
    total_steps: int,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    shape: str = "cosine",
    floor: float = 0.0,
) -> dict:
    """What a LightningModule's ``configure_optimizers`` returns: AdamW over ``groups`` (each may
    carry its own ``lr``; ``lr`` for those that do not) and :func:`warmup_decay` stepped per
    optimiser step."""
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)
    schedule = warmup_decay(warmup_steps, total_steps, shape=shape, floor=floor)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
