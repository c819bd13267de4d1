"""Commentary and answers from an exported commentary model: greedy and beam decoding in numpy.

Torch-free: numpy, onnxruntime and ``tokenizers``. The loops run over any :class:`Backend`
(the exported graphs of :mod:`vfm.plugins.driving.export` here), in two modes:

- cached: ``decoder.onnx`` reads the prompt once (prefill, returning the key/value cache),
  then ``decoder_step.onnx`` reads one token per step with the cache;
- uncached: ``decoder.onnx`` reads the whole sequence again at every step.

Both give the same tokens. Beam search runs the live beams as one batch and ranks finished
hypotheses by ``log p / length ** length_penalty`` (length counts ``<eos>``); greedy decoding is
beam search with one beam.

What comes back with the text, for the demo's overlays: each generated token's probability, the
decoder's attention over the visual prefix at each token, and the encoder's class-token attention
over each frame's patches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vfm.platform.errors import VfmError
from vfm.platform.fileio import read_format_json
from vfm.plugins.driving.clip_io import check_speed
from vfm.plugins.driving.tokenizer import TOKENIZER_FILE, DrivingTokenizer
from vfm.serve.numeric import log_softmax

SETTINGS_FILE = "driving_model.json"
WEIGHTS_FILE = "commentary.safetensors"
"""The torch model's weights (a training run's ``model/`` folder), decoded by
:class:`vfm.plugins.driving.model.TorchBackend` when the folder has no ONNX graphs."""
SETTINGS_FORMAT = "vfm-driving-commentary-onnx/3"  # 3: the driver's settings, 2: a speed per frame
ENCODER_ONNX, DECODER_ONNX, STEP_ONNX = "encoder.onnx", "decoder.onnx", "decoder_step.onnx"


class Backend(Protocol):
    """The three exported graphs over numpy arrays."""

    def encode(self, frames: np.ndarray, speed: np.ndarray, settings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """frames float32 [B, k, 3, H, W] in [0, 1], speed [B, k], settings [B, 2] -> (prefix [B, P, D],
        saliency [B, k, G, G])."""
        ...

    def full(
        self, prefix: np.ndarray, tokens: np.ndarray, with_cache: bool
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray] | None]:
        """prefix [B, P, D], tokens int64 [B, T] -> (logits [B, V], prefix_attention [B, P],
        the cache (key_0, value_0, ...) each [B, H, P+T, hd], or None unless ``with_cache``)."""
        ...

    def step(self, tokens: np.ndarray, past: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """tokens int64 [B, 1], past: each [B, H, T, hd] -> (logits, prefix_attention, cache with T+1)."""
        ...


class OnnxBackend:
    """``encoder.onnx``, ``decoder.onnx`` and ``decoder_step.onnx`` in onnxruntime (CPU)."""

    def __init__(self, folder: str | Path):
        from vfm.serve.runtime import onnx_session

        folder = Path(folder)
        self.encoder = onnx_session(folder / ENCODER_ONNX)
        self.decoder = onnx_session(folder / DECODER_ONNX)
        self.decoder_step = onnx_session(folder / STEP_ONNX)
        self.past_names = [i.name for i in self.decoder_step.get_inputs() if i.name.startswith("past_")]
        self.present_names = [o.name for o in self.decoder_step.get_outputs() if o.name.startswith("present_")]

    def encode(self, frames, speed, settings):
        prefix, saliency = self.encoder.run(
            ["prefix", "saliency"], {"frames": frames, "speed": speed, "settings": settings}
        )
        return prefix, saliency

    def full(self, prefix, tokens, with_cache):
        names = ["logits", "prefix_attention", *(self.present_names if with_cache else [])]
        logits, attention, *present = self.decoder.run(names, {"prefix": prefix, "tokens": tokens})
        return logits, attention, present if with_cache else None

    def step(self, tokens, past):
        logits, attention, *present = self.decoder_step.run(
            ["logits", "prefix_attention", *self.present_names],
            {"tokens": tokens, **dict(zip(self.past_names, past, strict=True))},
        )
        return logits, attention, present


def default_backend(folder: Path) -> Backend:
    """The folder's ONNX graphs, else its torch weights.

    Raises:
        VfmError: it holds neither.
    """
    if (folder / ENCODER_ONNX).is_file():
        return OnnxBackend(folder)
    if (folder / WEIGHTS_FILE).is_file():
        from vfm.plugins.driving.model import TorchBackend, load_commentary_model

        return TorchBackend(load_commentary_model(folder)[0])
    raise VfmError(
        f"no commentary model in the folder (neither {ENCODER_ONNX} nor {WEIGHTS_FILE})",
        where=str(folder),
        fix="pass a driving bundle or the model/ folder of 'vfm finetune driving'",
    )


@dataclass
class Hypothesis:
    """One decoded sequence: ``tokens`` generated (``<eos>`` excluded), each one's ``log_probs``
    and the decoder's prefix ``attention`` [P] when it was chosen; ``log_prob`` sums them all,
    ``<eos>``'s included; ``finished``: it ended with ``<eos>``."""

    tokens: list[int] = field(default_factory=list)
    log_probs: list[float] = field(default_factory=list)
    attention: list[np.ndarray] = field(default_factory=list, repr=False)
    log_prob: float = 0.0
    finished: bool = False

    def score(self, length_penalty: float) -> float:
        """``log_prob / length ** length_penalty``, the length counting ``<eos>``."""
        return self.log_prob / max(len(self.tokens) + self.finished, 1) ** length_penalty


