"""Training the finance retriever and program generator, and scoring them.

    vfm finetune finance --config configs/finance/generator.yaml --data DATA --out OUT

Steps, each logged with where its outputs went:

1. data: synthetic statements, plus (unless ``--synthetic-only``) the real training
   records of :mod:`data_splits` (FinQA train, TAT-QA train contexts, ConvFinQA without
   FinQA-dev documents); a hashed 15 % of the real training documents (and some synthetic
   records) are kept aside for model selection;
2. the retriever (``retriever.json``) is fitted on the training records' gold evidence; with
   ``dense_retriever``, a pretrained sentence encoder is first fine-tuned contrastively on the same
   records (``dense_encoder/``) and its cosine joins the retriever's features;
   with ``--weak-labels``, it then ranks the evidence of the unlabelled FinQA questions
   (:attr:`RealData.unlabelled`) for :mod:`program_search`, and the questions a program
   is found for join the generator's training records, the usual hashed 15 % of their
   documents its selection records (selection compares executions with their true answers,
   so a wrong found program cannot mislead it);
3. a word-level tokenizer (``tokenizer.json``) is trained on the training text (or the
   Hugging Face encoder's own tokenizer is copied);
4. the generator reads each training question with its top-k retrieved units, the gold
   units swapped in for the lowest-ranked others, and learns the gold program (the shared
   training stack, :mod:`vfm.platform.training`: checkpoints every epoch into
   ``checkpoints/last.ckpt``, so a killed run resumes; CPU by default; ``max_minutes`` caps it
   with a warning); the epoch with the best execution accuracy on the selection records
   (``checkpoints/best.ckpt``) is kept;
5. the trained generator: ``generator.safetensors`` and ``generator_config.json``
   (:func:`save_generator`); the run keeps it in torch, and ``vfm export finance`` converts it
   to ONNX and checks the conversion;
6. the beam re-ranker (``reranker.json``, :mod:`reranker_training`), fitted on the selection
   records' beams and kept when it beats the generator's own order in cross-validation;
7. the table lookup (``lookup.json``, :mod:`lookup`), fitted on the training questions whose
   answers are table cells (TAT-QA spans) and on synthetic ones, the text answerer
   (``text_answer.json``, :mod:`text_answer`) and the scale model (``scale.json``,
   :mod:`scale`), fitted on the TAT-QA training questions (:mod:`answer_fitting`);
8. evaluation with the trained generator (in torch): FinQA dev, TAT-QA held-out, synthetic
   test, greedy and beam (the generator's order) and re-ranked, into ``metrics.json``.

The run's ``config.yaml`` (written by the pipeline) reproduces it. Outputs go to ``--out``,
never into the repository.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from vfm.finetune.bi_encoder import BiEncoderSettings
from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_json
from vfm.platform.training.optim import adamw_with_schedule, decay_groups
from vfm.platform.training.settings import TrainSettings
from vfm.platform.training.trainer import fit
from vfm.plugins.finance.answers.answer_fitting import fit_answer_models
from vfm.plugins.finance.data.data_splits import RealData, load_real_data, selection_split
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.data.synthetic import generate
from vfm.plugins.finance.evaluation.evaluate import evaluate_records, score_predictions
from vfm.plugins.finance.generation.decode import (
    ENCODER_ONNX,
    SETTINGS_FILE,
    SETTINGS_FORMAT,
    STEP_ONNX,
    WEIGHTS_FILE,
    ProgramPredictor,
)
from vfm.plugins.finance.generation.features import (
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
from vfm.plugins.finance.generation.generator import (
    PARITY_RECORDS,
    SCRATCH,
    GeneratorConfig,
    ProgramGenerator,
    TorchBackend,
    build_generator,
    collate,
    save_generator,
)
from vfm.plugins.finance.generation.program_search import label_quality, label_records
from vfm.plugins.finance.generation.reranker import FILE as RERANKER_FILE
from vfm.plugins.finance.generation.reranker_training import fit_reranker
from vfm.plugins.finance.retrieval.dense import load_dense_encoder
from vfm.plugins.finance.retrieval.dense_training import train_dense_encoder
from vfm.plugins.finance.retrieval.retriever import EvidenceRetriever, retrieval_recall

log = logging.getLogger("vfm.finance")


@dataclass
class TrainingSettings(TrainSettings):
    """Everything a run depends on: :class:`TrainSettings` (``max_epochs``, the ``max_minutes`` cap,
    precision, devices, seed: the synthetic data, the batch order and the weights; checkpoints every
    epoch) plus these.

    Attributes:
        data_dir: the real data folder (``$VFM_DATA_DIR``); None trains on synthetic data only.
        synthetic_only: ignore the real data for training and selection (it is still
            used for evaluation when ``data_dir`` is set).
        synthetic: synthetic training records.
        real_views: how many inputs each real training question is seen with per epoch (the
            retrieved units, then other draws of distractor units in shuffled order).
        batch_size, lr, weight_decay, warmup_steps: the optimiser (AdamW, warmup then cosine).
        encoder_lr: the encoder's peak learning rate (None: ``lr``), e.g. lower for a
            pretrained Hugging Face encoder.
        top_k: evidence units the generator reads.
        max_len, max_question_len: input lengths, in tokens.
        vocab_size, min_frequency: the word-level tokenizer (scratch encoder).
        beam_size: the beam of the model's decoding (``finance_model.json``).
        encoder: ``"scratch"`` or a local Hugging Face model folder.
        d_model, n_layers, n_heads, d_ff, dropout: the model (see :class:`GeneratorConfig`); the
            reported real-data recipe uses dropout 0.3, the short synthetic demo recipe 0.1.
        threads: torch CPU threads.
        select_synthetic, eval_synthetic: synthetic selection records (used when there is no
            real data to select on) and synthetic test records.
        parity_records: synthetic records whose greedy program tokens ``vfm export finance``
            compares, ONNX against torch.
        limit_eval: score only the first N records of each evaluation set (None: all).
        weak_labels: also train on the unlabelled FinQA questions, with the programs
            :mod:`program_search` finds for their answers.
        lookup: fit the table lookup (``lookup.json``, :mod:`vfm.plugins.finance.answers.lookup`) that answers
            questions asking for table cells, and the text answerer (``text_answer.json``) that
            answers with a sentence; each is kept when enough training answers are of its kind.
        lookup_synthetic: synthetic cell questions (:func:`generate_lookups`) added to the lookup's
            training questions (the real training questions, else the synthetic ones).
        dense_retriever: a local Hugging Face sentence-encoder folder (the pipeline resolves the config's
            model reference); the retriever then fuses its fine-tuned cosine with the lexical features
            (:mod:`vfm.plugins.finance.retrieval.dense`). None: lexical features only.
        dense_steps, dense_batch_size, dense_lr, dense_max_length: its contrastive fine-tuning
            (:class:`vfm.finetune.bi_encoder.BiEncoderSettings`: steps, questions per step, peak
            learning rate, tokens per text).
    """

    max_epochs: int | None = 9
    max_minutes: float | None = None
    precision: str = "32"
    accelerator: str = "cpu"
    devices: int | str = 1
    checkpoint_every_n_steps: int | None = None
    data_dir: str | None = None
    synthetic_only: bool = False
    synthetic: int = 3000
    real_views: int = 3
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
    select_synthetic: int = 50
    eval_synthetic: int = 200
    parity_records: int = PARITY_RECORDS
    limit_eval: int | None = None
    weak_labels: bool = False
    lookup: bool = True
    lookup_synthetic: int = 300
    dense_retriever: str | None = None
    dense_steps: int = 300
    dense_batch_size: int = 8
    dense_lr: float = 3.0e-5
    dense_max_length: int = 128

    RESUMABLE_CHANGES = TrainSettings.RESUMABLE_CHANGES | {
        "data_dir",
        "threads",
        "limit_eval",
        "parity_records",
        "eval_synthetic",
        "beam_size",
        "lookup",
        "lookup_synthetic",
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check(
            ("batch_size", self.batch_size >= 1, "a batch size >= 1"),
            ("lr", self.lr > 0, "a learning rate > 0, e.g. 2e-3"),
            ("warmup_steps", self.warmup_steps >= 0, "a number of steps >= 0"),
            ("synthetic", self.synthetic >= 0, "a count >= 0"),
            ("real_views", self.real_views >= 1, "a count >= 1"),
            ("top_k", self.top_k >= 1, "a count >= 1"),
            ("beam_size", self.beam_size >= 1, "a beam >= 1 (1: greedy)"),
            ("threads", self.threads >= 1, "a count >= 1"),
            ("dense_steps", self.dense_steps >= 1, "a number of steps >= 1"),
            ("dense_batch_size", self.dense_batch_size >= 1, "a number of questions per step >= 1"),
            ("dense_lr", self.dense_lr > 0, "a learning rate > 0, e.g. 3e-5"),
            ("dense_max_length", self.dense_max_length >= 8, "a number of tokens >= 8, e.g. 128"),
        )

    def model_config(self, vocab_size: int) -> GeneratorConfig:
        return GeneratorConfig(
            vocab_size=vocab_size,
            encoder=self.encoder,
            d_model=self.d_model,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            d_ff=self.d_ff,
            max_len=self.max_len,
            dropout=self.dropout,
        )


def dense_settings(settings: TrainingSettings) -> BiEncoderSettings:
    """The sentence encoder's fine-tuning settings of a run (seed, precision and devices are the run's)."""
    return BiEncoderSettings(
        max_steps=settings.dense_steps,
        batch_size=settings.dense_batch_size,
        lr=settings.dense_lr,
        max_length=settings.dense_max_length,
        warmup_steps=settings.dense_steps // 10,
        seed=settings.seed,
        precision=settings.precision,
        accelerator=settings.accelerator,
        devices=settings.devices,
    )


def train_word_tokenizer(texts: Sequence[str], vocab_size: int = 10000, min_frequency: int = 2):
    """A word-level ``tokenizers.Tokenizer`` over :func:`split_words` words of ``texts``;
    words fed pre-tokenised map to one token each (``[UNK]`` when unknown)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordLevelTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS), show_progress=False
    )
    tokenizer.train_from_iterator((" ".join(split_words(text)) for text in texts), trainer=trainer)
    return tokenizer


