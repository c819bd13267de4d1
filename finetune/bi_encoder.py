"""Contrastive fine-tuning of a pretrained sentence encoder (a bi-encoder) for ranking, its torch
embedder, and its ONNX export.

The encoder is a Hugging Face model (``AutoModel``, e.g. all-MiniLM-L6-v2) with mean pooling over
the attention mask and L2 normalisation, as sentence-transformers computes it. Training data are
:class:`ContrastiveGroup` s: a query, its candidates (a document's units) and which candidates answer
it. Each step takes ``batch_size`` groups; each group contributes its positives and ``negatives``
candidates drawn from the rest (seeded by ``(seed, epoch, group)``, so a resumed run draws the same);
every query is scored against every candidate of the batch (its own document's negatives are the hard
ones, the other groups' candidates in-batch ones) and the loss is the multi-positive InfoNCE

    loss_q = logsumexp_c(s_qc / t) - logsumexp_{c in positives(q)}(s_qc / t),  s = cosine, t = temperature.

Training runs on the shared stack (:func:`vfm.platform.training.trainer.fit`: checkpoints, resume
after ``kill -9``); the tuned encoder is saved as a Hugging Face folder that reloads with
``AutoModel.from_pretrained``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_json, read_json_if_any
from vfm.platform.training.optim import adamw_with_schedule, decay_groups
from vfm.platform.training.sampling import EpochSampler
from vfm.platform.training.settings import TrainSettings
from vfm.platform.training.trainer import fit
from vfm.serve.sentence_encoder import CachedEncoder, load_tokenizer, text_batch

log = logging.getLogger("vfm.bi_encoder")

MADE_OF = "vfm_bi_encoder.json"
"""What a tuned encoder was trained from (base folder, number of groups, settings): a folder is reused
only for the same."""

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
"""The tokenizer files copied with a tuned encoder (those the base has)."""


class SentenceEncoder(torch.nn.Module):
    """``input_ids``, ``attention_mask`` (int64 [B, T]) -> ``sentence_embedding`` [B, D]: the mean of the
    model's last hidden states over the unmasked tokens, L2-normalised."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [B, T, D]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
        return F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0), dim=-1)


def load_sentence_encoder(folder: str | Path) -> SentenceEncoder:
    """The encoder of a Hugging Face folder (``trust_remote_code`` off).

    Raises:
        VfmError: the folder holds no model ``AutoModel`` can read.
    """
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(str(folder))
    except (OSError, ValueError) as err:
        raise VfmError(
            f"cannot load the sentence encoder: {str(err).splitlines()[0]}",
            where=str(folder),
            fix="pass a Hugging Face model folder or a model reference (vfm models list)",
        ) from None
    return SentenceEncoder(model)


