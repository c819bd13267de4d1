"""Training the finance retriever and program generator, exporting them, and scoring them.

    python -m vfm.plugins.finance.generator_training --data-dir DATA --out OUT [--synthetic-only] [--minutes 14]

Steps, each logged with where its outputs went:

1. data: synthetic statements, plus (unless ``--synthetic-only``) the real training
   records of :mod:`data_splits` (FinQA train, TAT-QA train contexts, ConvFinQA without
   FinQA-dev documents); a hashed 15 % of the real training documents (and some synthetic
   records) are kept aside for model selection;
2. the retriever (``retriever.json``) is fitted on the training records' gold evidence;
   with ``--weak-labels``, it then ranks the evidence of the unlabelled FinQA questions
   (:attr:`RealData.unlabelled`) for :mod:`program_search`, and the questions a program
   is found for join the generator's training records, the usual hashed 15 % of their
   documents its selection records (selection compares executions with their true answers,
   so a wrong found program cannot mislead it);
3. a word-level tokenizer (``tokenizer.json``) is trained on the training text (or the
   Hugging Face encoder's own tokenizer is copied);
4. the generator reads each training question with its top-k retrieved units, the gold
   units swapped in for the lowest-ranked others, and learns the gold program (Lightning,
   CPU by default, stopped by ``--minutes``); the epoch with the best execution accuracy on
   the selection records is kept (``generator.safetensors``); with ``--members K``, K
   generators are trained this way one after another (seeds ``seed``, ``seed + 1``, ...) and
   decode as one ensemble;
5. export: ``encoder.onnx`` and ``decoder_step.onnx`` (the second and later generators in
   ``members/1``, ...), with ``parity.json`` (ONNX vs torch outputs, and greedy program tokens
   on selection records, for each generator);
6. the beam re-ranker (``reranker.json``, :mod:`reranker_training`), fitted on the selection
   records' beams and kept when it beats the generator's own order in cross-validation;
7. the table lookup (``lookup.json``, :mod:`lookup`), fitted on the training questions whose
   answers are table cells (TAT-QA spans) and on synthetic ones, the text answerer
   (``text_answer.json``, :mod:`text_answer`) and the scale model (``scale.json``,
   :mod:`scale`), fitted on the TAT-QA training questions (:mod:`answer_fitting`);
8. evaluation with the exported model (no torch): FinQA dev, TAT-QA held-out, synthetic
   test, greedy and beam (the generator's order) and re-ranked (and the first generator alone,
   greedy, when there are several), into ``metrics.json``.

The resolved settings are written to ``config.json``; that file alone reproduces the run
(``--config OUT/config.json``). Outputs go to ``--out``, never into the repository.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import shutil
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_json
from vfm.plugins.finance.answer_fitting import fit_answer_models
from vfm.plugins.finance.data_splits import RealData, load_real_data, selection_split
from vfm.plugins.finance.decode import (
    MEMBERS_DIR,
    SETTINGS_FILE,
    SETTINGS_FORMAT,
    OnnxBackend,
    ProgramPredictor,
    greedy_decode,
    parity_passed,
)
from vfm.plugins.finance.evaluate import evaluate_records, score_predictions
from vfm.plugins.finance.features import (
    OUTPUT_VOCAB,
    SPECIAL_TOKENS,
    EncodedInput,
    InputEncoder,
    ProgramTargets,
    make_example,
    program_targets,
    record_question,
    split_words,
)
from vfm.plugins.finance.generator import (
    SCRATCH,
    GeneratorConfig,
    ProgramGenerator,
    TorchBackend,
    build_generator,
    collate,
    export_generator,
    save_generator,
)
from vfm.plugins.finance.program_search import label_quality, label_records
from vfm.plugins.finance.records import QARecord
from vfm.plugins.finance.reranker import FILE as RERANKER_FILE
from vfm.plugins.finance.reranker_training import fit_reranker
from vfm.plugins.finance.retriever import EvidenceRetriever, retrieval_recall
from vfm.plugins.finance.synthetic import generate

log = logging.getLogger("vfm.finance")


@dataclass
class TrainingSettings:
    """Everything a run depends on (written to ``config.json``).

    Attributes:
        data_dir: the real data folder (``$VFM_DATA_DIR``); None trains on synthetic data only.
        synthetic_only: ignore the real data for training and selection (it is still
            used for evaluation when ``data_dir`` is set).
        synthetic: synthetic training records.
        real_views: how many inputs each real training question is seen with per epoch (the
            retrieved units, then other draws of distractor units in shuffled order).
        minutes: stop training after this long (selection included).
        epochs: the most epochs (the learning-rate schedule spans them).
        batch_size, lr, weight_decay, warmup_steps: the optimiser (AdamW, warmup then cosine).
        encoder_lr: the encoder's peak learning rate (None: ``lr``), e.g. lower for a
            pretrained Hugging Face encoder.
        top_k: evidence units the generator reads.
        max_len, max_question_len: input lengths, in tokens.
        vocab_size, min_frequency: the word-level tokenizer (scratch encoder).
        beam_size: the beam of the exported model's decoding.
        encoder: ``"scratch"`` or a local Hugging Face model folder.
        d_model, n_layers, n_heads, d_ff, dropout: the model (see :class:`GeneratorConfig`); the
            reported real-data recipe uses dropout 0.3, the short synthetic demo recipe 0.1.
        threads: torch CPU threads.
        accelerator, devices: passed to the Lightning Trainer.
        select_synthetic, eval_synthetic: synthetic selection records (used when there is no
            real data to select on) and synthetic test records.
        parity_records: selection records whose greedy program tokens are compared,
            ONNX against torch.
        limit_eval: score only the first N records of each evaluation set (None: all).
        seed: the seed of the synthetic data, the split of the batches and the weights.
        weak_labels: also train on the unlabelled FinQA questions, with the programs
            :mod:`program_search` finds for their answers.
        convfinqa_turns: ``"final"``: each ConvFinQA conversation's final turn; ``"all"``: also its
            earlier turns that compute something (measured: no gain, see docs/results/finance.md).
        canonical_order: train on the two arguments of ``add`` and ``multiply`` in one order (earlier
            steps' results, then numbers as they come in the input, then constants) instead of the
            annotator's (:func:`vfm.plugins.finance.features.program_targets`; measured: greedy decoding
            gains, re-ranked answers do not move, see docs/results/finance.md).
        lookup: fit the table lookup (``lookup.json``, :mod:`vfm.plugins.finance.lookup`) that answers
            questions asking for table cells, and the text answerer (``text_answer.json``) that
            answers with a sentence; each is kept when enough training answers are of its kind.
        lookup_synthetic: synthetic cell questions (:func:`generate_lookups`) added to the lookup's
            training questions (the real training questions, else the synthetic ones).
        members: generators trained on the same inputs (member k with seed ``seed + k``; ``minutes``
            bounds each), decoded as one log-linear ensemble (:class:`vfm.plugins.finance.decode.EnsembleBackend`).
    """

    data_dir: str | None = None
    synthetic_only: bool = False
    synthetic: int = 3000
    real_views: int = 3
    minutes: float = 14.0
    epochs: int = 9
    batch_size: int = 32
    lr: float = 2e-3
    encoder_lr: float | None = None
    weight_decay: float = 0.01
    warmup_steps: int = 100
    top_k: int = 4
    max_len: int = 256
    max_question_len: int = 64
    vocab_size: int = 10000
    min_frequency: int = 2
    beam_size: int = 5
    encoder: str = SCRATCH
    d_model: int = 128
    n_layers: int = 3
    n_heads: int = 4
    d_ff: int = 512
    dropout: float = 0.1
    threads: int = 1
    accelerator: str = "cpu"
    devices: int = 1
    select_synthetic: int = 50
    eval_synthetic: int = 200
    parity_records: int = 20
    limit_eval: int | None = None
    seed: int = 0
    weak_labels: bool = False
    convfinqa_turns: str = "final"
    members: int = 1
    canonical_order: bool = False
    lookup: bool = True
    lookup_synthetic: int = 300

    def __post_init__(self) -> None:
        if self.members < 1:
            raise VfmError(f"members must be at least 1, got {self.members}", where="TrainingSettings.members",
                           fix="pass --members 1 (one generator) or more")

    def model_config(self, vocab_size: int) -> GeneratorConfig:
        return GeneratorConfig(vocab_size=vocab_size, encoder=self.encoder, d_model=self.d_model,
                               n_layers=self.n_layers, n_heads=self.n_heads, d_ff=self.d_ff, max_len=self.max_len,
                               dropout=self.dropout)


def train_word_tokenizer(texts: Sequence[str], vocab_size: int = 10000, min_frequency: int = 2):
    """A word-level ``tokenizers.Tokenizer`` over :func:`split_words` words of ``texts``;
    words fed pre-tokenised map to one token each (``[UNK]`` when unknown)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    tokenizer.train_from_iterator((" ".join(split_words(text)) for text in texts), trainer=trainer)
    return tokenizer


