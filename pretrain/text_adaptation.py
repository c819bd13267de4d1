"""Domain text adaptation: continued pretraining of a ``transformers`` language model on domain
text (masked LM for encoders, causal LM for decoders), with Lightning.

``adapt_text_model`` splits the corpora by document (held out: ``heldout_fraction``), prepares
the model and tokenizer (a fresh tokenizer for ``fresh:<name>`` bases; top-K domain tokens added
to a base tokenizer), mixes general text in by tokens, packs blocks, measures held-out
perplexity, trains (checkpointing into ``out_dir/checkpoints/last.ckpt`` and resuming from it
exactly: batches, masks and dropout are functions of the step) and measures again.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L
import torch

from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_json
from vfm.platform.training.settings import TrainSettings
from vfm.platform.training.trainer import fit, last_checkpoint
from vfm.pretrain.text_blocks import mix_by_tokens, pack_blocks, split_heldout, tokenize
from vfm.pretrain.text_corpus import Corpus, Document
from vfm.pretrain.text_models import max_positions, perplexity, pseudo_perplexity
from vfm.pretrain.text_prepare import prepare_model, save_pretrained_atomic
from vfm.pretrain.text_training import BlockStream, TextLmModule


@dataclass
class TextAdaptSettings(TrainSettings):
    """How to adapt: :class:`TrainSettings` (``max_steps`` optimiser steps, precision, devices,
    checkpoints) plus the recipe. ``objective="auto"`` picks MLM for masked-LM checkpoints, CLM
    for decoders.

    ``schedule_steps`` (default ``max_steps``) is the length of the warmup + decay schedule, so a
    run may be done in pieces (``max_steps`` 500, then 1000, same ``schedule_steps``).
    ``add_domain_tokens`` extends a base tokenizer (ignored for ``fresh:`` bases, whose
    ``vocab_size``-token tokenizer is trained on the corpus).

    ``lora_rank`` > 0 trains low-rank adapters (``peft``, rank ``lora_rank``, scale
    ``lora_alpha / lora_rank``) on every linear layer instead of all weights (the input embeddings
    train too when domain tokens were added), and merges them into the saved model, so it reloads
    with ``AutoModel.from_pretrained`` like a fully trained one. 0: every weight trains.
    """

    max_steps: int | None = 1000
    objective: str = "auto"
    block_size: int = 128
    batch_size: int = 32
    schedule_steps: int | None = None
    lr: float = 5e-5
    lr_schedule: str = "linear"
    warmup_steps: int = 100
    weight_decay: float = 0.01
    gradient_clip: float = 1.0
    accumulate_grad_batches: int = 1
    mlm_probability: float = 0.15
    mix_ratio_general: float = 0.0
    add_domain_tokens: int = 0
    min_token_count: int = 5
    vocab_size: int = 8000
    heldout_fraction: float = 0.05
    eval_max_blocks: int = 256
    eval_batch_size: int = 16
    pseudo_perplexity_blocks: int = 16
    lora_rank: int = 0
    lora_alpha: int = 32

    RESUMABLE_CHANGES = TrainSettings.RESUMABLE_CHANGES | {
        "eval_max_blocks",
        "eval_batch_size",
        "pseudo_perplexity_blocks",
    }

    def comparable(self) -> dict:
        """As :meth:`TrainSettings.comparable`, with the schedule's effective length (a run done in
        pieces gives ``schedule_steps`` first and may leave it to ``max_steps`` at the end)."""
        return {**super().comparable(), "schedule_steps": self.schedule_steps or self.max_steps}

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check(
            (
                "max_steps",
                self.max_steps is not None,
                "a number of optimiser steps (text adaptation counts steps, not epochs)",
            ),
            ("objective", self.objective in ("auto", "mlm", "clm"), '"auto", "mlm" or "clm"'),
            ("lr_schedule", self.lr_schedule in ("linear", "cosine"), '"linear" or "cosine"'),
            ("batch_size", self.batch_size >= 1, "a batch size >= 1"),
            ("lr", self.lr > 0, "a learning rate > 0, e.g. 5e-5"),
            ("accumulate_grad_batches", self.accumulate_grad_batches >= 1, "a count >= 1"),
            ("block_size", self.block_size >= 8, "e.g. 128"),
            ("mlm_probability", 0 < self.mlm_probability < 1, "e.g. 0.15"),
            ("mix_ratio_general", 0 <= self.mix_ratio_general < 1, "0 (domain only) up to e.g. 0.5"),
            ("heldout_fraction", 0 <= self.heldout_fraction < 1, "e.g. 0.05"),
            ("lora_rank", self.lora_rank >= 0, "0 (train every weight) or an adapter rank, e.g. 16"),
            ("lora_alpha", self.lora_alpha >= 1, "e.g. twice lora_rank"),
        )


def with_lora(model, rank: int, alpha: int, *, train_embeddings: bool):
    """``model`` wrapped by ``peft`` with rank-``rank`` adapters on every linear layer but the output
    head; only the adapters (and the input embeddings, with ``train_embeddings``: then a model whose
    output layer shared them saves the two untied) train."""
    from peft import LoraConfig, get_peft_model

    embeddings = model.get_input_embeddings()
    names = [name for name, module in model.named_modules() if module is embeddings]
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=0.0,
        target_modules="all-linear",
        modules_to_save=[names[0].rsplit(".", 1)[-1]] if train_embeddings and names else None,
        bias="none",
    )
    with warnings.catch_warnings():  # GPT-2's Conv1D layers: peft sets fan_in_fan_out itself, and says so
        warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")
        return get_peft_model(model, config)


def _documents(corpus: Corpus | list[Document] | None) -> tuple[list[Document], dict]:
    if corpus is None:
        return [], {}
    if isinstance(corpus, Corpus):
        return corpus.documents, corpus.report
    return list(corpus), {"documents": len(corpus)}


def _evaluate(model, sets: dict[str, torch.Tensor], objective: str, tokenizer, s: TextAdaptSettings) -> dict:
    """Perplexity on each set (and, for a masked LM, pseudo-perplexity on its first
    ``pseudo_perplexity_blocks`` blocks), on the GPU when training may use one; the model returns to the CPU."""
    use_gpu = torch.cuda.is_available() and s.accelerator in ("auto", "gpu", "cuda")
    model.to("cuda" if use_gpu else "cpu")
    result = {
        name: perplexity(model, blocks, objective, tokenizer, s.eval_batch_size, s.mlm_probability, s.seed + 1234)
        for name, blocks in sets.items()
    }
    if objective == "mlm" and s.pseudo_perplexity_blocks:
        for name, blocks in sets.items():
            pseudo = pseudo_perplexity(model, blocks[: s.pseudo_perplexity_blocks], tokenizer, 4 * s.eval_batch_size)
            result[name]["pseudo_perplexity"] = pseudo["pseudo_perplexity"]
    model.cpu()
    return result


def adapt_text_model(
    base: str,
    domain_corpus: Corpus | list[Document],
    general_corpus: Corpus | list[Document] | None,
    settings: TextAdaptSettings,
    out_dir: str | Path,
    progress: bool = True,
    extra_eval: dict[str, list[Document]] | None = None,
) -> dict:
    """Continue pretraining ``base`` (a Hub id, a local folder or ``fresh:<name>``) on the domain
    corpus, mixing in ``mix_ratio_general`` of general text by tokens.

    Writes into ``out_dir``: ``settings.json``, ``tokenizer/`` and ``prepared.json`` (what a resume
    rebuilds from), ``checkpoints/last.ckpt``, ``logs/``, ``model/`` (``save_pretrained`` model and
    tokenizer) and ``metrics.json``. ``extra_eval`` names further held-out document sets to measure.

    Returns the metrics: ``perplexity`` (``{set: {"before", "after"}}`` for ``domain``, ``general``
    when a general corpus is given, and each ``extra_eval`` set), ``before``/``after`` (full
    perplexity dicts), ``train`` (``steps``, ``resumed_from_step``, ``seconds``, ``tokens_per_s``,
    ``final_loss``, ``precision``, ``blocks``, ``parameters``: total and trained), ``corpus``, ``vocabulary``, ``objective``, ``files``.
    """
    out_dir, s = Path(out_dir), settings
    out_dir.mkdir(parents=True, exist_ok=True)
    last = last_checkpoint(out_dir)
    atomic_write_json(out_dir / "settings.json", {"base": base, "settings": asdict(s)})
    L.seed_everything(s.seed, workers=True, verbose=False)

    domain_docs, domain_report = _documents(domain_corpus)
    general_docs, general_report = _documents(general_corpus)
    d_train, d_held = split_heldout(domain_docs, s.heldout_fraction, s.seed)
    g_train, g_held = split_heldout(general_docs, s.heldout_fraction, s.seed)
    if not d_train:
        raise VfmError(
            "the domain corpus has no training documents",
            where="domain_corpus",
            fix="pass a non-empty corpus (check the exclusions)",
        )
    if s.lora_rank and base.startswith("fresh:"):
        raise VfmError(
            "LoRA adapts pretrained weights, and a fresh: base has none",
            where="TextAdaptSettings.lora_rank",
            fix="set lora_rank=0 for a fresh: base, or pass a pretrained base",
        )
    trained_on = d_train + (g_train if s.mix_ratio_general > 0 else [])  # what a fresh tokenizer learns from
    model, tokenizer, objective, vocab = prepare_model(
        base, s, [d.text for d in trained_on], out_dir, resume=last.exists()
    )
    if s.block_size > max_positions(model):
        raise VfmError(
            f"block_size {s.block_size} exceeds the model's {max_positions(model)} positions",
            where="TextAdaptSettings.block_size",
            fix=f"use at most {max_positions(model)}",
        )
    separator = tokenizer.sep_token_id if objective == "mlm" else tokenizer.eos_token_id
    wrap = (tokenizer.cls_token_id, tokenizer.sep_token_id) if objective == "mlm" else None
    if separator is None or (wrap and None in wrap):
        raise VfmError(
            "the tokenizer lacks the separator/[CLS] tokens packing needs",
            where=base,
            fix="use a tokenizer with sep/cls tokens (MLM) or an eos token (CLM)",
        )

    def blocks(docs: list[Document]) -> torch.Tensor:  # [N, block_size]
        return pack_blocks(tokenize(tokenizer, [d.text for d in docs]), s.block_size, separator, wrap)

    mixed, mix = mix_by_tokens(
        tokenize(tokenizer, [d.text for d in d_train]),
        tokenize(tokenizer, [d.text for d in g_train]),
        s.mix_ratio_general,
        s.seed,
    )
    train_blocks = pack_blocks(mixed, s.block_size, separator, wrap)  # [N, T]
    if len(train_blocks) == 0:
        raise VfmError(
            f"the training text does not fill one block of {s.block_size} tokens",
            where="domain_corpus",
            fix="pass more text or lower block_size",
        )
    eval_sets = {"domain": blocks(d_held)}
    if general_docs:
        eval_sets["general"] = blocks(g_held)
    eval_sets.update({name: blocks(docs) for name, docs in (extra_eval or {}).items()})
    eval_sets = {name: b[: s.eval_max_blocks] for name, b in eval_sets.items()}

    before_file = out_dir / "metrics_before.json"
    if last.exists() and before_file.exists():
        before = json.loads(before_file.read_text())
    else:
        before = _evaluate(model, eval_sets, objective, tokenizer, s)
        atomic_write_json(before_file, before)

    if s.lora_rank:
        model = with_lora(model, s.lora_rank, s.lora_alpha, train_embeddings=bool(vocab.get("added")))
    parameters = {
        "total": sum(p.numel() for p in model.parameters()),
        "trained": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    stream = BlockStream(train_blocks, s.batch_size, objective, tokenizer, s.mlm_probability, s.seed)
    module = TextLmModule(model.train(), s, stream)  # from_pretrained returns eval mode: dropout off
    loader = torch.utils.data.DataLoader(stream, batch_size=None)
    run = fit(
        module,
        s,
        out_dir,
        train=loader,
        progress=progress,
        log_every_n_steps=10,
        accumulate_grad_batches=s.accumulate_grad_batches,
        gradient_clip_val=s.gradient_clip,
        use_distributed_sampler=False,
    )

    model = module.model.cpu()
    if s.lora_rank:
        model = model.merge_and_unload()  # a plain model again: the adapters folded into its weights
    after = _evaluate(model, eval_sets, objective, tokenizer, s)
    tokens_run = (run.steps - run.resumed_from_step) * s.batch_size * s.accumulate_grad_batches * s.block_size
    metrics = {
        "base": base,
        "objective": objective,
        "perplexity": {
            name: {"before": before[name]["perplexity"], "after": after[name]["perplexity"]} for name in eval_sets
        },
        **(
            {
                "pseudo_perplexity": {
                    name: {"before": before[name].get("pseudo_perplexity"), "after": after[name]["pseudo_perplexity"]}
                    for name in eval_sets
                }
            }
            if "pseudo_perplexity" in after.get("domain", {})
            else {}
        ),
        "before": before,
        "after": after,
        "train": {
            **run.summary(),
            "blocks": len(train_blocks),
            "parameters": parameters,
            "tokens_per_s": round(tokens_run * run.trainer.world_size / max(run.seconds, 1e-9), 1),
        },
        "corpus": {
            "domain": domain_report,
            "general": general_report,
            "general_sources": sorted({d.source for d in general_docs}),
            "documents": {
                "domain_train": len(d_train),
                "domain_heldout": len(d_held),
                "general_train": len(g_train),
                "general_heldout": len(g_held),
            },
            "mix": mix,
        },
        "vocabulary": vocab,
        "files": [],
    }
    if run.trainer.is_global_zero:
        save_pretrained_atomic(model, tokenizer, out_dir / "model", base=base)
        metrics["files"] = [str(out_dir / n) for n in ("model", "metrics.json", "checkpoints/last.ckpt")]
        atomic_write_json(out_dir / "metrics.json", metrics)
    return metrics