def record_texts(records: Sequence[QARecord]) -> list[str]:
    """The questions and every evidence unit of ``records``."""
    return [text for r in records for text in (record_question(r), *r.evidence().values())]


def training_units(
    record: QARecord, ranked: Sequence[str], top_k: int, rng: np.random.Generator | None = None
) -> list[str]:
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


def make_training_examples(
    records: Sequence[QARecord],
    retriever: EvidenceRetriever,
    inputs: InputEncoder,
    top_k: int,
    views: int = 1,
    seed: int = 0,
) -> tuple[list[tuple[EncodedInput, ProgramTargets]], int]:
    """``(examples, skipped)``: the teacher-forcing examples of the records with a gold
    program, ``views`` per record (the first as :func:`training_units` ranks them, the others
    drawn with a generator seeded by ``seed``); skipped: views whose program has an argument
    that is not in the input."""
    rng = np.random.default_rng(seed)
    examples, skipped = [], 0
    for record in records:
        if record.program is None:
            continue
        ranked = retriever.rank(record)
        for view in range(views):
            units = training_units(record, ranked, top_k, rng if view else None)
            encoded = inputs.encode(make_example(record, units))
            targets = program_targets(record.program, encoded)
            if targets is None:
                skipped += 1
            else:
                examples.append((encoded, targets))
    return examples, skipped