def record_texts(records: Sequence[QARecord]) -> list[str]:
    """The questions and every evidence unit of ``records``."""
    return [text for r in records for text in (record_question(r), *r.evidence().values())]


def training_units(record: QARecord, ranked: Sequence[str], top_k: int,
                   rng: np.random.Generator | None = None) -> list[str]:
    """The ``top_k`` best-ranked units, with the gold units swapped in for the lowest-ranked
    others (all gold units when there are more than ``top_k``), in ranked order.

    With ``rng``, another view of the same question: the other units are drawn from the
    ``2 * top_k`` best-ranked ones and the order is shuffled.
    """
    gold = set(record.gold_evidence)
    others = [ident for ident in ranked if ident not in gold]
    room = max(top_k - len(gold), 0)
    if rng is None:
        chosen = gold | set(others[:room])
        return [ident for ident in ranked if ident in chosen]
    pool = others[: 2 * top_k]
    drawn = [pool[int(i)] for i in rng.choice(len(pool), size=min(room, len(pool)), replace=False)]
    units = [ident for ident in ranked if ident in gold] + drawn
    return [units[int(i)] for i in rng.permutation(len(units))]


def make_training_examples(records: Sequence[QARecord], retriever: EvidenceRetriever, inputs: InputEncoder,
                           top_k: int, views: int = 1, seed: int = 0,
                           canonical: bool = False) -> tuple[list[tuple[EncodedInput, ProgramTargets]], int]:
    """``(examples, skipped)``: the teacher-forcing examples of the records with a gold
    program, ``views`` per record (the first as :func:`training_units` ranks them, the others
    drawn with a generator seeded by ``seed``); skipped: views whose program has an argument
    that is not in the input. ``canonical``: see :func:`program_targets`."""
    rng = np.random.default_rng(seed)
    examples, skipped = [], 0
    for record in records:
        if record.program is None:
            continue
        ranked = retriever.rank(record)
        for view in range(views):
            units = training_units(record, ranked, top_k, rng if view else None)
            encoded = inputs.encode(make_example(record, units))
            targets = program_targets(record.program, encoded, canonical=canonical)
            if targets is None:
                skipped += 1
            else:
                examples.append((encoded, targets))
    return examples, skipped