def beam_decode(
    backend: Backend,
    prefix: np.ndarray,
    prompt: list[int],
    *,
    eos_id: int,
    max_new_tokens: int,
    beam_size: int = 1,
    use_cache: bool = True,
    length_penalty: float = 1.0,
) -> list[Hypothesis]:
    """Beam search after ``prompt`` for one clip: up to ``beam_size`` hypotheses, best first.

    Args:
        backend: the model.
        prefix: [1, P, D], the clip's visual prefix (:meth:`Backend.encode`).
        prompt: ``<bos> question <sep>`` ids (:meth:`DrivingTokenizer.prompt`).
        eos_id: ends a hypothesis.
        max_new_tokens: the most tokens generated, ``<eos>`` included; hypotheses still open
            then are returned unfinished.
        beam_size: 1 is greedy decoding (the arg-max, lowest id on ties, as torch).
        use_cache: cached (prefill + steps) or uncached decoding; same tokens.
        length_penalty: exponent of the length normalisation (0: raw log-probability).
    """
    if beam_size < 1:
        raise VfmError(f"beam_size must be at least 1, got {beam_size}", where="beam_decode", fix="pass beam_size >= 1")
    live, finished = [Hypothesis()], []
    cache: list[np.ndarray] | None = None
    for step in range(max_new_tokens):
        n = len(live)
        if step == 0 or not use_cache:
            sequences = np.array([prompt + h.tokens for h in live], dtype=np.int64)  # [n, T]
            logits, attention, present = backend.full(np.repeat(prefix, n, axis=0), sequences, use_cache)
        else:
            logits, attention, present = backend.step(np.array([[h.tokens[-1]] for h in live], dtype=np.int64), cache)
        log_p = log_softmax(logits)  # [n, V]
        best = np.argsort(-log_p, axis=1, kind="stable")[:, :beam_size]  # [n, beam]
        candidates = sorted(
            ((live[i].log_prob + log_p[i, t], i, int(t)) for i in range(n) for t in best[i]), key=lambda c: -c[0]
        )
        survivors, parents = [], []
        for total, i, token in candidates[: beam_size - len(finished)]:
            parent = live[i]
            if token == eos_id:
                finished.append(Hypothesis(parent.tokens, parent.log_probs, parent.attention, total, True))
            else:
                survivors.append(
                    Hypothesis(
                        [*parent.tokens, token],
                        [*parent.log_probs, float(log_p[i, token])],
                        [*parent.attention, attention[i]],
                        total,
                    )
                )
                parents.append(i)
        live = survivors
        if not live:
            break
        if use_cache:  # each [n', H, T, hd]: the survivors' parents' rows (no copy when every beam survives in order)
            cache = present if parents == list(range(n)) else [layer[parents] for layer in present]
    return sorted(finished + live, key=lambda h: -h.score(length_penalty))[:beam_size]


@dataclass(frozen=True)
class Commentary:
    """What the model says about one clip (commentary, or the answer to a question).

    Attributes:
        text: the sentence.
        tokens: its token ids (``<eos>`` excluded).
        token_probs: each token's probability when it was chosen.
        log_prob: the summed log-probability of the tokens and ``<eos>``.
        finished: the model ended the sentence (else it hit ``max_new_tokens``).
        prefix_attention: [n, P], the decoder's attention over the visual prefix at each token.
        frame_attention: [k], the share of the decoder's attention on each frame's prefix tokens,
            averaged over the tokens (the rest is on the ego token and the text).
        speed_attention: the same share on the ego token (the speed trace and the driver's settings).
        saliency: [k, G, G], the encoder's class-token attention over each frame's patches
            (sums to 1 per frame).
        alternatives: ``(text, probability)`` of every beam, best first.
    """

    text: str
    tokens: tuple[int, ...]
    token_probs: tuple[float, ...]
    log_prob: float
    finished: bool
    prefix_attention: np.ndarray = field(repr=False)
    frame_attention: np.ndarray = field(repr=False)
    speed_attention: float
    saliency: np.ndarray = field(repr=False)
    alternatives: tuple[tuple[str, float], ...] = ()

    def overlay(self) -> np.ndarray:
        """[k, G, G] in [0, 1]: each frame's saliency weighted by the decoder's attention to that
        frame, scaled by the largest value (upsample it onto the frames to show it)."""
        heat = self.saliency * self.frame_attention[:, None, None]  # [k, G, G]
        return heat / max(float(heat.max()), 1e-12)