class LengthBuckets(torch.utils.data.Sampler):
    """Batches of examples of similar length (less padding), in an order drawn from (seed, epoch).

    Examples are shuffled, cut into pools of ``pool`` batches, sorted by length within a
    pool and batched; the batches are then shuffled. The trainer calls ``set_epoch`` before
    each epoch, so a resumed run draws the batches an uninterrupted one would have.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, pool: int = 50):
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.pool = pool * batch_size
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        batches = []
        for start in range(0, len(order), self.pool):
            chunk = order[start : start + self.pool]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        for index in rng.permutation(len(batches)):
            yield batches[index]

    def __len__(self) -> int:
        pools = [min(self.pool, len(self.lengths) - start) for start in range(0, len(self.lengths), self.pool)]
        return sum(-(-size // self.batch_size) for size in pools)


class GeneratorModule(L.LightningModule):
    """The generator's optimiser and schedule, and its score for model selection.

    After every epoch ``select`` scores the model (greedy execution accuracy on the selection
    records, retrieved evidence as at test time; None: minus the training loss) as
    ``select/execution_accuracy``, on which the trainer keeps the best checkpoint. ``history``
    (one entry per epoch) travels in the checkpoints.
    """

    def __init__(self, model: ProgramGenerator, settings: TrainingSettings, select: Any = None):
        super().__init__()
        self.model = model
        self.settings = settings
        self.select = select
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

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["history"] = self.history

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.history = list(checkpoint.get("history", []))

    def configure_optimizers(self):
        s = self.settings
        groups = decay_groups(
            self.model.named_parameters(),
            weight_decay=s.weight_decay,
            lr=s.lr,
            no_decay=lambda name: "embed" in name,
            lr_of=lambda name: (s.encoder_lr or s.lr) if name.startswith("encoder.") else s.lr,
        )
        return adamw_with_schedule(
            groups,
            lr=s.lr,
            warmup_steps=s.warmup_steps,
            floor=0.1,
            total_steps=int(self.trainer.estimated_stepping_batches),
        )


def train_generator(settings: TrainingSettings, out: str | Path) -> dict[str, Any]:
    """Run steps 1-8 of the module doc; returns (and writes) ``metrics.json``'s content."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    torch.set_num_threads(settings.threads)
    L.seed_everything(settings.seed, verbose=False)

    # 1. data
    real = load_real_data(settings.data_dir) if settings.data_dir else None
    synthetic = generate(settings.synthetic, seed=settings.seed)
    select_synthetic = generate(settings.select_synthetic, seed=settings.seed + 1)
    real_fit, real_select = selection_split(real.train) if real and not settings.synthetic_only else ([], [])
    select_synthetic = [] if real_select else select_synthetic
    log.info(
        "data: %d synthetic + %d real training records; %d real + %d synthetic selection records",
        len(synthetic),
        len(real_fit),
        len(real_select),
        len(select_synthetic),
    )

    # 2. retriever (with a sentence encoder fine-tuned on the same records, when one is set)
    dense, dense_report = None, {}
    if settings.dense_retriever:
        dense_report = train_dense_encoder(
            real_fit + synthetic[:300], settings.dense_retriever, dense_settings(settings), out, progress=False
        )
        dense = load_dense_encoder(out, settings.dense_max_length)
    retriever = EvidenceRetriever(dense=dense, dense_max_length=settings.dense_max_length if dense else None)
    retriever.fit(real_fit + synthetic[:300])
    retriever.save(out / "retriever.json")
    log.info(
        "retriever: recall %s on the selection records -> %s",
        retrieval_recall(retriever.rank, real_select + select_synthetic),
        out / "retriever.json",
    )

    weak_fit: list[QARecord] = []
    weak_select: list[QARecord] = []
    weak_report: dict[str, Any] = {}
    if settings.weak_labels and real and not settings.synthetic_only:
        quality = label_quality([r for r in real_select if r.source != "tatqa"], retriever)
        weak_fit, weak_select = weak_labelled(real, retriever)
        weak_report = {
            "unlabelled": len(real.unlabelled),
            "labelled": len(weak_fit) + len(weak_select),
            "selection": len(weak_select),
            "selection_quality": quality,
        }
        log.info(
            "weak labels: programs found for %d of %d unlabelled questions (%d kept for selection); on the "
            "FinQA and ConvFinQA selection records the search finds the gold program for %d of %d labelled",
            weak_report["labelled"],
            len(real.unlabelled),
            len(weak_select),
            quality["correct"],
            quality["labelled"],
        )
    real_fit, real_select = real_fit + weak_fit, real_select + weak_select

    # 3. tokenizer
    if settings.encoder == SCRATCH:
        tokenizer = train_word_tokenizer(
            record_texts(real_fit + synthetic), settings.vocab_size, settings.min_frequency
        )
        tokenizer.save(str(out / "tokenizer.json"))
    else:
        source = Path(settings.encoder) / "tokenizer.json"
        if not source.is_file():
            raise VfmError(
                "the encoder folder has no tokenizer.json",
                where=str(source.parent),
                fix="save the encoder's fast tokenizer beside it (tokenizer.save_pretrained(folder))",
            )
        shutil.copyfile(source, out / "tokenizer.json")
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    write_settings(
        out,
        top_k=settings.top_k,
        max_len=settings.max_len,
        max_question_len=settings.max_question_len,
        beam_size=settings.beam_size,
    )
    inputs = InputEncoder(tokenizer, settings.max_len, settings.max_question_len)

    # 4. generator
    real_examples, real_skipped = make_training_examples(
        real_fit, retriever, inputs, settings.top_k, views=settings.real_views, seed=settings.seed
    )
    synthetic_examples, synthetic_skipped = make_training_examples(synthetic, retriever, inputs, settings.top_k)
    examples = synthetic_examples + real_examples
    log.info(
        "generator: %d examples (%d real: %d views of each question; %d synthetic); %d real and %d synthetic "
        "views skipped (an argument not in the input)",
        len(examples),
        len(real_examples),
        settings.real_views,
        len(synthetic_examples),
        real_skipped,
        synthetic_skipped,
    )
    if not examples:
        raise VfmError("no training example", where="generator_training", fix="check the data folder")
    select_records = with_programs(real_select or select_synthetic)
    trained = _train(settings, examples, tokenizer.get_vocab_size(), out, select_records)

    # 5. the trained generator (in torch: 'vfm export finance' converts it to ONNX)
    save_generator(trained["model"], out)
    for stale in (ENCODER_ONNX, STEP_ONNX, "parity.json"):  # an older version's export, of an older model
        (out / stale).unlink(missing_ok=True)
    log.info("generator: saved -> %s", out / WEIGHTS_FILE)

    # 6. the beam re-ranker, fitted on the selection records with the trained generator
    reranking = fit_reranker(out, select_records)
    log.info(
        "re-ranker: selection execution accuracy %s (generator's order) -> %s (cross-validated); %s",
        reranking["first_running"],
        reranking["reranked_cross_validated"],
        f"kept -> {out / RERANKER_FILE}" if reranking["kept"] else "not kept",
    )

    # 7. the table lookup, the text answerer and the scale model, fitted on the training questions
    use_real = real is not None and not settings.synthetic_only
    answer_reports = fit_answer_models(
        out,
        real.train if use_real else [],
        synthetic,
        retriever,
        numeric=real.unlabelled if use_real else [],
        lookup=settings.lookup,
        synthetic_lookups=settings.lookup_synthetic,
        seed=settings.seed,
    )
    for name, report in answer_reports.items():
        log.info(
            "%s: fitted on %d questions; %s",
            name,
            report.get("questions", 0),
            "kept" if report["kept"] else report["why"],
        )

    # 8. evaluation with the trained generator
    evaluation = _evaluate(out, TorchBackend(trained["model"]), real, settings)
    metrics = {
        "settings": asdict(settings),
        "total_seconds": time.time() - started,
        **{key: value for key, value in trained.items() if key != "model"},
        "examples": {
            "real": len(real_examples),
            "synthetic": len(synthetic_examples),
            "real_skipped": real_skipped,
            "synthetic_skipped": synthetic_skipped,
        },
        "parameters": sum(p.numel() for p in trained["model"].parameters()),
        "weak_labels": weak_report,
        "dense_retriever": dense_report,
        "reranker": reranking,
        **answer_reports,
        "evaluation": evaluation,
    }
    atomic_write_json(out / "metrics.json", metrics)
    log.info("done in %.0f s -> %s", time.time() - started, out / "metrics.json")
    return metrics