class LengthBuckets(torch.utils.data.Sampler):
    """Batches of examples of similar length (less padding), in a new random order each epoch.

    Examples are shuffled, cut into pools of ``pool`` batches, sorted by length within a
    pool and batched; the batches are then shuffled.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, pool: int = 50):
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.pool = pool * batch_size
        self.rng = np.random.default_rng(seed)

    def __iter__(self):
        order = self.rng.permutation(len(self.lengths))
        batches = []
        for start in range(0, len(order), self.pool):
            chunk = order[start: start + self.pool]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i: i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        for index in self.rng.permutation(len(batches)):
            yield batches[index]

    def __len__(self) -> int:
        pools = [min(self.pool, len(self.lengths) - start) for start in range(0, len(self.lengths), self.pool)]
        return sum(-(-size // self.batch_size) for size in pools)


class GeneratorModule(L.LightningModule):
    """The generator's optimiser, schedule and model selection.

    After every epoch the model decodes the selection records greedily (retrieved
    evidence, as at test time); the weights of the epoch with the best execution accuracy
    are kept in ``best_state``.
    """

    def __init__(self, model: ProgramGenerator, settings: TrainingSettings, total_steps: int,
                 select: Any = None):
        super().__init__()
        self.model = model
        self.settings = settings
        self.total_steps = max(total_steps, 1)
        self.select = select
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_score = -1.0
        self.history: list[dict[str, float]] = []

    def training_step(self, batch, batch_idx):
        loss = self.model.forward_loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def on_train_epoch_end(self):
        loss = float(self.trainer.callback_metrics.get("train/loss", torch.tensor(float("nan"))))
        score = self.select(self.model) if self.select is not None else -loss
        self.model.train()
        self.log("select/execution_accuracy", score)
        self.history.append({"epoch": self.current_epoch, "train_loss": loss, "select_execution_accuracy": score})
        log.info("epoch %d: train loss %.4f, selection execution accuracy %.4f", self.current_epoch, loss, score)
        if score > self.best_score:
            self.best_score = score
            self.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in self.model.state_dict().items()})

    def configure_optimizers(self):
        groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
        for name, parameter in self.model.named_parameters():
            decays = parameter.ndim >= 2 and "embed" not in name
            groups.setdefault((name.startswith("encoder."), decays), []).append(parameter)
        encoder_lr = self.settings.encoder_lr or self.settings.lr
        optimizer = torch.optim.AdamW([
            {"params": params, "lr": encoder_lr if in_encoder else self.settings.lr,
             "weight_decay": self.settings.weight_decay if decays else 0.0}
            for (in_encoder, decays), params in groups.items()])
        warmup, total = self.settings.warmup_steps, self.total_steps

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min((step - warmup) / max(total - warmup, 1), 1.0)
            return 0.1 + 0.9 * 0.5 * (1.0 + np.cos(np.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def train_generator(settings: TrainingSettings, out: str | Path) -> dict[str, Any]:
    """Run steps 1-8 of the module doc; returns (and writes) ``metrics.json``'s content."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    torch.set_num_threads(settings.threads)
    L.seed_everything(settings.seed, verbose=False)
    atomic_write_json(out / "config.json", asdict(settings))

    # 1. data
    real = load_real_data(settings.data_dir, convfinqa_turns=settings.convfinqa_turns) if settings.data_dir else None
    synthetic = generate(settings.synthetic, seed=settings.seed)
    select_synthetic = generate(settings.select_synthetic, seed=settings.seed + 1)
    real_fit, real_select = selection_split(real.train) if real and not settings.synthetic_only else ([], [])
    select_synthetic = [] if real_select else select_synthetic
    log.info("data: %d synthetic + %d real training records; %d real + %d synthetic selection records",
             len(synthetic), len(real_fit), len(real_select), len(select_synthetic))

    # 2. retriever
    retriever = EvidenceRetriever().fit(real_fit + synthetic[:300])
    retriever.save(out / "retriever.json")
    log.info("retriever: recall %s on the selection records -> %s", retrieval_recall(retriever, real_select
                                                                                      + select_synthetic),
             out / "retriever.json")

    weak_fit: list[QARecord] = []
    weak_select: list[QARecord] = []
    weak_report: dict[str, Any] = {}
    if settings.weak_labels and real and not settings.synthetic_only:
        quality = label_quality([r for r in real_select if r.source != "tatqa"], retriever)
        weak_fit, weak_select = weak_labelled(real, retriever)
        weak_report = {"unlabelled": len(real.unlabelled), "labelled": len(weak_fit) + len(weak_select),
                       "selection": len(weak_select), "selection_quality": quality}
        log.info("weak labels: programs found for %d of %d unlabelled questions (%d kept for selection); on the "
                 "FinQA and ConvFinQA selection records the search finds the gold program for %d of %d labelled",
                 weak_report["labelled"], len(real.unlabelled), len(weak_select), quality["correct"],
                 quality["labelled"])
    real_fit, real_select = real_fit + weak_fit, real_select + weak_select

    # 3. tokenizer
    if settings.encoder == SCRATCH:
        tokenizer = train_word_tokenizer(record_texts(real_fit + synthetic), settings.vocab_size,
                                         settings.min_frequency)
        tokenizer.save(str(out / "tokenizer.json"))
    else:
        source = Path(settings.encoder) / "tokenizer.json"
        if not source.is_file():
            raise VfmError("the encoder folder has no tokenizer.json", where=str(source.parent),
                           fix="save the encoder's fast tokenizer beside it (tokenizer.save_pretrained(folder))")
        shutil.copyfile(source, out / "tokenizer.json")
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    write_settings(out, top_k=settings.top_k, max_len=settings.max_len, max_question_len=settings.max_question_len,
                   beam_size=settings.beam_size, members=settings.members)
    inputs = InputEncoder(tokenizer, settings.max_len, settings.max_question_len)

    # 4. generator
    real_examples, real_skipped = make_training_examples(real_fit, retriever, inputs, settings.top_k,
                                                         views=settings.real_views, seed=settings.seed,
                                                         canonical=settings.canonical_order)
    synthetic_examples, synthetic_skipped = make_training_examples(synthetic, retriever, inputs, settings.top_k,
                                                                   canonical=settings.canonical_order)
    examples = synthetic_examples + real_examples
    log.info("generator: %d examples (%d real: %d views of each question; %d synthetic); %d real and %d synthetic "
             "views skipped (an argument not in the input)", len(examples), len(real_examples), settings.real_views,
             len(synthetic_examples), real_skipped, synthetic_skipped)
    if not examples:
        raise VfmError("no training example", where="generator_training", fix="check the data folder")
    select_records = with_programs(real_select or select_synthetic)
    members = []
    for member in range(settings.members):
        folder = out if member == 0 else out / MEMBERS_DIR / str(member)
        trained = _train_member(member, settings, examples, tokenizer.get_vocab_size(), out, select_records)

        # 5. export and parity
        reports = write_model_folder(folder, trained["model"])
        trained["parity"] = {**reports, "greedy_tokens": _token_parity(trained["model"], folder, inputs, retriever,
                                                                       select_records, settings)}
        log.info("export: ONNX greedy tokens equal torch on %d/%d selection records -> %s",
                 trained["parity"]["greedy_tokens"]["equal"], trained["parity"]["greedy_tokens"]["count"], folder)
        members.append(trained)
    parity = members[0]["parity"] | ({"members": [m["parity"] for m in members[1:]]} if len(members) > 1 else {})
    atomic_write_json(out / "parity.json", parity)

    # 6. the beam re-ranker, fitted on the selection records with the exported model
    reranking = fit_reranker(out, select_records)
    log.info("re-ranker: selection execution accuracy %s (generator's order) -> %s (cross-validated); %s",
             reranking["first_running"], reranking["reranked_cross_validated"],
             f"kept -> {out / RERANKER_FILE}" if reranking["kept"] else "not kept")

    # 7. the table lookup, the text answerer and the scale model, fitted on the training questions
    use_real = real is not None and not settings.synthetic_only
    answer_reports = fit_answer_models(out, real.train if use_real else [], synthetic, retriever,
                                       numeric=real.unlabelled if use_real else [], lookup=settings.lookup,
                                       synthetic_lookups=settings.lookup_synthetic, seed=settings.seed)
    for name, report in answer_reports.items():
        log.info("%s: fitted on %d questions; %s", name, report.get("questions", 0),
                 "kept" if report["kept"] else report["why"])

    # 8. evaluation with the exported model
    evaluation = _evaluate(out, real, settings)
    summaries = [{key: m[key] for key in ("train_seconds", "epochs_run", "history", "best_selection_execution_accuracy")}
                 for m in members]
    metrics = {
        "settings": asdict(settings), "train_seconds": sum(m["train_seconds"] for m in summaries),
        "total_seconds": time.time() - started, **{k: v for k, v in summaries[0].items() if k != "train_seconds"},
        "members": summaries,
        "examples": {"real": len(real_examples), "synthetic": len(synthetic_examples), "real_skipped": real_skipped,
                     "synthetic_skipped": synthetic_skipped},
        "parameters": sum(p.numel() for m in members for p in m["model"].parameters()),
        "weak_labels": weak_report,
        "reranker": reranking,
        **answer_reports,
        "parity_passed": all(parity_passed(m["parity"]) for m in members),
        "evaluation": evaluation,
    }
    atomic_write_json(out / "metrics.json", metrics)
    log.info("done in %.0f s -> %s", time.time() - started, out / "metrics.json")
    return metrics