def check_driver_settings(value: Any) -> np.ndarray:
    """The driver's settings as float32 [2]: ``(set speed m/s, set time gap s)``; None (or a
    None / NaN entry) for what is unknown.

    Raises:
        VfmError: not two numbers, or a negative or infinite one.
    """
    fix = "pass (set speed in m/s, set time gap in s), None or NaN where unknown, or leave them out"
    if value is None:
        return np.full(2, np.nan, np.float32)
    try:
        if any(isinstance(v, bool) for v in value):  # not a number, as the generic loader says too
            raise TypeError
        settings = np.array([np.nan if v is None else v for v in value], dtype=np.float32)
    except (TypeError, ValueError):
        raise VfmError(
            f"driver_settings must be two numbers, not {value!r}"[:200], where="driver_settings", fix=fix
        ) from None
    known = settings[~np.isnan(settings)]
    if settings.shape != (2,) or np.any(known < 0) or not np.all(np.isfinite(known)):
        raise VfmError(
            f"driver_settings {value!r} is not (set speed, set time gap), each non-negative"[:200],
            where="driver_settings",
            fix=fix,
        )
    return settings


def read_settings(folder: str | Path) -> dict[str, Any]:
    """The exported model's decoding settings (``driving_model.json``).

    Raises:
        VfmError: the file is missing or not a driving commentary model's.
    """
    return read_format_json(
        Path(folder) / SETTINGS_FILE,
        SETTINGS_FORMAT,
        what="an exported driving commentary model",
        written_by="vfm.plugins.driving.export.export_commentary",
    )


