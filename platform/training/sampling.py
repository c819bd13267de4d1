"""A data order that is a function of (seed, epoch) alone, split across ranks, resumable mid-epoch."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


class EpochSampler:
    """Which examples one rank trains on at each step; resumable mid-epoch.

    Epoch ``e`` visits the N examples in the order ``default_rng([seed, e]).permutation(N)``, cut
    into ``len(self)`` global batches of ``batch_size * world_size`` (the rest is dropped); rank
    ``r`` takes the ``r``-th ``batch_size`` slice of each global batch. One process with batch
    ``2B`` therefore trains on exactly what two processes with batch ``B`` train on together.
    Lightning calls ``set_epoch`` at each epoch start (as on a ``DistributedSampler``) when the
    sampler is the ``sampler`` attribute of the batches it iterates, and keeps ``state_dict()``
    in every checkpoint.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.n, self.batch_size, self.seed, self.rank, self.world_size = n, batch_size, seed, rank, world_size
        self.epoch, self.consumed = 0, 0  # batches of this epoch handed out

    def __len__(self) -> int:
        return self.n // (self.batch_size * self.world_size)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self.consumed = epoch, 0

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yields this rank's example indices int64 [B] for each remaining batch of the epoch."""
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)  # [N]
        steps = len(self)
        batches = order[: steps * self.world_size * self.batch_size].reshape(steps, self.world_size, -1)[:, self.rank]
        while self.consumed < steps:
            self.consumed += 1  # before the step runs: a checkpoint taken after it resumes with the next batch
            yield batches[self.consumed - 1]  # [B]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.consumed = state["epoch"], state["consumed"]