def _train_member(member: int, settings: TrainingSettings, examples: list, vocab_size: int, out: Path,
                  select_records: Sequence[QARecord]) -> dict[str, Any]:
    """Train generator number ``member`` (seed ``settings.seed + member``: its weights and batch order)
    and keep its epoch with the best selection execution accuracy.

    Returns:
        ``{"model", "train_seconds", "epochs_run", "history", "best_selection_execution_accuracy"}``.
    """
    L.seed_everything(settings.seed + member, verbose=False)
    model = build_generator(settings.model_config(vocab_size))

    def select(current: ProgramGenerator) -> float:
        predictor = ProgramPredictor(out, backend=TorchBackend(current), beam_size=1)
        predictions = [predictor.predict_record(r) for r in select_records]
        return score_predictions(predictions, select_records)["program"]["execution_accuracy"]

    loader = DataLoader(examples, collate_fn=collate, batch_sampler=LengthBuckets(
        [len(encoded) for encoded, _ in examples], settings.batch_size, settings.seed + member))
    module = GeneratorModule(model, settings, settings.epochs * len(loader), select)
    trainer = L.Trainer(max_epochs=settings.epochs, max_time={"minutes": settings.minutes},
                        accelerator=settings.accelerator, devices=settings.devices, gradient_clip_val=1.0,
                        enable_checkpointing=False, logger=CSVLogger(out, name="logs", version=member),
                        enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=20)
    started = time.time()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(module, loader)
    train_seconds = time.time() - started
    if module.best_state is not None:
        model.load_state_dict(module.best_state)
    log.info("generator %d of %d: trained %.0f s, best selection execution accuracy %.4f", member + 1,
             settings.members, train_seconds, module.best_score)
    return {"model": model.cpu().eval(), "train_seconds": train_seconds, "epochs_run": len(module.history),
            "history": module.history, "best_selection_execution_accuracy": module.best_score}


