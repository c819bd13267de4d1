"""Training the commentary model with Lightning: commentary and question-answer examples mixed.

Every labelled :class:`DrivingSample` with frames gives one commentary example (empty question)
and one example per QA pair (``settings.tasks`` selects them); ``label_fraction`` keeps a
stratified share of the samples (by action, nested across fractions, see
:func:`vfm.finetune.label_fraction.stratified_subset`). AdamW with linear warmup then cosine
decay, optionally a frozen (pretrained) encoder.

Resume is exact, as for MAE pretraining (the shared stack, :mod:`vfm.platform.training`): the data
order is an :class:`EpochSampler` checkpointed with the loop, dropout at step ``s`` is seeded by
``(seed, s)``, checkpoints are written atomically into ``out_dir/checkpoints/last.ckpt`` and a
later call with the same ``out_dir`` continues from it (the tokenizer is read back from
``out_dir/tokenizer.json``, so the vocabulary cannot drift).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch

from vfm.finetune.label_fraction import stratified_subset
from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_json
from vfm.platform.training.optim import adamw_with_schedule, decay_groups
from vfm.platform.training.sampling import EpochSampler
from vfm.platform.training.settings import TrainSettings
from vfm.platform.training.trainer import fit, last_checkpoint
from vfm.plugins.driving.model import CommentaryConfig, CommentaryModel, decoder_config, save_commentary_model
from vfm.plugins.driving.records import ACTIONS, DrivingSample
from vfm.plugins.driving.scene_facts import fact_loss, fact_targets
from vfm.plugins.driving.tokenizer import TOKENIZER_FILE, DrivingTokenizer, sample_texts, train_tokenizer
from vfm.pretrain.mae import MaeConfig

TASKS = ("commentary", "qa")


@dataclass
class CommentaryTrainSettings(TrainSettings):
    """How to build and train the model (written to ``out_dir/settings.json``): :class:`TrainSettings`
    (length, precision, devices, checkpoints, seed: the weights, the data order and dropout) plus
    these.

    Attributes:
        encoder: MAE preset of the ViT shape (``tiny``, ``small``, ``base``, ``large``), at the
            frames' size; ignored when ``pretrained_encoder`` has an ``encoder.json`` beside it.
        pretrained_encoder: ``encoder.safetensors`` of :func:`pretrain_mae` (or a RETFound-style
            checkpoint of the ``encoder`` preset's shape); None: a random encoder.
        patch_size: the encoder's patch size in pixels (None: the ``encoder`` preset's choice);
            ignored, like ``encoder``, when the pretrained encoder has an ``encoder.json``.
        text_model: a causal LM folder (text adaptation's ``model/``) or cached Hub id for the
            language side (:meth:`CommentaryModel.for_text`); None: a fresh GPT-2 ``decoder``.
        decoder: the fresh GPT-2 preset (``gpt2-tiny``, ``gpt2-mini``).
        vocab_size: the BPE tokenizer's size (fresh decoder only).
        patch_grid, speed_scale, max_question_tokens, max_new_tokens: see :class:`CommentaryConfig`.
        tasks: ``"commentary"`` and/or ``"qa"``.
        commentary_repeats: times each commentary sequence is seen per epoch. A clip has one
            commentary and about seven questions, so with 1 the commentary gets an eighth of
            the steps.
        label_fraction: share of the labelled samples trained on, in (0, 1].
        speed_dropout: share of training sequences whose speeds are hidden, half of them all
            (the unknown-speed token learns), half all but the last frame's (a single reading).
        settings_dropout: share of training sequences whose driver settings (set speed, set
            time gap) are hidden, so the model also comments when a car does not report them.
        fact_weight: weight of the auxiliary scene-fact loss (:mod:`scene_facts`: the decoder's
            ``<bos>`` state regresses the simulator's facts, gaps, closing speed, free lanes, the
            commanded acceleration) beside the language loss; 0: language loss only. Samples
            without facts add nothing to it. What it does to action / cause accuracy:
            docs/results/driving.md, 'What each option did (ablation)'.
        freeze_encoder: keep the ViT's weights fixed.
        batch_size, lr, encoder_lr (None: ``lr``), warmup_steps, weight_decay, gradient_clip: the optimiser.
        precision defaults to ``"32"``: for this small model bf16-mixed reaches the same loss,
            only a little faster (measured: docs/results/driving.md, 'Limits').
    """

    max_steps: int | None = 2000
    precision: str = "32"
    checkpoint_every_n_steps: int | None = 200

    encoder: str = "tiny"
    pretrained_encoder: str | None = None
    patch_size: int | None = None
    text_model: str | None = None
    decoder: str = "gpt2-mini"
    vocab_size: int = 2000
    patch_grid: int = 2
    speed_scale: float = 30.0
    max_question_tokens: int = 24
    max_new_tokens: int = 40
    tasks: tuple[str, ...] = TASKS
    commentary_repeats: int = 1
    label_fraction: float = 1.0
    speed_dropout: float = 0.1
    settings_dropout: float = 0.3
    fact_weight: float = 1.0
    freeze_encoder: bool = False
    batch_size: int = 32
    lr: float = 3e-4
    encoder_lr: float | None = None
    warmup_steps: int = 100
    weight_decay: float = 0.05
    gradient_clip: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.tasks = tuple(self.tasks)
        self.check(
            ("tasks", bool(self.tasks) and set(self.tasks) <= set(TASKS), f"use a non-empty subset of {TASKS}"),
            ("commentary_repeats", self.commentary_repeats >= 1, "use 1 (no repeats) or more"),
            ("label_fraction", 0.0 < self.label_fraction <= 1.0, "use e.g. 0.1 for 10 % of the labels, 1.0 for all"),
            ("speed_dropout", 0.0 <= self.speed_dropout <= 1.0, "use a share in [0, 1], e.g. 0.1"),
            ("settings_dropout", 0.0 <= self.settings_dropout <= 1.0, "use a share in [0, 1], e.g. 0.3"),
            ("fact_weight", self.fact_weight >= 0.0, "use 0 (off) or a positive weight, e.g. 1.0"),
            ("batch_size", self.batch_size >= 1, "use a positive batch size"),
            ("lr", self.lr > 0, "a learning rate > 0, e.g. 3e-4"),
            ("warmup_steps", self.warmup_steps >= 0, "a number of steps >= 0"),
        )


@dataclass(frozen=True)
class Example:
    """One teacher-forcing sequence: ``sample`` indexes the training samples, ``tokens`` is
    ``<bos> question <sep> target <eos>`` and the first ``prompt`` tokens are not scored."""

    sample: int
    tokens: tuple[int, ...]
    prompt: int


def make_examples(
    samples: Sequence[DrivingSample],
    tokenizer: DrivingTokenizer,
    tasks: Sequence[str],
    max_question_tokens: int,
    max_new_tokens: int,
    commentary_repeats: int = 1,
) -> tuple[list[Example], dict[str, int]]:
    """``(examples, counts)``: the commentary and QA examples of ``samples``, each commentary
    ``commentary_repeats`` times; ``counts`` has ``commentary``, ``qa`` (distinct sequences) and
    ``too_long`` (skipped: the question or the target does not fit)."""
    examples, counts = [], {"commentary": 0, "qa": 0, "too_long": 0}
    for index, sample in enumerate(samples):
        pairs = [("commentary", None, sample.commentary)] if "commentary" in tasks and sample.commentary else []
        if "qa" in tasks:
            pairs += [("qa", p.question, p.answer) for p in sample.qa if p.question and p.answer]
        for task, question, answer in pairs:
            prompt, target = tokenizer.prompt(question), tokenizer.target(answer)
            if len(prompt) - 2 > max_question_tokens or len(target) > max_new_tokens:
                counts["too_long"] += 1
                continue
            repeats = commentary_repeats if task == "commentary" else 1
            examples.extend([Example(index, tuple(prompt + target), len(prompt))] * repeats)
            counts[task] += 1
    return examples, counts


def collate(
    examples: Sequence[Example],
    frames: torch.Tensor,
    speeds: torch.Tensor,
    pad_id: int,
    settings: torch.Tensor | None = None,
    facts: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """A batch for :meth:`CommentaryModel.forward`.

    frames: uint8 [N, k, H, W, 3], speeds: [N, k], settings: [N, 2] (or None) and facts [N, F]
    (or None) of the samples -> ``frames`` [B, k, 3, H, W] float in [0, 1], ``speed`` [B, k],
    ``settings`` [B, 2] (NaN when None), ``tokens`` [B, T] (right-padded with ``pad_id``),
    ``labels`` [B, T] (-100 on the prompt and the padding), and ``facts`` [B, F] when given.
    """
    length = max(len(e.tokens) for e in examples)
    tokens = torch.full((len(examples), length), pad_id, dtype=torch.int64)  # [B, T]
    labels = torch.full((len(examples), length), -100, dtype=torch.int64)  # [B, T]
    for row, example in enumerate(examples):
        ids = torch.tensor(example.tokens)
        tokens[row, : len(ids)] = ids
        labels[row, example.prompt : len(ids)] = ids[example.prompt :]
    index = torch.tensor([e.sample for e in examples])
    clip = frames[index].permute(0, 1, 4, 2, 3).float() / 255.0  # [B, k, 3, H, W]
    chosen = torch.full((len(index), 2), float("nan")) if settings is None else settings[index]  # [B, 2]
    batch = {"frames": clip, "speed": speeds[index], "settings": chosen, "tokens": tokens, "labels": labels}
    return batch if facts is None else {**batch, "facts": facts[index]}


def hide_speeds(speed: torch.Tensor, share: float) -> torch.Tensor:
    """speed [B, k] with a random ``share`` of the rows hidden (NaN): half of those entirely,
    half all but the last frame (see ``CommentaryTrainSettings.speed_dropout``)."""
    draw = torch.rand(len(speed))  # [B]
    hidden = speed.clone()
    hidden[draw < share / 2] = float("nan")
    hidden[(draw >= share / 2) & (draw < share), :-1] = float("nan")
    return hidden


def hide_settings(settings: torch.Tensor, share: float) -> torch.Tensor:
    """settings [B, 2] with a random ``share`` of the rows hidden (NaN)."""
    hidden = settings.clone()
    hidden[torch.rand(len(settings)) < share] = float("nan")
    return hidden


class ExampleBatches:
    """Collated batches of ``examples`` in an :class:`EpochSampler`'s order; Lightning checkpoints
    its position through ``state_dict``."""

    def __init__(
        self,
        examples: list[Example],
        frames: torch.Tensor,
        speeds: torch.Tensor,
        settings: torch.Tensor,
        pad_id: int,
        sampler: EpochSampler,
        facts: torch.Tensor | None = None,
    ):
        self.examples, self.frames, self.speeds, self.settings = examples, frames, speeds, settings
        self.pad_id, self.sampler, self.facts = pad_id, sampler, facts

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for index in self.sampler:
            yield collate(
                [self.examples[i] for i in index], self.frames, self.speeds, self.pad_id, self.settings, self.facts
            )

    def state_dict(self) -> dict[str, int]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.load_state_dict(state)


class CommentaryModule(L.LightningModule):
    """The optimiser, schedule and data order around a :class:`CommentaryModel`, and the scene-fact
    head of the auxiliary loss (``settings.fact_weight > 0``; training only, not exported).

    facts: [N, F] :func:`~vfm.plugins.driving.scene_facts.fact_targets` of the samples.
    """

    def __init__(
        self,
        model: CommentaryModel,
        settings: CommentaryTrainSettings,
        examples: list[Example],
        frames: torch.Tensor,
        speeds: torch.Tensor,
        driver_settings: torch.Tensor,
        pad_id: int,
        facts: torch.Tensor,
    ):
        super().__init__()
        self.model, self.settings = model, settings
        self.examples, self.frames, self.speeds, self.pad_id = examples, frames, speeds, pad_id
        self.driver_settings = driver_settings
        self.facts = facts if settings.fact_weight > 0 else None
        width = model.decoder.get_input_embeddings().embedding_dim
        self.fact_head = torch.nn.Linear(width, facts.shape[1]) if self.facts is not None else None

    @property
    def batch_size(self) -> int:
        return min(self.settings.batch_size, len(self.examples) // self.trainer.world_size)

    def train_dataloader(self) -> ExampleBatches:
        sampler = EpochSampler(
            len(self.examples), self.batch_size, self.settings.seed, self.global_rank, self.trainer.world_size
        )
        return ExampleBatches(
            self.examples, self.frames, self.speeds, self.driver_settings, self.pad_id, sampler, self.facts
        )

    def training_step(self, batch, batch_idx):
        torch.manual_seed(self.settings.seed * 1_000_003 + self.global_step)  # dropout follows the step
        facts = batch.pop("facts", None)
        inputs = {
            **batch,
            "speed": hide_speeds(batch["speed"], self.settings.speed_dropout),
            "settings": hide_settings(batch["settings"], self.settings.settings_dropout),
        }
        if facts is None:
            loss = self.model(**inputs)
        else:
            text_loss, state = self.model(**inputs, with_state=True)  # state: [B, D]
            scene_loss = fact_loss(self.fact_head(state), facts)
            loss = text_loss + self.settings.fact_weight * scene_loss
            self.log("train/text_loss", text_loss, batch_size=len(batch["tokens"]))
            self.log("train/fact_loss", scene_loss, batch_size=len(batch["tokens"]))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["tokens"]))
        self.log("train/lr", self.lr_schedulers().get_last_lr()[0])
        return loss

    def configure_optimizers(self):
        s = self.settings
        groups = decay_groups(
            self.named_parameters(),
            weight_decay=s.weight_decay,
            lr=s.lr,
            no_decay=lambda name: name.endswith(("_embed", "cls_token")),  # position tables
            lr_of=lambda name: (s.encoder_lr or s.lr) if name.startswith("model.vit.") else s.lr,
        )
        return adamw_with_schedule(
            groups,
            lr=s.lr,
            betas=(0.9, 0.98),
            warmup_steps=s.warmup_steps,
            total_steps=int(self.trainer.estimated_stepping_batches),
        )


def clip_array(samples: Sequence[DrivingSample]) -> tuple[np.ndarray, np.ndarray]:
    """``(frames uint8 [N, k, H, W, 3], speeds float32 [N, k])`` of samples that all have square
    frames of one shape (speeds: :meth:`DrivingSample.speed_trace`)."""
    shapes = {None if s.frames is None else tuple(s.frames.shape) for s in samples}
    if len(shapes) != 1 or None in shapes:
        raise VfmError(
            f"samples have frames of {len(shapes)} shapes {sorted(map(str, shapes))[:3]}",
            where="train_commentary(samples)",
            fix="give every sample a clip of the same k, H, W",
        )
    _, h, w, c = shapes.pop()
    if h != w or c != 3:
        raise VfmError(
            f"frames are {h}x{w}x{c}, the encoder reads square RGB frames",
            where="samples.frames",
            fix="resize or crop the frames to a square RGB size (e.g. 64x64x3)",
        )
    frames = np.stack([np.asarray(s.frames, dtype=np.uint8) for s in samples])
    return frames, np.stack([s.speed_trace() for s in samples])


def build_model(
    settings: CommentaryTrainSettings,
    frames: int,
    image_size: int,
    texts: Sequence[str],
    tokenizer: DrivingTokenizer | None = None,
):
    """``(model, tokenizer)`` for a run: the encoder shape (``encoder.json`` beside a pretrained
    encoder, else the ``encoder`` preset) at ``image_size``, the pretrained weights loaded, and
    the text model's decoder and tokenizer or a fresh decoder on ``tokenizer`` (trained on
    ``texts`` when None)."""
    s = settings
    encoder = MaeConfig.preset(s.encoder, img_size=image_size, patch_size=s.patch_size).encoder_config()
    pretrained = Path(s.pretrained_encoder) if s.pretrained_encoder else None
    if pretrained is not None and (pretrained.parent / "encoder.json").is_file():
        encoder = {
            **json.loads((pretrained.parent / "encoder.json").read_text("utf-8"))["encoder"],
            "img_size": image_size,
        }
    options = dict(
        frames=frames,
        patch_grid=s.patch_grid,
        speed_scale=s.speed_scale,
        max_question_tokens=s.max_question_tokens,
        max_new_tokens=s.max_new_tokens,
    )
    if s.text_model:
        model, tokenizer = CommentaryModel.for_text(s.text_model, encoder, **options)
    else:
        tokenizer = tokenizer or train_tokenizer(texts, s.vocab_size)
        model = CommentaryModel(
            CommentaryConfig(encoder=encoder, decoder=decoder_config(tokenizer, s.decoder), **options)
        )
    if pretrained is not None:
        model.load_encoder(pretrained)
    if s.freeze_encoder:
        model.vit.requires_grad_(False)
    return model, tokenizer


def train_commentary(
    samples: Sequence[DrivingSample], settings: CommentaryTrainSettings, out_dir: str | Path, progress: bool = True
) -> dict:
    """Train a commentary model on ``samples`` (clips of one shape).

    Samples without frames (text-only sources such as BDD-X) or without text are skipped: their
    text can adapt the decoder first (:mod:`vfm.pretrain.text_adaptation`, then ``text_model``).

    Writes into ``out_dir``: ``settings.json``, ``tokenizer.json``, ``checkpoints/last.ckpt``
    (atomically, every ``checkpoint_every_n_steps`` and at the end; a later call resumes from
    it), ``logs/`` (CSV: ``train/loss``, ``train/lr`` per step) and ``model/`` (the trained
    model, :func:`save_commentary_model`).

    Returns ``{"final_loss", "steps", "resumed_from_step", "seconds" (this call's), "seconds_all_calls"
    (every call's), "stopped_by_time", "examples" (counts per task
    and ``too_long``), "samples" (``given``, ``labelled``, ``trained_on``), "precision", "files"}``.
    """
    s, out_dir = settings, Path(out_dir)
    atomic_write_json(out_dir / "settings.json", asdict(s))

    labelled = [x for x in samples if x.frames is not None and (x.commentary or x.qa)]
    if not labelled:
        raise VfmError(
            "no sample has frames and text",
            where="train_commentary(samples)",
            fix="pass samples with a clip and a commentary or QA pairs",
        )
    actions = np.array([ACTIONS.index(x.action) if x.action in ACTIONS else -1 for x in labelled])
    chosen = [labelled[i] for i in stratified_subset(actions, s.label_fraction, seed=s.seed)]
    frames, speeds = clip_array(chosen)

    L.seed_everything(s.seed, verbose=False)  # the model's initial weights
    resuming = last_checkpoint(out_dir).exists() and (out_dir / TOKENIZER_FILE).is_file()
    saved = DrivingTokenizer.load(out_dir / TOKENIZER_FILE) if resuming and not s.text_model else None
    model, tokenizer = build_model(s, frames.shape[1], frames.shape[2], sample_texts(chosen), saved)
    tokenizer.save(out_dir / TOKENIZER_FILE)
    examples, counts = make_examples(
        chosen, tokenizer, s.tasks, s.max_question_tokens, s.max_new_tokens, s.commentary_repeats
    )
    if not examples:
        raise VfmError(
            "no training example fits the length limits",
            where="train_commentary(samples)",
            fix="raise max_question_tokens / max_new_tokens or pass more samples",
        )

    driver_settings = torch.from_numpy(np.stack([x.driver_settings() for x in chosen]))  # [N, 2]
    module = CommentaryModule(
        model,
        s,
        examples,
        torch.from_numpy(frames),
        torch.from_numpy(speeds),
        driver_settings,
        tokenizer.pad_id,
        torch.from_numpy(fact_targets(chosen)),
    )
    run = fit(module, s, out_dir, progress=progress, gradient_clip_val=s.gradient_clip)
    files = [str(p) for p in save_commentary_model(model.cpu().eval(), tokenizer, out_dir / "model")]
    return {
        **run.summary(),
        "examples": counts,
        "samples": {"given": len(samples), "labelled": len(labelled), "trained_on": len(chosen)},
        "files": [*files, str(last_checkpoint(out_dir))],
    }