class TorchSentenceEncoder(CachedEncoder):
    """A training run's sentence encoder, in torch: the Hugging Face ``folder`` and its
    ``tokenizer.json`` (the tokenization of :class:`vfm.serve.sentence_encoder.OnnxSentenceEncoder`)."""

    def __init__(self, folder: str | Path, max_length: int):
        self.encoder = load_sentence_encoder(folder).eval()
        super().__init__(load_tokenizer(Path(folder) / "tokenizer.json", max_length))

    @torch.inference_mode()
    def _embed_batch(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return self.encoder(torch.from_numpy(batch["input_ids"]), torch.from_numpy(batch["attention_mask"])).numpy()


@dataclass(frozen=True)
class ContrastiveGroup:
    """A query, its candidates and the indices of those that answer it (at least one, not all)."""

    query: str
    candidates: tuple[str, ...]
    positives: tuple[int, ...]


@dataclass
class BiEncoderSettings(TrainSettings):
    """Contrastive fine-tuning settings (the shared fields are :class:`TrainSettings`').

    Attributes:
        batch_size: groups per step.
        negatives: candidates drawn per group besides its positives (fewer when it has fewer).
        temperature: the softmax temperature of the cosine scores.
        max_length: tokens per text (longer texts are truncated).
    """

    max_steps: int | None = 300
    batch_size: int = 8
    negatives: int = 7
    lr: float = 3.0e-5
    weight_decay: float = 0.01
    warmup_steps: int = 30
    temperature: float = 0.05
    max_length: int = 128
    checkpoint_every_n_steps: int | None = 50

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check(
            ("batch_size", self.batch_size >= 1, "a number of groups >= 1"),
            ("negatives", self.negatives >= 1, "a number of candidates >= 1"),
            ("lr", self.lr > 0, "a learning rate > 0"),
            ("warmup_steps", self.warmup_steps >= 0, "a number of steps >= 0"),
            ("temperature", self.temperature > 0, "a temperature > 0 (e.g. 0.05)"),
            ("max_length", self.max_length >= 8, "a number of tokens >= 8"),
        )


class GroupBatches:
    """Tokenized batches of groups in an :class:`EpochSampler`'s order; Lightning checkpoints its
    position through ``state_dict``.

    Each batch: ``queries`` and ``candidates`` (``{"input_ids", "attention_mask"}``, int64 [G, Tq]
    and [M, Tc]) and ``positive`` (bool [G, M]: candidate m answers query g).
    """

    def __init__(self, groups: Sequence[ContrastiveGroup], tokenizer, settings: BiEncoderSettings, sampler):
        self.groups, self.tokenizer, self.settings, self.sampler = groups, tokenizer, settings, sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for index in self.sampler:
            texts: list[str] = []
            answers: list[set[str]] = []  # per group in the batch: the texts of its positives
            for i in index:
                group = self.groups[int(i)]
                rest = [c for c in range(len(group.candidates)) if c not in group.positives]
                rng = np.random.default_rng([self.settings.seed, self.sampler.epoch, int(i)])
                drawn = rng.choice(rest, size=min(self.settings.negatives, len(rest)), replace=False)
                texts += [group.candidates[c] for c in [*group.positives, *drawn.tolist()]]
                answers.append({group.candidates[c] for c in group.positives})
            # by text: another question on the same document may hold the same gold unit in the batch
            positive = torch.tensor([[text in answer for text in texts] for answer in answers], dtype=torch.bool)
            yield {
                "queries": _tensors(text_batch(self.tokenizer, [self.groups[int(i)].query for i in index])),
                "candidates": _tensors(text_batch(self.tokenizer, texts)),
                "positive": positive,
            }

    def state_dict(self) -> dict[str, int]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.load_state_dict(state)


def _tensors(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(array) for name, array in batch.items()}


def contrastive_loss(queries: torch.Tensor, candidates: torch.Tensor, positive: torch.Tensor, temperature: float):
    """Multi-positive InfoNCE (module doc) of unit vectors ``queries`` [G, D] against ``candidates``
    [M, D]; ``positive`` bool [G, M]. Returns the mean over queries (a scalar)."""
    scores = queries @ candidates.T / temperature  # [G, M]
    return (scores.logsumexp(-1) - scores.masked_fill(~positive, float("-inf")).logsumexp(-1)).mean()


class BiEncoderModule(L.LightningModule):
    def __init__(self, encoder: SentenceEncoder, groups: Sequence[ContrastiveGroup], tokenizer, settings):
        """``settings``: a :class:`BiEncoderSettings`."""
        super().__init__()
        self.encoder, self.groups, self.tokenizer, self.settings = encoder, groups, tokenizer, settings

    def train_dataloader(self) -> GroupBatches:
        batch_size = min(self.settings.batch_size, len(self.groups) // self.trainer.world_size)
        sampler = EpochSampler(
            len(self.groups), batch_size, self.settings.seed, self.global_rank, self.trainer.world_size
        )
        return GroupBatches(self.groups, self.tokenizer, self.settings, sampler)

    def training_step(self, batch, batch_idx):
        torch.manual_seed(self.settings.seed * 1_000_003 + self.global_step)  # dropout follows the step
        queries = self.encoder(**batch["queries"])  # [G, D]
        candidates = self.encoder(**batch["candidates"])  # [M, D]
        loss = contrastive_loss(queries, candidates, batch["positive"], self.settings.temperature)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(queries))
        return loss

    def configure_optimizers(self):
        s = self.settings
        groups = decay_groups(self.encoder.named_parameters(), weight_decay=s.weight_decay, lr=s.lr)
        return adamw_with_schedule(
            groups, lr=s.lr, warmup_steps=s.warmup_steps, total_steps=s.max_steps or 0, shape="linear"
        )


def train_bi_encoder(
    base: str | Path,
    groups: Sequence[ContrastiveGroup],
    settings: BiEncoderSettings,
    out: str | Path,
    *,
    model_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune the Hugging Face encoder in ``base`` on ``groups``; the tuned model goes to
    ``model_dir`` (default ``out/model``: safetensors with the base's tokenizer files), checkpoints and
    logs to ``out``.

    A finished ``model_dir`` is kept as it is; a killed run resumes from its last checkpoint.

    Returns:
        ``{"groups", "steps", "seconds", "final_loss", "model"}``.

    Raises:
        VfmError: fewer groups than one batch, or a base without ``tokenizer.json``.
    """
    base, out = Path(base), Path(out)
    model_dir = Path(model_dir) if model_dir is not None else out / "model"
    made_of = {"base": str(base.resolve()), "groups": len(groups), "settings": asdict(settings)}
    if (model_dir / "config.json").is_file():
        recorded = read_json_if_any(model_dir / MADE_OF)
        if recorded != json.loads(json.dumps(made_of)):
            raise VfmError(
                "the tuned encoder in this folder was trained from another base, data or settings",
                where=str(model_dir),
                fix="use a new output folder, or delete this encoder to train it again",
            )
        return {"groups": len(groups), "model": str(model_dir), "reused": True}
    if settings.max_steps is None:
        raise VfmError("contrastive fine-tuning is set in steps", where="max_steps", fix="set max_steps (e.g. 300)")
    if len(groups) < 2:
        raise VfmError(
            f"{len(groups)} training group(s) for the sentence encoder: at least 2 are needed",
            fix="train on records with gold evidence",
        )
    L.seed_everything(settings.seed, verbose=False)
    tokenizer = load_tokenizer(base / "tokenizer.json", settings.max_length)
    encoder = load_sentence_encoder(base).train()  # from_pretrained returns it in eval mode (no dropout)
    module = BiEncoderModule(encoder, groups, tokenizer, settings)
    run = fit(module, settings, out, progress=progress, log_every_n_steps=10)
    staging = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}.", dir=model_dir.parent))
    try:
        encoder.model.save_pretrained(staging, safe_serialization=True)
        for name in TOKENIZER_FILES:
            if (base / name).is_file():
                shutil.copyfile(base / name, staging / name)
        atomic_write_json(staging / MADE_OF, made_of)
        os.replace(staging, model_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("sentence encoder: %d steps on %d groups in %.0f s -> %s", run.steps, len(groups), run.seconds, model_dir)
    return {
        "groups": len(groups),
        "steps": run.steps,
        "seconds": round(run.seconds_all_calls, 1),
        "final_loss": run.final_loss,
        "model": str(model_dir),
    }


def export_sentence_encoder(
    folder: str | Path, path: str | Path, texts: Sequence[str], max_length: int, *, opset: int = 18, atol: float = 1e-4
) -> dict[str, Any]:
    """Export the encoder of Hugging Face ``folder`` to ONNX at ``path`` (any batch, any length) and
    check it against torch on ``texts`` (:func:`vfm.finetune.export.export_onnx`'s report).

    Raises:
        VfmError: fewer than 2 texts, or the ONNX embeddings differ from torch's.
    """
    from vfm.finetune.export import export_onnx

    if len(texts) < 2:
        raise VfmError("the sentence encoder's parity check needs at least 2 texts", where="export_sentence_encoder")
    tokenizer = load_tokenizer(Path(folder) / "tokenizer.json", max_length)
    example = _tensors(text_batch(tokenizer, ["a table row: revenue 2019 1,234", "a sentence of the report ."]))
    return export_onnx(
        load_sentence_encoder(folder),
        example,
        ["sentence_embedding"],
        Path(path),
        opset=opset,
        dynamic_dims={1: "sequence"},
        atol=atol,
        parity_inputs=_tensors(text_batch(tokenizer, list(texts))),
    )