def weak_labelled(real: RealData, retriever: EvidenceRetriever) -> tuple[list[QARecord], list[QARecord]]:
    """``(fit, select)`` unlabelled FinQA questions with the programs the search finds for them."""
    return selection_split(label_records(real.unlabelled, retriever))


def with_programs(records: Sequence[QARecord]) -> list[QARecord]:
    """The records that have a (gold or found) program: those selection is scored on."""
    return [r for r in records if r.program is not None]


def selection_records(settings: TrainingSettings, retriever: EvidenceRetriever) -> list[QARecord]:
    """The selection records of a run with these settings and its retriever (as step 1-2 split them)."""
    if settings.data_dir and not settings.synthetic_only:
        real = load_real_data(settings.data_dir, convfinqa_turns=settings.convfinqa_turns)
        select = selection_split(real.train)[1]
        if settings.weak_labels:
            select += weak_labelled(real, retriever)[1]
        if select:
            return with_programs(select)
    return with_programs(generate(settings.select_synthetic, seed=settings.seed + 1))


def write_settings(out: str | Path, *, top_k: int, max_len: int, max_question_len: int, beam_size: int,
                   members: int = 1) -> None:
    """Write the decoding settings (``finance_model.json``) a :class:`ProgramPredictor` reads."""
    atomic_write_json(Path(out) / SETTINGS_FILE, {"format": SETTINGS_FORMAT, "top_k": top_k, "max_len": max_len,
                                                  "max_question_len": max_question_len, "beam_size": beam_size,
                                                  "members": members, "output_vocab": list(OUTPUT_VOCAB)})


