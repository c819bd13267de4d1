"""A pointer-generator that writes FinQA programs (after FinQANet, Chen et al. 2021), in torch.

The encoder reads ``[CLS] question [SEP] evidence units ...`` (:mod:`features`); the decoder
is a GRU with attention that emits one *option* per step: a word of ``OUTPUT_VOCAB`` (an
operation, ``)``, a constant, ``#N``, ``EOF``) or a pointer at an input position, which
copies that number or row name. The embedding fed back after a pointer is the encoder's
output at that position, so the decoder sees *what* it copied.

Three named steps, as in MAE:

- :meth:`ProgramGenerator.forward_encoder`: ``memory [B, L, D]`` and the first decoder state;
- :meth:`ProgramGenerator.forward_step`: one decoder step, ``logits [B, V + L]`` (what is
  exported to ONNX and run in numpy by :mod:`decode`);
- :meth:`ProgramGenerator.forward_loss`: teacher-forced negative log-likelihood of the gold
  options under the grammar's masks (a gold argument found at several positions counts
  once: the probabilities of its positions are summed).

A trained model is saved as ``generator.safetensors`` (:func:`save_generator`), the form a training
run keeps; ``vfm export`` converts it with :func:`export_generator` and checks the conversion with
:func:`greedy_token_parity`.

The encoder is pluggable: ``encoder="scratch"`` is a small pre-LN transformer trained from
random weights; any other value is a local Hugging Face model folder (``AutoModel``, e.g.
the domain-adapted encoder of ``vfm.pretrain``), read without downloading or remote code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_json
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.generation.decode import (
    CONFIG_FILE,
    ENCODER_ONNX,
    STEP_ONNX,
    WEIGHTS_FILE,
    OnnxBackend,
    ProgramPredictor,
    greedy_decode,
)
from vfm.plugins.finance.generation.features import (
    N_TOKEN_TYPES,
    OUTPUT_VOCAB,
    POINTER_NUMBER,
    POINTER_ROW,
    QUESTION,
    QUESTION_NUMBER,
    SPECIAL,
    TOKEN_TYPES,
    make_example,
)

SCRATCH = "scratch"

_NEG = -1e4
"""Logit of a masked option (finite, so that fully masked rows stay finite in ONNX)."""


@dataclass
class GeneratorConfig:
    """The model's shape; written beside its weights as ``generator_config.json``.

    Attributes:
        vocab_size: input tokens (the tokenizer's vocabulary).
        encoder: ``"scratch"`` or a local Hugging Face model folder.
        d_model: width of the decoder (and of the scratch encoder).
        n_layers, n_heads, d_ff: the scratch encoder's depth, heads and MLP width.
        max_len: the longest input, in tokens.
        dropout: dropout in the encoder and on decoder inputs.
    """

    vocab_size: int = 8000
    encoder: str = SCRATCH
    d_model: int = 192
    n_layers: int = 3
    n_heads: int = 4
    d_ff: int = 768
    max_len: int = 256
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise VfmError(
                f"d_model {self.d_model} is not a multiple of n_heads {self.n_heads}",
                where="GeneratorConfig",
                fix="pick n_heads dividing d_model",
            )
        for name in ("vocab_size", "d_model", "n_layers", "max_len"):
            if getattr(self, name) < 1:
                raise VfmError(f"{name} must be positive", where=f"GeneratorConfig.{name}", fix="pass a positive int")


class _Block(nn.Module):
    """Pre-LN transformer block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, d: int, heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, d_ff), nn.GELU(), nn.Linear(d_ff, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape  # x: [B, L, D]
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (t.view(b, length, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))  # [B, H, L, Dh]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(b, length, d)))
        return x + self.drop(self.mlp(self.ln2(x)))


class ScratchEncoder(nn.Module):
    """A small transformer encoder with token, position and token-type embeddings."""

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        d = config.d_model
        self.out_dim = d
        self.tokens = nn.Embedding(config.vocab_size, d)
        self.positions = nn.Embedding(config.max_len, d)
        self.types = nn.Embedding(N_TOKEN_TYPES, d)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            _Block(d, config.n_heads, config.d_ff, config.dropout) for _ in range(config.n_layers)
        )
        self.ln = nn.LayerNorm(d)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_types: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.drop(self.tokens(input_ids) + self.positions(positions)[None] + self.types(token_types))  # [B, L, D]
        keep = attention_mask.bool()
        for block in self.blocks:
            x = block(x, keep)
        return self.ln(x)