class CommentaryRuntime:
    """Commentary and answers for clips, from a bundle or a training run's ``model/`` folder.

    Args:
        folder: holds ``driving_model.json``, ``tokenizer.json`` and the model: the three ONNX
            graphs of :func:`vfm.plugins.driving.export.export_commentary` (a bundle), or the
            torch weights of :func:`vfm.plugins.driving.model.save_commentary_model` (a run).
        backend: the model to decode with; default: the folder's ONNX graphs, else its torch
            weights (torch is imported only then).

    Raises:
        VfmError: the folder holds neither.
    """

    def __init__(self, folder: str | Path, *, backend: Backend | None = None):
        folder = Path(folder)
        self.settings = read_settings(folder)
        self.tokenizer = DrivingTokenizer.load(folder / TOKENIZER_FILE)
        self.backend = backend if backend is not None else default_backend(folder)

    def preprocess(self, frames: np.ndarray) -> np.ndarray:
        """uint8 RGB clip [k, H, W, 3], oldest frame first -> float32 [1, k, 3, H, W] in [0, 1].

        Raises:
            VfmError: the clip's length, frame size, channels or dtype is not what the model reads.
        """
        k, size = self.settings["frames"], self.settings["image_size"]
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise VfmError(
                f"the clip has shape {list(frames.shape)}, expected [k, H, W, 3] RGB",
                where="frames",
                fix=f"pass {k} RGB frames as one uint8 array [{k}, {size}, {size}, 3]",
            )
        if frames.shape[0] != k:
            raise VfmError(
                f"the clip has {frames.shape[0]} frames, the model reads {k}",
                where="frames",
                fix=f"pass the last {k} frames of the drive, oldest first",
            )
        if frames.shape[1:3] != (size, size):
            raise VfmError(
                f"frames are {frames.shape[1]}x{frames.shape[2]} (HxW), the model reads {size}x{size}",
                where="frames",
                fix=f"resize the frames to {size}x{size} before decoding",
            )
        if frames.dtype != np.uint8:
            raise VfmError(
                f"frames are {frames.dtype}, expected uint8", where="frames", fix="pass uint8 RGB frames (0-255)"
            )
        return (frames.transpose(0, 3, 1, 2)[None] / np.float32(255.0)).astype(np.float32)

    def speed_trace(self, ego_speed: Any) -> np.ndarray:
        """The ego speed at each of the clip's k frames, float32 [k] m/s, NaN where unknown, from
        None (unknown), one number (the last frame's) or k numbers (oldest first).

        Raises:
            VfmError: not numbers, not k of them, or a negative or infinite speed.
        """
        k = self.settings["frames"]
        trace = np.full(k, np.nan, np.float32)
        if ego_speed is None:
            return trace
        if np.ndim(ego_speed) == 0:
            trace[-1] = check_speed(ego_speed, 1, "ego_speed")[0]
            return trace
        return check_speed(ego_speed, k, "ego_speed")

    def comment(self, frames: np.ndarray, ego_speed: Any, **options) -> Commentary:
        """What the car does and why. ``options``: see :meth:`run`."""
        return self.run(frames, ego_speed, None, **options)

    def answer(self, frames: np.ndarray, ego_speed: Any, question: str, **options) -> Commentary:
        """The answer to ``question`` about the clip. ``options``: see :meth:`run`."""
        return self.run(frames, ego_speed, question, **options)

    def run(
        self,
        frames: np.ndarray,
        ego_speed: Any,
        question: str | None = None,
        *,
        driver_settings: Any = None,
        beam_size: int = 1,
        use_cache: bool = True,
        max_new_tokens: int | None = None,
        length_penalty: float = 1.0,
    ) -> Commentary:
        """Decode for one clip.

        Args:
            frames: uint8 [k, H, W, 3], oldest first (see :meth:`preprocess`).
            ego_speed: m/s: one per frame (oldest first, NaN where unknown), or one number for
                the last frame alone, or None when unknown.
            question: None for commentary, else a non-empty question.
            driver_settings: ``(set speed m/s, set time gap s)`` of the car's cruise control
                (None or NaN for what is unknown; see :func:`check_driver_settings`).
            beam_size: 1 decodes greedily.
            use_cache: the key/value-cached graphs (faster) or the uncached one; same tokens.
            max_new_tokens: at most the exported model's ``max_new_tokens`` (the default).
            length_penalty: see :func:`beam_decode`.
        """
        prompt = self._prompt(question)
        limit = self.settings["max_new_tokens"] if max_new_tokens is None else max_new_tokens
        if not 1 <= limit <= self.settings["max_new_tokens"]:
            raise VfmError(
                f"max_new_tokens {limit} is outside 1..{self.settings['max_new_tokens']}",
                where="max_new_tokens",
                fix="use at most the exported model's max_new_tokens",
            )
        speed = self.speed_trace(ego_speed)[None]  # [1, k]
        settings = check_driver_settings(driver_settings)[None]  # [1, 2]
        prefix, saliency = self.backend.encode(self.preprocess(frames), speed, settings)  # [1, P, D], [1, k, G, G]
        beams = beam_decode(
            self.backend,
            prefix,
            prompt,
            eos_id=self.tokenizer.eos_id,
            max_new_tokens=limit,
            beam_size=beam_size,
            use_cache=use_cache,
            length_penalty=length_penalty,
        )
        best = beams[0]
        k, slots = self.settings["frames"], self.settings["slots"]
        attention = (
            np.stack(best.attention) if best.attention else np.zeros((0, self.settings["prefix_length"]), np.float32)
        )  # [n, P]
        per_frame = attention[:, : k * slots].reshape(len(attention), k, slots).sum(axis=2)  # [n, k]
        return Commentary(
            text=self.tokenizer.decode(best.tokens),
            tokens=tuple(best.tokens),
            token_probs=tuple(math.exp(lp) for lp in best.log_probs),
            log_prob=best.log_prob,
            finished=best.finished,
            prefix_attention=attention,
            frame_attention=per_frame.mean(axis=0) if len(attention) else np.zeros(k, np.float32),
            speed_attention=float(attention[:, -1].mean()) if len(attention) else 0.0,
            saliency=saliency[0],
            alternatives=tuple((self.tokenizer.decode(h.tokens), math.exp(h.log_prob)) for h in beams),
        )

    def _prompt(self, question: str | None) -> list[int]:
        if question is None:
            return self.tokenizer.prompt(None)
        if not question.strip():
            raise VfmError(
                "the question is empty",
                where="question",
                fix="type a question about the clip, or ask for commentary (no question)",
            )
        prompt = self.tokenizer.prompt(question.strip())
        if len(prompt) - 2 > self.settings["max_question_tokens"]:
            raise VfmError(
                f"the question has {len(prompt) - 2} tokens, the model reads at most "
                f"{self.settings['max_question_tokens']}",
                where="question",
                fix="shorten the question",
            )
        return prompt