def write_model_folder(out: str | Path, model: ProgramGenerator, *, tokenizer: Any = None,
                       retriever: EvidenceRetriever | None = None, top_k: int = 4, max_question_len: int = 64,
                       beam_size: int = 5) -> dict[str, Any]:
    """Save and export ``model`` into ``out`` (weights, ONNX files), with the tokenizer,
    retriever and decoding settings when given, so that ``out`` serves a
    :class:`ProgramPredictor`.

    Returns:
        The ONNX parity reports of :func:`export_generator`.
    """
    out = Path(out)
    save_generator(model, out)
    if tokenizer is not None:
        tokenizer.save(str(out / "tokenizer.json"))
    if retriever is not None:
        retriever.save(out / "retriever.json")
    if tokenizer is not None or retriever is not None:
        write_settings(out, top_k=top_k, max_len=model.config.max_len, max_question_len=max_question_len,
                       beam_size=beam_size)
    return export_generator(model, out)


def build_model_folder(out: str | Path, records: Sequence[QARecord], settings: TrainingSettings | None = None,
                       model: ProgramGenerator | None = None) -> ProgramGenerator:
    """A complete model folder in ``out`` without training the generator: the retriever and
    tokenizer fitted on ``records``, and ``model`` (default: new weights, shaped by
    ``settings``), exported. For smoke tests and for trying the runtime before a real run.
    """
    settings = settings or TrainingSettings()
    tokenizer = train_word_tokenizer(record_texts(records), settings.vocab_size, 1)
    if model is None:
        torch.manual_seed(settings.seed)
        model = build_generator(settings.model_config(tokenizer.get_vocab_size()))
    write_model_folder(out, model, tokenizer=tokenizer, retriever=EvidenceRetriever().fit(records),
                       top_k=settings.top_k, max_question_len=settings.max_question_len, beam_size=settings.beam_size)
    return model


