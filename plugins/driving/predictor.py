"""The driving bundle's predictor: a clip in; a commentary timeline (what the car does and why at
every decision step), an optional answer to a question, and where the model looked out.

Torch-free (onnxruntime, numpy, Pillow, ``tokenizers``). The bundle root is a
:class:`CommentaryRuntime` folder plus ``examples/NN_<scenario>.npz`` episodes (``frames`` uint8
[N, S, S, 3], ``ego_speed`` [N], ``commentary`` [N], ``scenario``, ``driver_settings`` [2]).
Clips come in every form :func:`~vfm.plugins.driving.clip_io.read_clip` reads; frames of another
size than the model's are centre-cropped and resized (:func:`~vfm.plugins.driving.clip_io.fit_frames`).

The model reads windows of ``k`` consecutive frames, one every 0.5 s, the ego speed at each
frame of the window and the driver's settings (set speed and time gap, when known). A clip of
``N >= k`` frames gives ``N - k + 1`` windows (stride 1); the timeline comments on the last
:data:`MAX_WINDOWS` of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vfm.platform.bad_input import BadInput
from vfm.platform.bundle import Bundle
from vfm.platform.errors import VfmError
from vfm.platform.fileio import check_npz_size
from vfm.platform.plugin import Plugin
from vfm.plugins.driving.bad_inputs import driving_bad_inputs
from vfm.plugins.driving.clip_io import FRAME_INTERVAL_S, MAX_NPZ_BYTES, check_speed, read_clip
from vfm.plugins.driving.commentary import parse_commentary
from vfm.plugins.driving.decode import Commentary, CommentaryRuntime, check_driver_settings
from vfm.serve.overlay import overlay_heatmap

MAX_WINDOWS = 60
"""The most windows commented per clip (the last 30 s); each costs one decoding."""

OVERLAY_SIZE = 256
"""Side in pixels of the explanation overlays."""


@dataclass(frozen=True)
class Clip:
    """A clip read for the model.

    Attributes:
        frames: uint8 [N, S, S, 3], oldest first, S the model's image size.
        ego_speed: float32 [N], m/s at each frame (NaN: unknown).
        speed_source: ``"argument"``, ``"clip"`` or ``"unknown"`` (where the speeds came from).
    """

    frames: np.ndarray
    ego_speed: np.ndarray
    speed_source: str


class CommentaryPredictor:
    """Commentary timelines and answers with a driving bundle (see :meth:`predict`)."""

    def __init__(self, bundle: Bundle, plugin: Plugin):
        self.bundle = bundle
        self.plugin = plugin
        self.runtime = CommentaryRuntime(bundle.path)
        self.k: int = self.runtime.settings["frames"]
        self.image_size: int = self.runtime.settings["image_size"]

    def read(self, source: Any, ego_speed: Any = None) -> Clip:
        """The clip in ``source`` (anything :func:`read_clip` reads), fitted to the model's frame
        size, with its speeds: ``ego_speed`` (m/s, one number or one per frame; NaN: not given) where
        given, else the source's, else unknown (NaN).

        Raises:
            VfmError: an unreadable clip, a bad ``ego_speed``, or fewer frames than the model reads.
        """
        frames, speed = read_clip(source, size=self.image_size)
        if len(frames) < self.k:
            raise VfmError(
                f"the clip has {len(frames)} frame{'s' * (len(frames) != 1)}, the model needs at least "
                f"{self.k} (one per {FRAME_INTERVAL_S:g} s)",
                where="clip",
                fix=f"pass a clip of at least {self.k * FRAME_INTERVAL_S:g} s",
            )
        given = (
            np.full(len(frames), np.nan, np.float32)
            if ego_speed is None
            else check_speed(ego_speed, len(frames), "ego_speed")
        )
        source = "argument" if not np.isnan(given).all() else "clip" if not np.isnan(speed).all() else "unknown"
        return Clip(frames, np.where(np.isnan(given), speed, given), source)

    def predict(
        self,
        source: Any,
        question: str | None = None,
        ego_speed: Any = None,
        beam_size: int = 1,
        driver_settings: Any = None,
    ) -> dict[str, Any]:
        """Comment on every window of a clip; answer ``question`` about the last one.

        Args:
            source: a clip (see :meth:`read`); a mapping may also carry ``question``.
            question: asked about the last window (overrides the mapping's).
            ego_speed: m/s, one per frame or one number for the whole clip (read as a constant
                speed); overrides the source's.
            beam_size: beams per decoding (1: greedy).
            driver_settings: ``(set speed m/s, set time gap s)`` of the car's cruise control
                (None / NaN where not given); what is not given is the episode's, when the clip
                is an ``.npz`` that carries ``driver_settings``, else unknown.

        Returns:
            JSON-able fields: ``clip_frames`` (N), ``frames_per_window`` (k), ``frame_interval_s``,
            ``windows`` (N - k + 1), ``ego_speed_source``, ``notes`` (what the reader should know),
            ``timeline`` (one entry per commented window, oldest first: ``step`` t, the index of
            the window's last frame; ``ego_speed`` m/s or None; ``commentary``; ``action`` and
            ``cause`` parsed from it, None when it states none; ``confidence``, the geometric-mean
            probability of its tokens and ``<eos>``; ``frame_attention`` [k], the share of the
            decoder's attention on each frame; ``reference``, the episode's ground-truth commentary
            when the clip is an ``.npz`` that carries one, else None), ``alternatives`` (each beam's text and probability
            for the last window) and, with a question, ``answer`` (``question``, ``answer``,
            ``confidence``, ``step``). Arrays: ``frames`` uint8 [k, S, S, 3], the last window, and
            ``overlay`` uint8 [k, 256, 256, 3], each of its frames with where the model looked
            (encoder saliency weighted by the decoder's attention to that frame).
        """
        if question is None and isinstance(source, Mapping):
            question = source.get("question")
        clip = self.read(source, ego_speed)
        settings = self._settings(source, driver_settings)
        n, k = len(clip.frames), self.k
        references = reference_commentary(source, n)
        steps = range(max(k - 1, n - MAX_WINDOWS), n)
        said = {
            t: self.runtime.comment(
                clip.frames[t - k + 1 : t + 1],
                clip.ego_speed[t - k + 1 : t + 1],
                driver_settings=settings,
                beam_size=beam_size,
            )
            for t in steps
        }
        last = said[n - 1]
        window = clip.frames[n - k :]
        heat = last.overlay()  # [k, G, G]
        result: dict[str, Any] = {
            "clip_frames": n,
            "frames_per_window": k,
            "frame_interval_s": FRAME_INTERVAL_S,
            "windows": n - k + 1,
            "ego_speed_source": clip.speed_source,
            "driver_settings": {"set_speed": _known(settings[0]), "set_time_gap": _known(settings[1])},
            "notes": self._notes(clip, len(steps)),
            "timeline": [
                {
                    "step": t,
                    "ego_speed": _speed(clip, t),
                    **_describe(said[t]),
                    "reference": references[t] if references else None,
                }
                for t in steps
            ],
            "alternatives": [{"text": text, "probability": p} for text, p in last.alternatives],
            "frames": window,
            "overlay": np.stack([overlay_heatmap(frame, h, size=OVERLAY_SIZE) for frame, h in zip(window, heat)]),
        }
        if question is not None:
            result["answer"] = self._answer(clip, question, beam_size, settings)
        return result

    def ask(
        self, source: Any, question: str, ego_speed: Any = None, beam_size: int = 1, driver_settings: Any = None
    ) -> dict[str, Any]:
        """The answer to ``question`` about the clip's last window: ``{"question", "answer",
        "confidence", "step"}`` (see :meth:`predict`)."""
        if not isinstance(question, str) or not question.strip():
            raise VfmError(
                "the question is empty",
                where="question",
                fix="type a question about the clip, e.g. 'Is it safe to change lanes to the left?'",
            )
        return self._answer(self.read(source, ego_speed), question, beam_size, self._settings(source, driver_settings))

    def bad_inputs(self, folder: Path) -> list[BadInput]:
        """Wrong clips and fields (:func:`vfm.plugins.driving.bad_inputs.driving_bad_inputs`)."""
        return driving_bad_inputs(folder, self.k)

    def smoke_inputs(self) -> list[Any]:
        """Arguments of the demo's ``/<name>_predict`` endpoint: the first bundled episode as the
        clip upload, and no ego speed (the episode's own speeds are used)."""
        from gradio_client import handle_file

        episodes = self.episodes()
        if not episodes:
            raise VfmError(
                "the bundle has no example episodes",
                where=str(self.bundle.path / "examples"),
                fix="re-export the bundle with demo.n_examples > 0",
            )
        return [[handle_file(str(episodes[0]))], None]

    def episodes(self) -> list[Path]:
        """The bundled example episodes (``examples/NN_<scenario>.npz``), in order."""
        return [path for path in self.bundle.examples() if path.suffix == ".npz"]

    @staticmethod
    def _settings(source: Any, driver_settings: Any) -> np.ndarray:
        """The driver's settings [2]: each the argument's where given, else the episode's, else NaN."""
        given = check_driver_settings(driver_settings)
        return np.where(np.isnan(given), check_driver_settings(episode_settings(source)), given)

    def _answer(self, clip: Clip, question: str, beam_size: int, settings: np.ndarray) -> dict[str, Any]:
        n = len(clip.frames)
        reply = self.runtime.answer(
            clip.frames[n - self.k :],
            clip.ego_speed[n - self.k :],
            question,
            driver_settings=settings,
            beam_size=beam_size,
        )
        return {"question": question.strip(), "answer": reply.text, "confidence": _confidence(reply), "step": n - 1}

    def _notes(self, clip: Clip, commented: int) -> list[str]:
        notes = []
        if clip.speed_source == "unknown":
            notes.append(
                "The ego speed is unknown (the clip carries none and none was given); the model comments "
                "from the frames alone, so statements about our speed are guesses."
            )
        skipped = len(clip.frames) - self.k + 1 - commented
        if skipped:
            notes.append(
                f"Only the last {commented} windows ({commented * FRAME_INTERVAL_S:g} s) are commented; "
                f"the first {skipped} are skipped."
            )
        return notes


def _episode_array(source: Any, name: str) -> np.ndarray | None:
    """Array ``name`` of an ``.npz`` episode (a path, or a one-element list of one), or None for
    any other source or an episode without it."""
    paths = source if isinstance(source, (list, tuple)) and len(source) == 1 else [source]
    path = paths[0]
    if not isinstance(path, (str, Path)) or Path(path).suffix.lower() != ".npz":
        return None
    check_npz_size(path, MAX_NPZ_BYTES)
    with np.load(path, allow_pickle=False) as data:
        return data[name] if name in data.files else None


def reference_commentary(source: Any, n: int) -> list[str] | None:
    """The ground-truth commentary per frame of an ``.npz`` episode (a bundled example carries
    ``commentary`` [N]), or None for any other source or a length that does not match the clip."""
    text = _episode_array(source, "commentary")
    return None if text is None or text.shape != (n,) else [str(t) for t in text]


def episode_settings(source: Any) -> np.ndarray | None:
    """The driver's settings [2] an ``.npz`` episode carries (``driver_settings``: set speed m/s,
    set time gap s), or None."""
    return _episode_array(source, "driver_settings")


def _known(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _speed(clip: Clip, t: int) -> float | None:
    """The ego speed at frame ``t`` (m/s), None when unknown."""
    value = float(clip.ego_speed[t])
    return None if math.isnan(value) else value


def _confidence(said: Commentary) -> float:
    """The geometric mean of the probabilities of the tokens and ``<eos>`` (when reached)."""
    return math.exp(said.log_prob / max(len(said.tokens) + said.finished, 1))


def _describe(said: Commentary) -> dict[str, Any]:
    action, cause = parse_commentary(said.text)
    return {
        "commentary": said.text,
        "action": action,
        "cause": cause,
        "confidence": _confidence(said),
        "frame_attention": [float(a) for a in said.frame_attention],
    }