def _train(
    settings: TrainingSettings, examples: list, vocab_size: int, out: Path, select_records: Sequence[QARecord]
) -> dict[str, Any]:
    """Train the generator (resuming from ``out/checkpoints/last.ckpt``) and keep its epoch with
    the best selection execution accuracy.

    Returns:
        ``{"model", "train", "train_seconds", "epochs_run", "history",
        "best_selection_execution_accuracy"}`` (``train``: the trainer's summary).
    """
    L.seed_everything(settings.seed, verbose=False)
    model = build_generator(settings.model_config(vocab_size))

    def select(current: ProgramGenerator) -> float:
        predictor = ProgramPredictor(out, backend=TorchBackend(current), beam_size=1)
        predictions = [predictor.predict_record(r) for r in select_records]
        return score_predictions(predictions, select_records)["program"]["execution_accuracy"]

    loader = DataLoader(
        examples,
        collate_fn=collate,
        batch_sampler=LengthBuckets([len(encoded) for encoded, _ in examples], settings.batch_size, settings.seed),
    )
    module = GeneratorModule(model, settings, select)
    run = fit(
        module,
        settings,
        out,
        train=loader,
        monitor="select/execution_accuracy",
        mode="max",
        progress=False,
        gradient_clip_val=1.0,
        log_every_n_steps=20,
    )
    best_score = max((h["select_execution_accuracy"] for h in module.history), default=-1.0)
    if run.best is not None:
        state = torch.load(run.best, map_location="cpu", weights_only=True)["state_dict"]
        model.load_state_dict({key.removeprefix("model."): value for key, value in state.items()})
    log.info(
        "generator: trained %.0f s over all calls, best selection execution accuracy %.4f",
        run.seconds_all_calls,
        best_score,
    )
    return {
        "model": model.cpu().eval(),
        "train": run.summary(),
        "train_seconds": run.seconds_all_calls,
        "epochs_run": len(module.history),
        "history": module.history,
        "best_selection_execution_accuracy": best_score,
    }