def _token_parity(model: ProgramGenerator, out: Path, inputs: InputEncoder, retriever: EvidenceRetriever,
                  records: Sequence[QARecord], settings: TrainingSettings) -> dict[str, Any]:
    """Greedy program tokens of torch and ONNX on the first selection records."""
    torch_backend, onnx_backend = TorchBackend(model), OnnxBackend(out)
    equal, mismatches = 0, []
    chosen = records[: settings.parity_records]
    for record in chosen:
        encoded = inputs.encode(make_example(record, retriever.rank(record)[: settings.top_k]))
        a = greedy_decode(torch_backend, encoded, length=settings.max_len, pad_id=inputs.pad_id)
        b = greedy_decode(onnx_backend, encoded, length=settings.max_len, pad_id=inputs.pad_id)
        if a.tokens == b.tokens:
            equal += 1
        else:
            mismatches.append({"id": record.id, "torch": list(a.tokens), "onnx": list(b.tokens)})
    return {"count": len(chosen), "equal": equal, "mismatches": mismatches}


def _evaluate(out: Path, real: Any, settings: TrainingSettings) -> dict[str, Any]:
    """Scores of the exported model on each evaluation set: greedy, beam (the generator's order) and, with a
    re-ranker, re-ranked; with several generators, also the first alone, greedy (a paired comparison)."""
    sets: dict[str, list[QARecord]] = {"synthetic_test": generate(settings.eval_synthetic, seed=settings.seed + 2)}
    if real is not None:
        sets["finqa_dev"] = real.finqa_dev
        sets["tatqa_held_out"] = real.tatqa_held_out
    modes = {("greedy" if beam == 1 else f"beam{beam}"): {"beam_size": beam, "rerank": False}
             for beam in sorted({1, settings.beam_size})}
    if (out / RERANKER_FILE).is_file():
        modes["reranked"] = {}
    if settings.members > 1:
        modes["first_member_greedy"] = {"beam_size": 1, "rerank": False, "backend": OnnxBackend(out)}
    results: dict[str, Any] = {}
    for name, records in sets.items():
        records = records[: settings.limit_eval]
        results[name] = {}
        for mode, options in modes.items():
            started = time.time()
            scores = evaluate_records(ProgramPredictor(out, **options), records, progress=True)
            scores["seconds"] = time.time() - started
            results[name][mode] = scores
            log.info("%s (%s): %s", name, mode, json.dumps({k: v for k, v in scores.items() if k != "count"}))
    return results


