"""Language models to adapt: a base from the Hub or a local folder, or a fresh named tiny config;
the objective each one trains with; masked-LM collation; held-out perplexity.

Masked LM (encoders) uses ``DataCollatorForLanguageModeling`` (15% of tokens, 80/10/10
[MASK]/random/kept). Causal LM (decoders) predicts every next token. Perplexity is
``exp(mean NLL)`` over the predicted tokens: all of them for a causal LM; for a masked LM the
masked ones under a fixed masking seed, so before and after see the same masks (this is the
masked-LM perplexity of ``run_mlm``, not the much slower pseudo-perplexity).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vfm.platform.errors import VfmError
from vfm.platform.models.sources import resolve

FRESH_CONFIGS: dict[str, dict] = {
    "bert-tiny": {
        "family": "bert",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 256,
    },
    "bert-mini": {
        "family": "bert",
        "hidden_size": 256,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 1024,
    },
    "gpt2-tiny": {"family": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 2},
    "gpt2-mini": {"family": "gpt2", "n_embd": 256, "n_layer": 4, "n_head": 4},
}
"""``fresh:<name>`` bases: randomly initialised models on a tokenizer trained on the corpus
(WordPiece for BERT, byte-level BPE for GPT-2). Positions: 512."""

FRESH_TOKENIZER = {"bert": "wordpiece", "gpt2": "bpe"}
FRESH_OBJECTIVE = {"bert": "mlm", "gpt2": "clm"}


def fresh_family(base: str) -> str:
    """``"bert"`` or ``"gpt2"`` for a ``fresh:<name>`` base."""
    name = base.removeprefix("fresh:")
    if name not in FRESH_CONFIGS:
        raise VfmError(
            f"unknown fresh config {name!r}",
            where="base",
            fix=f"use one of {', '.join('fresh:' + n for n in FRESH_CONFIGS)}",
        )
    return FRESH_CONFIGS[name]["family"]


def fresh_model(base: str, tokenizer, seed: int = 0):
    """A randomly initialised ``fresh:<name>`` model sized to ``tokenizer``."""
    from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel

    spec = {k: v for k, v in FRESH_CONFIGS[base.removeprefix("fresh:")].items() if k != "family"}
    torch.manual_seed(seed)
    if fresh_family(base) == "bert":
        config = BertConfig(
            vocab_size=len(tokenizer), max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id, **spec
        )
        return BertForMaskedLM(config)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=512,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **spec,
    )
    return GPT2LMHeadModel(config)


LOCAL_ONLY = {"trust_remote_code": False, "local_files_only": True}
"""How every pretrained folder is read: :func:`vfm.platform.models.sources.resolve` has made it local."""


def load_tokenizer(base: str):
    """The tokenizer of ``base``: a packaged model's name, a local folder or a Hugging Face id
    (:func:`vfm.platform.models.sources.resolve`)."""
    from transformers import AutoTokenizer

    folder = str(resolve(base))
    try:
        return AutoTokenizer.from_pretrained(folder, **LOCAL_ONLY)
    except (OSError, ValueError) as err:
        raise VfmError(
            f"cannot load a tokenizer: {str(err).splitlines()[0]}",
            where=base,
            fix="pass a model folder with its tokenizer files (tokenizer.json)",
        ) from None


def resolve_objective(config, tokenizer, requested: str = "auto") -> str:
    """``"mlm"`` or ``"clm"`` for a model config. ``"auto"``: masked LM when the architecture has
    one, the tokenizer has a mask token and the checkpoint is not a decoder (``*ForCausalLM``,
    ``*LMHeadModel``, ``is_decoder``); so a bare encoder (``BertModel``, e.g. a sentence encoder)
    is adapted as a masked LM, as it was pretrained. Else causal LM when the architecture has one."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    can_mlm = config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and tokenizer.mask_token is not None
    can_clm = config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    if requested == "auto":
        architectures = config.architectures or []
        causal_arch = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)
        requested = "mlm" if can_mlm and not causal_arch and not config.is_decoder else "clm"
    if requested not in ("mlm", "clm"):
        raise VfmError(f"unknown objective {requested!r}", where="objective", fix='use "mlm", "clm" or "auto"')
    if (requested == "mlm" and not can_mlm) or (requested == "clm" and not can_clm):
        raise VfmError(
            f"a {config.model_type} model cannot be trained as {requested}",
            where="objective",
            fix="use the other objective, or auto",
        )
    return requested


