"""The settings every training run has in common, checked once (torch-free).

Each training entry point's settings dataclass subclasses :class:`TrainSettings` and adds its own
fields (batch size, learning rates, model options); a subclass may change a default by declaring
the field again. Config sections stay flat: ``pretrain.max_steps``, ``finetune.precision``, ...
"""

from __future__ import annotations

import math
import re
import typing
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from vfm.platform.config import plain_types
from vfm.platform.errors import VfmError

PRECISIONS = ("auto", "32", "bf16-mixed")
STRATEGIES = ("auto", "ddp", "ddp_spawn", "fsdp")

POSITIVE = re.compile(
    r"(batch_size|batches|(^|_)lr|temperature|(^|_)size|_len|length|heads|layers|threads|top_k|beam_size|"
    r"scale|max_\w*tokens|grid|repeats)$|^d_"
)
"""Numeric fields that must be > 0, by name, in every settings class (a size, a rate, a count of layers)."""
FRACTION = re.compile(r"(dropout|drop_path|fraction|ratio|probability|smoothing|layer_decay)")
"""Numeric fields that must lie in [0, 1], by name."""


@dataclass
class TrainSettings:
    """What every run has. The run stops at ``max_steps`` optimiser steps or ``max_epochs`` epochs
    (steps win when both are set), or when ``max_minutes`` of training have passed (over every
    call of a resumed run), with a warning that the model is under-trained.

    Attributes:
        precision: ``"32"``, ``"bf16-mixed"`` or ``"auto"`` (bf16 where the hardware has fast bf16:
            :func:`vfm.platform.training.trainer.resolve_precision`).
        accelerator, devices, num_nodes, strategy: passed to Lightning (``strategy``: ``auto``,
            ``ddp``, ``ddp_spawn`` or ``fsdp``).
        seed: initial weights, data order, masking and dropout.
        checkpoint_every_n_steps: how often ``checkpoints/last.ckpt`` is refreshed; None: at the end
            of every epoch. A run killed at any moment resumes from the last one.
    """

    max_steps: int | None = None
    max_epochs: int | None = None
    max_minutes: float | None = None
    precision: str = "auto"
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    seed: int = 0
    checkpoint_every_n_steps: int | None = 500

    RESUMABLE_CHANGES: ClassVar[frozenset[str]] = frozenset(
        {
            "max_steps",
            "max_epochs",
            "max_minutes",
            "checkpoint_every_n_steps",
            "accelerator",
            "devices",
            "num_nodes",
            "strategy",
        }
    )
    """Fields a resumed run may change (the run's length and where it runs); subclasses add theirs."""

    def comparable(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run it resumes (JSON-able)."""
        return {k: v for k, v in asdict(self).items() if k not in self.RESUMABLE_CHANGES}

    def __post_init__(self) -> None:
        self.check(
            (
                "max_steps",
                self.max_steps is not None or self.max_epochs is not None,
                "set max_steps (e.g. 1000) or max_epochs",
            ),
            ("max_steps", self.max_steps is None or self.max_steps >= 1, "a number of optimiser steps >= 1"),
            ("max_epochs", self.max_epochs is None or self.max_epochs >= 1, "a number of epochs >= 1"),
            ("max_minutes", self.max_minutes is None or self.max_minutes > 0, "minutes > 0, or null (no cap)"),
            ("precision", self.precision in PRECISIONS, '"auto", "32" or "bf16-mixed"'),
            (
                "devices",
                self.devices == "auto" or (isinstance(self.devices, int) and self.devices >= 1),
                '"auto" or a count >= 1',
            ),
            ("num_nodes", self.num_nodes >= 1, "a count >= 1"),
            ("strategy", self.strategy in STRATEGIES, " or ".join(f'"{s}"' for s in STRATEGIES)),
            ("seed", self.seed >= 0, "a seed >= 0"),
            (
                "checkpoint_every_n_steps",
                self.checkpoint_every_n_steps is None or self.checkpoint_every_n_steps >= 1,
                "a number of steps >= 1, or null (every epoch)",
            ),
        )
        self.check_numbers()

    def check_numbers(self) -> None:
        """The one check of every numeric and yes/no field of every settings class: a number where a
        number is expected (not ``true``), finite, >= 0; > 0 for sizes, rates and counts of layers
        (:data:`POSITIVE`); within [0, 1] for probabilities and fractions (:data:`FRACTION`); a yes/no
        where one is expected. Runs after the checks of the fields every run has, whose messages say
        more, and before a subclass's own (:meth:`check`)."""
        hints = typing.get_type_hints(type(self))
        for field in fields(self):
            value, kinds = getattr(self, field.name), plain_types(hints[field.name])
            if value is None or not kinds & {int, float, bool} or str in kinds:  # devices: "auto" or a count
                continue
            if bool in kinds:
                self.check((field.name, isinstance(value, bool), "true or false"))
                continue
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            self.check((field.name, number and math.isfinite(value), "a number"))
            if FRACTION.search(field.name):
                self.check((field.name, 0 <= value <= 1, "a value from 0 to 1"))
            elif POSITIVE.search(field.name):
                self.check((field.name, value > 0, "a value > 0"))
            else:
                self.check((field.name, value >= 0, "a value >= 0"))

    def check(self, *checks: tuple[str, Any, str]) -> None:
        """Raise a one-line :class:`VfmError` for the first ``(field, ok, expected)`` whose ``ok`` is false."""
        for name, ok, expected in checks:
            if not ok:
                raise VfmError(
                    f"invalid {name} {getattr(self, name)!r}",
                    where=f"{type(self).__name__}.{name}",
                    fix=f"use {expected}",
                )
