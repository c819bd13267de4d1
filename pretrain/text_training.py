"""Training pieces of text adaptation: the deterministic batch stream, the Lightning module and
its optimiser (:mod:`vfm.platform.training.optim`). :func:`vfm.pretrain.text_adaptation.adapt_text_model` wires them up.

Exact resume: micro-batch ``m`` (blocks, MLM masks, and the dropout seed) is a function of
``(seed, m, rank)`` alone, and a resumed fit starts the stream at ``global_step * accumulation``,
so training in pieces gives the weights of one uninterrupted run.
"""

from __future__ import annotations

import lightning as L
import torch

from vfm.platform.training.optim import adamw_with_schedule, decay_groups
from vfm.pretrain.text_models import lm_batch, mlm_collator


class BlockStream(torch.utils.data.IterableDataset):
    """Endless training batches. Micro-batch ``m`` on rank ``r`` of ``w`` holds the blocks at
    positions ``(m*w + r)*B ...`` of a per-epoch seeded permutation, masked (MLM) by a generator
    seeded with ``(seed, m, r)``: the stream is a function of ``start``, so a resume repeats it."""

    def __init__(
        self, blocks: torch.Tensor, batch_size: int, objective: str, tokenizer, mlm_probability: float, seed: int
    ):
        self.blocks, self.batch_size, self.objective = blocks, batch_size, objective  # blocks [N, T]
        self.tokenizer, self.mlm_probability, self.seed = tokenizer, mlm_probability, seed
        self.start = 0  # first micro-batch, set on resume

    def __iter__(self):
        dist = torch.distributed
        distributed = dist.is_available() and dist.is_initialized()
        rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
        collator = mlm_collator(self.tokenizer, self.mlm_probability) if self.objective == "mlm" else None
        n, perms, m = len(self.blocks), {}, self.start
        while True:
            first = (m * world + rank) * self.batch_size
            for epoch in {p // n for p in range(first, first + self.batch_size)} - perms.keys():
                perms[epoch] = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 7919 + epoch))
            idx = [int(perms[p // n][p % n]) for p in range(first, first + self.batch_size)]
            step_seed = (self.seed * 1_000_003 + m) * world + rank
            if collator is not None:
                collator.generator = torch.Generator().manual_seed(step_seed)
            batch = lm_batch(self.blocks[idx], self.objective, collator)
            batch["step_seed"] = torch.tensor(step_seed)
            yield batch
            perms = {e: p for e, p in perms.items() if e >= first // n}
            m += 1


class TextLmModule(L.LightningModule):
    def __init__(self, model, settings, stream: BlockStream):
        """``settings``: a :class:`~vfm.pretrain.text_adaptation.TextAdaptSettings`."""
        super().__init__()
        self.model, self.settings, self.stream = model, settings, stream

    def training_step(self, batch, batch_idx):
        torch.manual_seed(int(batch.pop("step_seed")))  # dropout follows the micro-batch, not the history
        loss = self.model(**batch).loss  # batch: input_ids [B, T], labels [B, T] (-100 = not predicted)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def on_load_checkpoint(self, checkpoint):
        self.stream.start = int(checkpoint["global_step"]) * self.settings.accumulate_grad_batches

    def configure_optimizers(self):
        s = self.settings
        groups = decay_groups(self.model.named_parameters(), weight_decay=s.weight_decay, lr=s.lr)
        return adamw_with_schedule(
            groups,
            lr=s.lr,
            betas=(0.9, 0.98),
            eps=1e-6,
            warmup_steps=s.warmup_steps,
            total_steps=s.schedule_steps or s.max_steps,
            shape=s.lr_schedule,
        )