class HFEncoder(nn.Module):
    """A Hugging Face encoder read from a local folder (no download, no remote code).

    Args:
        path: a folder ``AutoModel.from_pretrained`` reads, or None to build the model
            from ``config`` (when loading saved generator weights).
        config: a ``transformers`` config, used when ``path`` is None.
    """

    def __init__(self, path: str | Path | None, config: Any = None):
        super().__init__()
        from transformers import AutoModel

        if path is not None:
            folder = Path(path)
            if not (folder / "config.json").is_file():
                raise VfmError(
                    "not a Hugging Face model folder (no config.json)",
                    where=str(folder),
                    fix="pass a local folder written by save_pretrained, e.g. <text adaptation out>/model",
                )
            self.model = AutoModel.from_pretrained(folder, trust_remote_code=False, local_files_only=True)
        else:
            self.model = AutoModel.from_config(config, trust_remote_code=False)
        self.model.train()  # from_pretrained returns eval mode; follow the parent's mode instead
        self.out_dim = int(self.model.config.hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_types: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [B, L, D_hf]


class ProgramGenerator(nn.Module):
    """Encoder + pointer-generator GRU decoder over ``V = len(OUTPUT_VOCAB)`` words and ``L``
    input positions."""

    def __init__(self, config: GeneratorConfig, encoder: nn.Module | None = None):
        super().__init__()
        self.config = config
        d = config.d_model
        self.encoder = encoder if encoder is not None else ScratchEncoder(config)
        self.bridge = nn.Identity() if self.encoder.out_dim == d else nn.Linear(self.encoder.out_dim, d)
        self.types = nn.Embedding(N_TOKEN_TYPES, d)
        self.ln = nn.LayerNorm(d)
        self.init_state = nn.Linear(d, d)
        self.option_in = nn.Embedding(len(OUTPUT_VOCAB), d)
        self.copy_in = nn.Linear(d, d)
        self.gru_x, self.gru_h = nn.Linear(d, 3 * d), nn.Linear(d, 3 * d)
        self.attn_q = nn.Linear(d, d)
        self.out = nn.Linear(2 * d, d)
        self.vocab_out = nn.Linear(d, len(OUTPUT_VOCAB))
        self.ptr_q, self.ptr_k = nn.Linear(d, d), nn.Linear(d, d)
        self.drop = nn.Dropout(config.dropout)

    def forward_encoder(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_types: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(memory [B, L, D], state [B, D])``: the encoded input and the first decoder state
        (from the mean of the question's positions, ``[CLS]`` and ``[SEP]`` included).

        ``input_ids``, ``attention_mask`` (1 keep, 0 pad), ``token_types``: ``[B, L]`` int64.
        """
        hidden = self.bridge(self.encoder(input_ids, attention_mask, token_types))  # [B, L, D]
        memory = self.ln(hidden + self.types(token_types))  # [B, L, D]
        base = token_types % len(TOKEN_TYPES)
        question = ((base == QUESTION) | (base == QUESTION_NUMBER) | (base == SPECIAL)).float()[..., None]
        summary = (memory * question).sum(1) / question.sum(1).clamp(min=1.0)  # [B, D]
        return memory, torch.tanh(self.init_state(summary))  # [B, L, D], [B, D]

    def forward_step(
        self, prev: torch.Tensor, state: torch.Tensor, memory: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One decoder step: ``(logits [B, V + L], state [B, D])`` after option ``prev [B]``.

        Padded positions get a logit of -1e4; the grammar's masks are applied by the caller.
        """
        return self._step(prev, state, memory, self.copy_in(memory), self.ptr_k(memory), attention_mask.bool())

    def _step(
        self,
        prev: torch.Tensor,
        state: torch.Tensor,
        memory: torch.Tensor,
        copy: torch.Tensor,
        keys: torch.Tensor,
        keep: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        vocab = len(OUTPUT_VOCAB)
        d = memory.shape[2]
        from_vocab = self.option_in(prev.clamp(max=vocab - 1))  # [B, D]
        index = (prev - vocab).clamp(min=0)[:, None, None].expand(-1, 1, d)
        copied = copy.gather(1, index).squeeze(1)  # [B, D]
        x = self.drop(torch.where((prev >= vocab)[:, None], copied, from_vocab))
        state = self._gru(x, state)  # [B, D]
        scores = torch.einsum("bld,bd->bl", memory, self.attn_q(state)) / math.sqrt(d)  # [B, L]
        weights = torch.softmax(scores.masked_fill(~keep, _NEG), dim=1)
        context = torch.einsum("bl,bld->bd", weights, memory)  # [B, D]
        out = torch.tanh(self.out(torch.cat([state, context], dim=1)))  # [B, D]
        pointer = torch.einsum("bld,bd->bl", keys, self.ptr_q(out)) / math.sqrt(d)  # [B, L]
        logits = torch.cat([self.vocab_out(out), pointer.masked_fill(~keep, _NEG)], dim=1)  # [B, V + L]
        return logits, state

    def _gru(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """A GRU cell (written out, so that it exports to plain ONNX ops)."""
        xr, xz, xn = self.gru_x(x).chunk(3, dim=1)
        hr, hz, hn = self.gru_h(h).chunk(3, dim=1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        return (1 - z) * torch.tanh(xn + r * hn) + z * h

    def forward_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean negative log-likelihood per gold option (see :func:`collate` for the keys)."""
        memory, state = self.forward_encoder(batch["input_ids"], batch["attention_mask"], batch["token_types"])
        keep = batch["attention_mask"].bool()
        copy, keys = self.copy_in(memory), self.ptr_k(memory)
        kinds = batch["pointer_kinds"]  # [B, T]
        losses = []
        for t in range(batch["inputs"].shape[1]):
            logits, state = self._step(batch["inputs"][:, t], state, memory, copy, keys, keep)
            pointer_ok = ((kinds[:, t, None] == POINTER_NUMBER) & batch["is_number"]) | (
                (kinds[:, t, None] == POINTER_ROW) & batch["is_row"]
            )  # [B, L]
            allowed = torch.cat([batch["allowed_vocab"][:, t], pointer_ok], dim=1)  # [B, V + L]
            log_p = torch.log_softmax(logits.masked_fill(~allowed, -1e9), dim=1)
            vocab_gold = F.one_hot(batch["vocab_targets"][:, t].clamp(min=0), len(OUTPUT_VOCAB)).bool() & (
                batch["vocab_targets"][:, t, None] >= 0
            )
            gold = torch.cat([vocab_gold, batch["pointer_targets"][:, t]], dim=1) & allowed
            losses.append(-torch.logsumexp(log_p.masked_fill(~gold, -1e9), dim=1))  # [B]
        loss = torch.stack(losses, dim=1)  # [B, T]
        valid = batch["step_mask"]
        return (loss * valid).sum() / valid.sum().clamp(min=1)


def collate(items: list[tuple[Any, Any]]) -> dict[str, torch.Tensor]:
    """A training batch from ``(EncodedInput, ProgramTargets)`` pairs, padded to the longest.

    Keys: ``input_ids``, ``attention_mask``, ``token_types``, ``is_number``, ``is_row``
    ``[B, L]``; ``inputs``, ``vocab_targets``, ``pointer_kinds``, ``step_mask`` ``[B, T]``;
    ``allowed_vocab [B, T, V]``; ``pointer_targets [B, T, L]``.
    """
    length = max(len(encoded) for encoded, _ in items)
    steps = max(len(targets.inputs) for _, targets in items)
    b, vocab = len(items), len(OUTPUT_VOCAB)
    batch = {
        "input_ids": np.zeros((b, length), np.int64),
        "attention_mask": np.zeros((b, length), np.int64),
        "token_types": np.zeros((b, length), np.int64),
        "is_number": np.zeros((b, length), bool),
        "is_row": np.zeros((b, length), bool),
        "inputs": np.zeros((b, steps), np.int64),
        "vocab_targets": np.full((b, steps), -1, np.int64),
        "pointer_kinds": np.zeros((b, steps), np.int64),
        "step_mask": np.zeros((b, steps), np.float32),
        "allowed_vocab": np.zeros((b, steps, vocab), bool),
        "pointer_targets": np.zeros((b, steps, length), bool),
    }
    for i, (encoded, targets) in enumerate(items):
        n, t = len(encoded), len(targets.inputs)
        batch["input_ids"][i, :n], batch["attention_mask"][i, :n] = encoded.input_ids, 1
        batch["token_types"][i, :n] = encoded.token_types
        batch["is_number"][i], batch["is_row"][i] = encoded.pointer_masks(length)
        batch["inputs"][i, :t], batch["vocab_targets"][i, :t] = targets.inputs, targets.vocab_targets
        batch["pointer_kinds"][i, :t], batch["step_mask"][i, :t] = targets.pointer_kinds, 1.0
        batch["allowed_vocab"][i, :t] = targets.allowed_vocab
        batch["pointer_targets"][i, :t, :n] = targets.pointer_targets
    return {key: torch.from_numpy(value) for key, value in batch.items()}


def build_generator(config: GeneratorConfig) -> ProgramGenerator:
    """A new model: a scratch encoder, or the Hugging Face encoder in ``config.encoder``."""
    encoder = None if config.encoder == SCRATCH else HFEncoder(config.encoder)
    return ProgramGenerator(config, encoder)


class TorchBackend:
    """The model as :mod:`decode` runs it: numpy in, numpy out (for checks against ONNX)."""

    def __init__(self, model: ProgramGenerator):
        self.model = model.eval()

    def _tensors(self, *arrays: np.ndarray) -> list[torch.Tensor]:
        device = next(self.model.parameters()).device
        return [torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays]

    @torch.no_grad()
    def encode(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, token_types: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        memory, state = self.model.forward_encoder(*self._tensors(input_ids, attention_mask, token_types))
        return memory.float().cpu().numpy(), state.float().cpu().numpy()

    @torch.no_grad()
    def step(
        self, prev: np.ndarray, state: np.ndarray, memory: np.ndarray, attention_mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        logits, state = self.model.forward_step(*self._tensors(prev, state, memory, attention_mask))
        return logits.float().cpu().numpy(), state.float().cpu().numpy()


HF_CONFIG_DIR = "encoder_config"


def save_generator(model: ProgramGenerator, folder: str | Path) -> None:
    """Write ``generator.safetensors`` and ``generator_config.json`` (and the Hugging Face
    encoder's config, for an HF encoder) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))
    if isinstance(model.encoder, HFEncoder):
        model.encoder.model.config.save_pretrained(folder / HF_CONFIG_DIR)
    atomic_write_json(folder / CONFIG_FILE, asdict(model.config))


def load_generator(folder: str | Path) -> ProgramGenerator:
    """The model :func:`save_generator` wrote into ``folder``.

    Raises:
        VfmError: the folder holds no generator.
    """
    folder = Path(folder)
    if not (folder / WEIGHTS_FILE).is_file() or not (folder / CONFIG_FILE).is_file():
        raise VfmError(
            f"no {WEIGHTS_FILE} and {CONFIG_FILE} here",
            where=str(folder),
            fix="pass the --out folder of a generator training run",
        )
    config = GeneratorConfig(**json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8")))
    encoder = None
    if config.encoder != SCRATCH:
        from transformers import AutoConfig

        encoder = HFEncoder(None, AutoConfig.from_pretrained(folder / HF_CONFIG_DIR, local_files_only=True))
    model = ProgramGenerator(config, encoder)
    model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    return model.eval()


class _EncoderGraph(nn.Module):
    def __init__(self, model: ProgramGenerator):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_types):
        return self.model.forward_encoder(input_ids, attention_mask, token_types)


class _StepGraph(nn.Module):
    def __init__(self, model: ProgramGenerator):
        super().__init__()
        self.model = model

    def forward(self, prev, state, memory, attention_mask):
        return self.model.forward_step(prev, state, memory, attention_mask)


def export_generator(model: ProgramGenerator, folder: str | Path, *, opset: int = 18) -> dict[str, Any]:
    """Export the encoder and one decoder step to ONNX in ``folder`` (torch.onnx, dynamo),
    with the batch axis dynamic and inputs padded to ``max_len``.

    Returns:
        ``{"encoder": parity report, "decoder_step": parity report}`` from
        :func:`vfm.finetune.export.export_onnx` (max abs/rel error per output).
    """
    from vfm.finetune.export import export_onnx

    folder = Path(folder)
    model = model.eval().float()
    length = model.config.max_len
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(4, model.config.vocab_size, (2, length), generator=generator)
    mask = torch.ones(2, length, dtype=torch.int64)
    mask[1, length // 2 :] = 0
    types = torch.randint(1, N_TOKEN_TYPES, (2, length), generator=generator)
    encoder_report = export_onnx(
        _EncoderGraph(model),
        {"input_ids": ids, "attention_mask": mask, "token_types": types},
        ["memory", "state"],
        folder / ENCODER_ONNX,
        opset=opset,
    )
    with torch.no_grad():
        memory, state = model.forward_encoder(ids, mask, types)
    prev = torch.tensor([len(OUTPUT_VOCAB) + 3, 5], dtype=torch.int64)
    step_report = export_onnx(
        _StepGraph(model),
        {"prev": prev, "state": state, "memory": memory, "attention_mask": mask},
        ["logits", "state_out"],
        folder / STEP_ONNX,
        opset=opset,
    )
    return {"encoder": encoder_report, "decoder_step": step_report}


PARITY_RECORDS = 20
"""Records whose greedy program tokens an export compares, ONNX against torch, by default."""


def greedy_token_parity(
    model: ProgramGenerator, onnx_folder: str | Path, model_folder: str | Path, records: Sequence[QARecord]
) -> dict[str, Any]:
    """Greedy program tokens of ``model`` and of its ONNX export in ``onnx_folder`` on ``records``, each
    read with its top-k retrieved units by the tokenizer, retriever and settings of ``model_folder``.

    Returns:
        ``{"count", "equal", "mismatches": [{"id", "torch", "onnx"}]}``.
    """
    reader = ProgramPredictor(model_folder, backend=TorchBackend(model), rerank=False, lookup=False)
    onnx = OnnxBackend(onnx_folder)
    equal, mismatches = 0, []
    for record in records:
        encoded = reader.inputs.encode(make_example(record, reader.retriever.rank(record)[: reader.top_k]))
        a = greedy_decode(reader.backend, encoded, length=reader.length, pad_id=reader.inputs.pad_id)
        b = greedy_decode(onnx, encoded, length=reader.length, pad_id=reader.inputs.pad_id)
        if a.tokens == b.tokens:
            equal += 1
        else:
            mismatches.append({"id": record.id, "torch": list(a.tokens), "onnx": list(b.tokens)})
    return {"count": len(records), "equal": equal, "mismatches": mismatches}