def weak_labelled(real: RealData, retriever: EvidenceRetriever) -> tuple[list[QARecord], list[QARecord]]:
    """``(fit, select)`` unlabelled FinQA questions with the programs the search finds for them."""
    return selection_split(label_records(real.unlabelled, retriever))


def with_programs(records: Sequence[QARecord]) -> list[QARecord]:
    """The records that have a (gold or found) program: those selection is scored on."""
    return [r for r in records if r.program is not None]


def selection_records(settings: TrainingSettings, retriever: EvidenceRetriever) -> list[QARecord]:
    """The selection records of a run with these settings and its retriever (as step 1-2 split them)."""
    if settings.data_dir and not settings.synthetic_only:
        real = load_real_data(settings.data_dir)
        select = selection_split(real.train)[1]
        if settings.weak_labels:
            select += weak_labelled(real, retriever)[1]
        if select:
            return with_programs(select)
    return with_programs(generate(settings.select_synthetic, seed=settings.seed + 1))


def write_settings(out: str | Path, *, top_k: int, max_len: int, max_question_len: int, beam_size: int) -> None:
    """Write the decoding settings (``finance_model.json``) a :class:`ProgramPredictor` reads."""
    atomic_write_json(
        Path(out) / SETTINGS_FILE,
        {
            "format": SETTINGS_FORMAT,
            "top_k": top_k,
            "max_len": max_len,
            "max_question_len": max_question_len,
            "beam_size": beam_size,
            "output_vocab": list(OUTPUT_VOCAB),
        },
    )