_HELP = {
    "data_dir": "the real data folder (finqa/, tatqa/, convfinqa/); default $VFM_DATA_DIR; none: synthetic only",
    "synthetic_only": "train and select on synthetic data only (real data, if given, is only evaluated on)",
    "synthetic": "synthetic training records",
    "real_views": "inputs per real training question per epoch",
    "minutes": "stop training after this many minutes",
    "epochs": "the most epochs (the learning-rate schedule spans them)",
    "encoder": "'scratch', or a local Hugging Face model folder holding tokenizer.json",
    "encoder_lr": "the encoder's peak learning rate (default: --lr)",
    "top_k": "evidence units the generator reads",
    "beam_size": "beam of the exported model (1: greedy)",
    "threads": "torch CPU threads",
    "limit_eval": "score only the first N records of each evaluation set",
    "weak_labels": "also train on the FinQA prompt questions (no program) with programs found by search",
    "members": "generators trained on the same inputs, decoded as one ensemble (each gets --minutes)",
    "canonical_order": "train on the arguments of add and multiply in one order (step results, input order, "
                       "constants)",
    "lookup": "fit the table lookup and the text answerer that answer questions asking for table cells or "
              "text (--no-lookup: programs only)",
    "lookup_synthetic": "synthetic cell questions added to the table lookup's training",
    "convfinqa_turns": "final: train on each ConvFinQA conversation's final turn; all: also its earlier turns "
                       "that compute",
}
"""Help for the flags that need more than their name."""


def _settings(config: Path | None, given: dict[str, Any]) -> TrainingSettings:
    """Settings from a run's ``config.json`` (if any), overridden by the flags given, with
    ``data_dir`` defaulting to ``$VFM_DATA_DIR``.

    Raises:
        VfmError: the config is unreadable or names an unknown setting.
    """
    base: dict[str, Any] = {}
    if config is not None:
        try:
            base = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise VfmError(f"cannot read the config: {err}", where=str(config),
                           fix="pass the config.json a training run wrote") from None
    known = {item.name for item in fields(TrainingSettings)}
    unknown = sorted(set(base) - known)
    if unknown:
        raise VfmError(f"unknown setting {unknown[0]!r}", where=f"{config}: {unknown[0]}",
                       fix=f"remove it; known settings: {', '.join(sorted(known))}")
    settings = TrainingSettings(**(base | given))
    settings.data_dir = settings.data_dir or os.environ.get("VFM_DATA_DIR")
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run :func:`train_generator`."""
    parser = argparse.ArgumentParser(prog="python -m vfm.plugins.finance.generator_training",
                                     description="Train, export and score the finance retriever and program "
                                                 "generator.")
    parser.add_argument("--out", type=Path, required=True, help="output folder (outside the repository)")
    parser.add_argument("--config", type=Path, help="a config.json of an earlier run (flags override it)")
    for item in fields(TrainingSettings):
        flag = "--" + item.name.replace("_", "-")
        help_text = f"{_HELP.get(item.name, item.name.replace('_', ' '))} (default: {item.default})"
        if isinstance(item.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            kind = str if item.name in ("data_dir", "encoder", "accelerator") else \
                int if item.name == "limit_eval" else float if item.name == "encoder_lr" else type(item.default)
            parser.add_argument(flag, type=kind, default=None, help=help_text)
    args = parser.parse_args(argv)
    given = {item.name: getattr(args, item.name) for item in fields(TrainingSettings)
             if getattr(args, item.name) is not None}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    try:
        settings = _settings(args.config, given)
        metrics = train_generator(settings, args.out)
    except VfmError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps({name: {mode: {"execution_accuracy": s["program"]["execution_accuracy"],
                                    "program_accuracy": s["program"]["program_accuracy"],
                                    **s["retrieval"]} for mode, s in result.items()}
                      for name, result in metrics["evaluation"].items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