def load_pretrained(base: str, objective: str = "auto"):
    """``(model, tokenizer, objective)`` from a packaged model's name, a local folder or a Hugging Face
    id (no remote code, safetensors weights)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM

    folder = str(resolve(base))
    tokenizer = load_tokenizer(folder)
    try:
        config = AutoConfig.from_pretrained(folder, **LOCAL_ONLY)
    except (OSError, ValueError) as err:
        raise VfmError(
            f"cannot load a model config: {str(err).splitlines()[0]}",
            where=base,
            fix="pass a Hugging Face model folder (config.json, weights, tokenizer)",
        ) from None
    objective = resolve_objective(config, tokenizer, objective)
    cls = AutoModelForMaskedLM if objective == "mlm" else AutoModelForCausalLM
    model = cls.from_pretrained(folder, config=config, **LOCAL_ONLY)
    return model, tokenizer, objective


def max_positions(model) -> int:
    config = model.config
    return int(getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 10**9)


def mlm_collator(tokenizer, mlm_probability: float = 0.15, seed: int | None = None):
    """``DataCollatorForLanguageModeling`` whose masks come from its own generator when seeded."""
    from transformers import DataCollatorForLanguageModeling

    collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=mlm_probability)
    if seed is not None:
        collator.generator = torch.Generator().manual_seed(seed)
    return collator


def lm_batch(blocks: torch.Tensor, objective: str, collator=None) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``labels`` for blocks [B, T]: masked copies for MLM, the blocks for CLM
    (the model shifts the labels itself)."""
    if objective == "mlm":
        return dict(collator(list(blocks)))
    return {"input_ids": blocks, "labels": blocks.clone()}


@torch.no_grad()
def perplexity(
    model,
    blocks: torch.Tensor,
    objective: str,
    tokenizer,
    batch_size: int = 16,
    mlm_probability: float = 0.15,
    seed: int = 1234,
) -> dict:
    """``{"perplexity", "loss", "tokens", "blocks"}`` of ``model`` on blocks [N, T] (eval mode,
    float32 logits); for MLM the masks come from ``seed``."""
    if len(blocks) == 0:
        return {"perplexity": None, "loss": None, "tokens": 0, "blocks": 0}
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    collator = mlm_collator(tokenizer, mlm_probability, seed) if objective == "mlm" else None
    nll, count = 0.0, 0
    for start in range(0, len(blocks), batch_size):
        batch = lm_batch(blocks[start : start + batch_size], objective, collator)
        logits = model(input_ids=batch["input_ids"].to(device)).logits.float()  # [B, T, V]
        labels = batch["labels"].to(device)  # [B, T]
        if objective == "clm":
            logits, labels = logits[:, :-1], labels[:, 1:]  # predict token t+1 from tokens <= t
        nll += F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="sum"
        ).item()
        count += int((labels != -100).sum())
    model.train(was_training)
    loss = nll / max(count, 1)
    return {"perplexity": round(math.exp(loss), 4), "loss": round(loss, 6), "tokens": count, "blocks": len(blocks)}


@torch.no_grad()
def pseudo_perplexity(model, blocks: torch.Tensor, tokenizer, batch_size: int = 64) -> dict:
    """Pseudo-perplexity of a masked LM (Salazar et al., 2020) on blocks [N, T]: every token that is
    not special is masked alone and scored from the rest of its block; ``exp`` of the mean negative
    log-likelihood. ``T`` forward passes per block, run ``batch_size`` masked copies at a time.

    Returns:
        ``{"pseudo_perplexity", "loss", "tokens", "blocks"}``.
    """
    if len(blocks) == 0:
        return {"pseudo_perplexity": None, "loss": None, "tokens": 0, "blocks": 0}
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)))
    nll, count = 0.0, 0
    for block in blocks:  # [T]
        positions = torch.nonzero(~torch.isin(block, special)).flatten()  # the tokens scored
        for start in range(0, len(positions), batch_size):
            chosen = positions[start : start + batch_size]  # [b]
            copies = block.repeat(len(chosen), 1)  # [b, T]
            rows = torch.arange(len(chosen))
            copies[rows, chosen] = tokenizer.mask_token_id
            logits = model(input_ids=copies.to(device)).logits.float()[rows, chosen]  # [b, V]
            nll += F.cross_entropy(logits, block[chosen].to(device), reduction="sum").item()
            count += len(chosen)
    model.train(was_training)
    loss = nll / max(count, 1)
    return {
        "pseudo_perplexity": round(math.exp(loss), 4),
        "loss": round(loss, 6),
        "tokens": count,
        "blocks": len(blocks),
    }