def build_model_folder(
    out: str | Path,
    records: Sequence[QARecord],
    settings: TrainingSettings | None = None,
    model: ProgramGenerator | None = None,
) -> ProgramGenerator:
    """A model folder in ``out`` laid out as a training run's, without training the generator: the
    retriever and tokenizer fitted on ``records``, the decoding settings, and ``model`` (default: new
    weights, shaped by ``settings``) saved. For smoke tests and for trying the runtime before a real run
    (:func:`vfm.plugins.finance.generation.generator.export_generator` adds its ONNX files).
    """
    out = Path(out)
    settings = settings or TrainingSettings()
    tokenizer = train_word_tokenizer(record_texts(records), settings.vocab_size, 1)
    if model is None:
        torch.manual_seed(settings.seed)
        model = build_generator(settings.model_config(tokenizer.get_vocab_size()))
    save_generator(model, out)
    tokenizer.save(str(out / "tokenizer.json"))
    EvidenceRetriever().fit(records).save(out / "retriever.json")
    write_settings(
        out,
        top_k=settings.top_k,
        max_len=model.config.max_len,
        max_question_len=settings.max_question_len,
        beam_size=settings.beam_size,
    )
    return model


def _evaluate(out: Path, backend: TorchBackend, real: Any, settings: TrainingSettings) -> dict[str, Any]:
    """Scores of the model folder ``out`` decoded with ``backend`` on each evaluation set: greedy, beam (the
    generator's order) and, with a re-ranker, re-ranked."""
    sets: dict[str, list[QARecord]] = {"synthetic_test": generate(settings.eval_synthetic, seed=settings.seed + 2)}
    if real is not None:
        sets["finqa_dev"] = real.finqa_dev
        sets["tatqa_held_out"] = real.tatqa_held_out
    modes = {
        ("greedy" if beam == 1 else f"beam{beam}"): {"beam_size": beam, "rerank": False}
        for beam in sorted({1, settings.beam_size})
    }
    if (out / RERANKER_FILE).is_file():
        modes["reranked"] = {}
    results: dict[str, Any] = {}
    for name, records in sets.items():
        records = records[: settings.limit_eval]
        results[name] = {}
        for mode, options in modes.items():
            started = time.time()
            scores = evaluate_records(ProgramPredictor(out, backend=backend, **options), records, progress=True)
            scores["seconds"] = time.time() - started
            results[name][mode] = scores
            log.info("%s (%s): %s", name, mode, json.dumps({k: v for k, v in scores.items() if k != "count"}))
    return results
