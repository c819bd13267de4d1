"""The driving pipeline: simulator data -> MAE on frames -> commentary model -> evaluation -> bundle.

Each method is one CLI verb (``vfm pretrain|finetune|evaluate|export driving``). Config sections:

- ``data``: ``source`` is ``synthetic`` (highway-env episodes, split by seed and by scenario:
  :func:`vfm.plugins.driving.simulate.split_plan`) or a folder in the generic format
  (``samples.jsonl`` + frames, :func:`vfm.plugins.driving.loaders.load_generic`), with
  ``train_split``/``val_split`` naming sub-folders (``null``: the folder itself). Synthetic
  datasets are written once (generic format) under ``$VFM_CACHE_DIR/driving-data/<key>/`` and
  read back afterwards.
- ``pretrain``: ``preset`` and ``patch_size`` (null: the preset's; the tiny preset picks 16 px
  patches at 96 px, a 6 x 6 grid, so ``8`` gives 12 x 12) plus
  :class:`vfm.pretrain.mae_training.PretrainSettings` fields: MAE on the unlabelled training
  frames, normalised as the commentary model reads them.
- ``finetune``: ``pretrained`` (``encoder.safetensors`` of ``vfm pretrain driving``; ``null``: a
  random encoder) plus :class:`vfm.plugins.driving.training.CommentaryTrainSettings` fields.
- ``evaluate``: ``beam_size``, ``max_samples`` (per evaluation set), ``qa`` (score the answers too).

A fine-tune run holds the torch model (``model/``, which also decodes) and ``metrics.json``: action /
cause / QA accuracy and caption metrics on held-out seeds and on the scenario never seen in
training. ``export`` converts the model to ONNX, checks it against torch (graph outputs and greedy
tokens) and writes the bundle.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from vfm.platform.config import build_settings, deep_merge, load_yaml_file, write_config
from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_json, read_json_if_any
from vfm.platform.plugin import Plugin
from vfm.platform.registry import vfm_version
from vfm.plugins.driving.decode import (
    DECODER_ONNX,
    ENCODER_ONNX,
    SETTINGS_FILE,
    STEP_ONNX,
    WEIGHTS_FILE,
)
from vfm.plugins.driving.records import DrivingSample
from vfm.plugins.driving.tokenizer import TOKENIZER_FILE

SYNTHETIC = "synthetic"
MODEL_DIR = "model"
LEGACY_ONNX_DIR = "onnx"
"""Where runs before export moved out of ``finetune`` kept their ONNX graphs (still read by ``evaluate``)."""
DATA_FORMAT = 4
"""Version of what the generator writes (2: speeds per frame, 3: the driver's settings, 4: road
cameras that show 70-75 m ahead); part of the cache key."""
RETIRED_OPTIONS = {("data", "road_camera"): "square", ("finetune", "motion"): False}
"""Options removed after they were measured as no gain (docs/results/driving.md, 'What each option
did (ablation)': frame differences, a road camera at twice the pixels per metre), with the value every
run had without them: configs written before (``config.yaml`` of a run or bundle) hold it and read as
before; any other value is refused."""
SYNTHETIC_SPLITS = ("train", "test_seeds", "test_scenario")
"""Synthetic splits: training episodes, held-out seeds of the training scenarios, and the
held-out scenario type."""


class DrivingPipeline:
    """Pretrain, fine-tune, evaluate and export the commentary model of one plugin."""

    def __init__(self, plugin: Plugin):
        self.plugin = plugin
        self.manifest = plugin.manifest

    # ------------------------------------------------------------------ config
    def default_config(self) -> dict[str, Any]:
        training = self.manifest.training
        return {
            "plugin": self.plugin.name,
            "data": {
                "source": SYNTHETIC,
                "train_split": "train",
                "val_split": "test_seeds",
                **training.get("data", {}),
            },
            "pretrain": {"preset": "tiny", "patch_size": None, **training.get("pretrain", {})},
            "finetune": {"pretrained": None, **training.get("finetune", {})},
            "evaluate": {
                "beam_size": 1,
                "max_samples": None,
                "qa": True,
                "driver_settings": True,
                **training.get("evaluate", {}),
            },
        }

    def resolve(self, config: dict[str, Any]) -> dict[str, Any]:
        return _without_retired(deep_merge(self.default_config(), config))

    # -------------------------------------------------------------------- data
    def load_split(self, config: dict[str, Any], split: str) -> list[DrivingSample]:
        """The samples of ``split`` (a synthetic split name, or a sub-folder of ``data.source``)."""
        from vfm.plugins.driving.loaders import load_generic

        data = config["data"]
        if data["source"] != SYNTHETIC:
            root = Path(data["source"])
            if split and not (root / split).is_dir():
                raise VfmError(
                    f"no split folder {split!r}",
                    where=str(root),
                    fix="point data.train_split / data.val_split at sub-folders of your data, or use the "
                    "whole folder with --set data.train_split=null",
                )
            return load_generic(root / split if split else root, clip_length=data.get("clip_length"))
        if split not in SYNTHETIC_SPLITS:
            raise VfmError(f"unknown synthetic split {split!r}", fix=f"use one of {', '.join(SYNTHETIC_SPLITS)}")
        folder = self._synthetic_folder(data) / split
        if not (folder / "samples.jsonl").is_file():
            from vfm.plugins.driving.simulate import generate_episodes, write_dataset

            plan = self._plan(data)
            started = time.perf_counter()
            samples = generate_episodes(
                getattr(plan, split), clip_length=int(data["clip_length"]), frame_size=int(data["frame_size"])
            )
            write_dataset(samples, folder, overwrite=True)
            print(
                f"driving: simulated {len(getattr(plan, split))} episodes ({len(samples)} samples) for "
                f"'{split}' in {time.perf_counter() - started:.0f} s -> {folder}",
                flush=True,
            )
        return load_generic(folder, clip_length=int(data["clip_length"]))

    @staticmethod
    def _plan(data: dict[str, Any]) -> Any:
        from vfm.plugins.driving.simulate import split_plan

        return split_plan(
            list(data["scenarios"]),
            n_train=int(data["train_episodes"]),
            n_held_out=int(data["test_episodes"]),
            held_out_scenario=data["held_out_scenario"],
            seed=int(data["seed"]),
        )

    @staticmethod
    def _synthetic_folder(data: dict[str, Any]) -> Path:
        """Where a synthetic dataset lives: keyed by everything that changes its content."""
        from vfm.platform.demo import cache_root

        keys = (
            "scenarios",
            "held_out_scenario",
            "train_episodes",
            "test_episodes",
            "clip_length",
            "frame_size",
            "seed",
        )
        recipe = json.dumps({k: data[k] for k in keys} | {"vfm": vfm_version(), "format": DATA_FORMAT}, sort_keys=True)
        return cache_root() / "driving-data" / hashlib.sha256(recipe.encode()).hexdigest()[:12]

    # ---------------------------------------------------------------- pretrain
    def pretrain(self, config: dict[str, Any], out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
        """MAE-pretrain the frame encoder on the distinct frames of the training clips (no labels)."""
        from vfm.platform.training.checkpoints import keep_trained_result
        from vfm.plugins.driving.model import CommentaryConfig
        from vfm.pretrain.mae import MaeConfig
        from vfm.pretrain.mae_training import PretrainSettings, pretrain_mae

        config = self.resolve(config)
        section = dict(config["pretrain"])
        preset, patch_size = section.pop("preset"), section.pop("patch_size")
        settings = build_settings(PretrainSettings, section, "pretrain")
        frames = distinct_frames(self.load_split(config, config["data"]["train_split"]))  # [N, S, S, 3]
        mean, std = CommentaryConfig.mean, CommentaryConfig.std  # as the commentary model normalises frames
        shape = (1, 3, 1, 1)
        pixels = (
            frames.transpose(0, 3, 1, 2) / np.float32(255.0) - np.asarray(mean, np.float32).reshape(shape)
        ) / np.asarray(std, np.float32).reshape(shape)  # [N, 3, S, S]
        out_dir.mkdir(parents=True, exist_ok=True)
        write_config(config, out_dir)
        mae = MaeConfig.preset(preset, img_size=frames.shape[1], patch_size=patch_size)
        metrics = pretrain_mae(
            pixels.astype(np.float32),
            mae,
            settings,
            out_dir,
            progress=progress,
            extra_meta={"mean": list(mean), "std": list(std), "plugin": self.plugin.name, "frames": len(frames)},
        )
        metrics = keep_trained_result(metrics, read_json_if_any(out_dir / "metrics.json"))
        atomic_write_json(out_dir / "metrics.json", metrics)
        return metrics

    # ---------------------------------------------------------------- finetune
    def finetune(self, config: dict[str, Any], out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
        """Train the commentary model and score it on the held-out sets (``export`` converts it to ONNX)."""
        from vfm.platform.pipeline import record_base_model
        from vfm.platform.training.checkpoints import keep_trained_result
        from vfm.plugins.driving.training import CommentaryTrainSettings, train_commentary

        config = self.resolve(config)
        section = dict(config["finetune"])
        pretrained = section.pop("pretrained")
        if "pretrained_encoder" in section:
            raise VfmError(
                "finetune.pretrained_encoder is set through finetune.pretrained (or --pretrained)",
                fix="set finetune.pretrained instead",
            )
        settings = build_settings(CommentaryTrainSettings, section | {"pretrained_encoder": pretrained}, "finetune")
        train = self.load_split(config, config["data"]["train_split"])
        out_dir.mkdir(parents=True, exist_ok=True)
        write_config(config, out_dir)
        record_base_model(out_dir, settings.text_model or pretrained)
        training = keep_trained_result(
            train_commentary(train, settings, out_dir, progress=progress),
            (read_json_if_any(out_dir / "metrics.json") or {}).get("training"),
        )
        metrics = {"training": training, "evaluation": self._evaluate_sets(out_dir / MODEL_DIR, config)}
        atomic_write_json(out_dir / "metrics.json", metrics)
        return metrics

    def _evaluate_sets(self, model_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
        """Scores on the validation split and, for synthetic data, on the unseen scenario too."""
        names = [config["data"]["val_split"]]
        if config["data"]["source"] == SYNTHETIC:
            names.append("test_scenario")
        return {
            name: evaluate_samples(model_dir, self.load_split(config, name), **_evaluate_options(config))
            for name in names
        }

    # ---------------------------------------------------------------- evaluate
    def evaluate(
        self,
        run_dir: Path,
        config_overrides: dict[str, Any] | None = None,
        *,
        source: str | None = None,
        split: str | None = None,
    ) -> dict[str, Any]:
        """Score a run (or a bundle) on any dataset in the generic format, or on the run's held-out sets."""
        from vfm.plugins.driving.loaders import load_generic

        model_dir = model_folder(run_dir)
        config = self.resolve(deep_merge(_run_config(run_dir), config_overrides or {}))
        if source:
            folder = Path(source) / split if split else Path(source)
            return {
                "data": str(folder),
                **evaluate_samples(model_dir, load_generic(folder), **_evaluate_options(config)),
            }
        if split:
            return {split: evaluate_samples(model_dir, self.load_split(config, split), **_evaluate_options(config))}
        return self._evaluate_sets(model_dir, config)

    # ------------------------------------------------------- demo and validate
    def smoke_config(self) -> dict[str, Any]:
        """A seconds-long config for ``vfm plugins validate``: same code path, tiny sizes."""
        return {
            "data": {
                "scenarios": ["highway", "roundabout"],
                "train_episodes": 1,
                "test_episodes": 1,
                "frame_size": 32,
                "clip_length": 2,
            },
            "pretrain": {"max_steps": 2, "batch_size": 8, "warmup_steps": 1, "patch_size": 4},
            "finetune": {
                "max_steps": 3,
                "batch_size": 8,
                "warmup_steps": 1,
                "decoder": "gpt2-tiny",
                "vocab_size": 300,
                "max_new_tokens": 24,
            },
            "evaluate": {"max_samples": 2},
        }

    def check_forward(self) -> dict[str, Any]:
        """Fake-input forward pass: random clips through an untrained model, shapes checked."""
        import torch

        from vfm.plugins.driving.training import CommentaryTrainSettings, build_model

        config = self.resolve(self.smoke_config())
        k, size = int(config["data"]["clip_length"]), int(config["data"]["frame_size"])
        section = {key: v for key, v in config["finetune"].items() if key != "pretrained"}
        settings = build_settings(CommentaryTrainSettings, section, "finetune")
        model, tokenizer = build_model(settings, k, size, ["slowing down: the car ahead is slower"])
        frames, speed = torch.rand(2, k, 3, size, size), torch.tensor([[10.0] * k, [float("nan")] * k])
        with torch.no_grad():
            prefix, saliency = model.prefix(frames, speed, with_saliency=True)
        expected = (2, model.config.prefix_length)
        if tuple(prefix.shape[:2]) != expected or tuple(saliency.shape[:2]) != (2, k):
            raise VfmError(
                f"prefix {list(prefix.shape)} / saliency {list(saliency.shape)} do not match "
                f"[2, {model.config.prefix_length}, D] / [2, {k}, G, G]"
            )
        return {"prefix": list(prefix.shape), "saliency": list(saliency.shape), "vocab": tokenizer.vocab_size}

    def build_demo_bundle(self, work_dir: Path, *, config: dict[str, Any] | None = None, progress: bool = True) -> Path:
        """Pretrain, fine-tune from the pretrained encoder and export, in ``work_dir`` (finished
        steps are reused; an interrupted training resumes from its checkpoint)."""
        config = config or {}
        pretrain_dir, finetune_dir = work_dir / "pretrain", work_dir / "finetune"
        if not (pretrain_dir / "encoder.safetensors").is_file():
            self.pretrain(config, pretrain_dir, progress=progress)
        if not (finetune_dir / "metrics.json").is_file():
            encoder = {"finetune": {"pretrained": str(pretrain_dir / "encoder.safetensors")}}
            self.finetune(deep_merge(config, encoder), finetune_dir, progress=progress)
        return self.export(finetune_dir, work_dir / "bundle", progress=progress)

    # ------------------------------------------------------------------ export
    def export(self, run_dir: Path, out: Path, *, progress: bool = True) -> Path:
        """Convert a run's model to ONNX, check it against torch (every graph's outputs, and the greedy
        tokens on clips of the validation split) and bundle it with example episodes (held-out seeds
        and the unseen scenario)."""
        from vfm.platform.pipeline import OutputParity, ParityReport, write_run_bundle
        from vfm.plugins.driving.export import export_commentary
        from vfm.plugins.driving.model import load_commentary_model
        from vfm.plugins.driving.training import clip_array

        model_dir = Path(run_dir) / MODEL_DIR
        if not (model_dir / WEIGHTS_FILE).is_file():
            raise VfmError(
                "not a driving training run (no model/commentary.safetensors)",
                where=str(run_dir),
                fix="pass the --out folder of 'vfm finetune driving'",
            )
        config = self.resolve(_run_config(run_dir))
        metrics = json.loads((Path(run_dir) / "metrics.json").read_text("utf-8"))
        model, tokenizer = load_commentary_model(model_dir)
        chosen = [s for s in self.load_split(config, config["data"]["val_split"]) if s.frames is not None][:8]
        clips, speeds = clip_array(chosen)
        questions = [
            q
            for q in (pair.question for pair in chosen[0].qa)
            if len(tokenizer.prompt(q)) - 2 <= model.config.max_question_tokens
        ][:3]
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.onnx.", dir=out.parent))
        try:
            # raises when an output or a greedy token differs, so an export that returns passed
            parity = export_commentary(
                model,
                tokenizer,
                staging,
                clips,
                speeds,
                questions,
                settings=np.stack([s.driver_settings() for s in chosen]),
            )
            outputs = {
                f"encoder.{name}": OutputParity(stats["max_abs_err"], stats["max_rel_err"])
                for name, stats in parity["encoder"]["outputs"].items()
            }
            outputs |= {
                f"{graph}.{name}": OutputParity(error)
                for graph in ("decoder", "decoder_step")
                for name, error in parity[graph]["max_abs_err"].items()
            }
            report = ParityReport(
                passed=True,
                atol=parity["encoder"]["atol"],
                rtol=parity["encoder"].get("rtol"),
                n_inputs=parity["tokens"]["cases"],
                outputs=outputs,
                checks={"tokens": {**parity["tokens"], "passed": True}},
            )
            files: dict[str, Any] = {name: staging / name for name in MODEL_FILES}
            files |= example_episodes(config, self.manifest.demo.n_examples)
            evaluation = metrics.get("evaluation", {})
            return write_run_bundle(
                out,
                self.manifest,
                models={"encoder": "encoder.onnx", "decoder": "decoder.onnx", "decoder_step": "decoder_step.onnx"},
                model_files=files,
                metrics=evaluation,
                parity=report,
                config_file=Path(run_dir) / "config.yaml",
                card_metrics=_flat(evaluation),
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)


MODEL_FILES = ("encoder.onnx", "decoder.onnx", "decoder_step.onnx", "tokenizer.json", "driving_model.json")
"""The exported model a bundle carries (what :class:`CommentaryRuntime` reads)."""


def model_folder(path: Path) -> Path:
    """The model of a fine-tune run (``run/model``, torch; ``run/onnx`` in runs of earlier versions)
    or of a bundle (its root, ONNX): a folder :class:`CommentaryRuntime` decodes.

    Raises:
        VfmError: none holds a commentary model.
    """
    path = Path(path)
    for folder in (path / MODEL_DIR, path / LEGACY_ONNX_DIR, path):
        readable = (folder / SETTINGS_FILE).is_file() and (folder / TOKENIZER_FILE).is_file()
        onnx = all((folder / name).is_file() for name in (ENCODER_ONNX, DECODER_ONNX, STEP_ONNX))
        if readable and (onnx or (folder / WEIGHTS_FILE).is_file()):
            return folder
    raise VfmError(
        "not a driving run or bundle (no commentary model)",
        where=str(path),
        fix="pass the --out folder of 'vfm finetune driving' (or a driving bundle)",
    )


def _evaluate_options(config: dict[str, Any]) -> dict[str, Any]:
    """The ``evaluate`` section as :func:`evaluate_samples` keywords, naming any unknown field."""
    options = dict(config["evaluate"])
    unknown = sorted(set(options) - {"beam_size", "max_samples", "qa", "driver_settings"})
    if unknown:
        raise VfmError(
            f"unknown config field(s) {', '.join('evaluate.' + k for k in unknown)}",
            fix="valid fields in 'evaluate' are: beam_size, max_samples, qa, driver_settings",
        )
    return options


def _without_retired(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without the :data:`RETIRED_OPTIONS` it holds at their old default.

    Raises:
        VfmError: one is set to another value (e.g. ``data.road_camera=folded``, ``finetune.motion=true``).
    """
    for (section, key), default in RETIRED_OPTIONS.items():
        values = config.get(section)
        if not isinstance(values, dict) or key not in values:
            continue
        if values[key] != default:
            raise VfmError(
                f"{section}.{key}={values[key]!r} is no longer an option (it was measured as no gain and removed)",
                where=f"{section}.{key}",
                fix=f"remove it from the config (runs read as {section}.{key}={default!r})",
            )
        config = {**config, section: {k: v for k, v in values.items() if k != key}}
    return config


def _run_config(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "config.yaml"
    return load_yaml_file(path) if path.is_file() else {}


def distinct_frames(samples: list[DrivingSample]) -> np.ndarray:
    """Every distinct frame of the samples' clips (overlapping clips share frames): uint8 [N, S, S, 3]."""
    seen: dict[bytes, np.ndarray] = {}
    for sample in samples:
        if sample.frames is None:
            continue
        for frame in sample.frames:
            seen.setdefault(hashlib.sha1(frame.tobytes()).digest(), frame)
    if not seen:
        raise VfmError("no frames to pretrain on", fix="give samples with clips (the generic format's frames)")
    return np.stack(list(seen.values()))


def evaluate_samples(
    model_dir: Path,
    samples: list[DrivingSample],
    *,
    beam_size: int = 1,
    max_samples: int | None = None,
    qa: bool = True,
    driver_settings: bool = True,
) -> dict[str, Any]:
    """Run the model in ``model_dir`` (ONNX, or a run's torch model) on every sample's clip and score it; with
    ``driver_settings`` false the model is not given the samples' driver settings (as for a
    car that does not report them).

    Returns:
        ``{"commentary": commentary_metrics, "qa": qa_metrics (plus ``skipped_too_long``: questions
        longer than the model reads), "samples", "seconds",
        "ms_per_commentary", "examples": the first 5 (id, reference, generated)}``.
    """
    from vfm.plugins.driving.decode import CommentaryRuntime
    from vfm.plugins.driving.metrics import commentary_metrics, qa_metrics

    runtime = CommentaryRuntime(model_dir)
    chosen = [s for s in samples if s.frames is not None][:max_samples]
    if not chosen:
        raise VfmError("no sample with a clip to evaluate", fix="pass a dataset whose samples have frames")
    started = time.perf_counter()
    settings = [s.driver_settings() if driver_settings else None for s in chosen]
    comments = [
        runtime.comment(s.frames, s.speed_trace(), driver_settings=wanted, beam_size=beam_size).text
        for s, wanted in zip(chosen, settings, strict=True)
    ]
    comment_seconds = time.perf_counter() - started
    result: dict[str, Any] = {"commentary": commentary_metrics(comments, chosen)}
    if qa:
        limit = runtime.settings["max_question_tokens"]
        asked = [(s, wanted, p) for s, wanted in zip(chosen, settings, strict=True) for p in s.qa]
        pairs = [(s, w, p) for s, w, p in asked if len(runtime.tokenizer.prompt(p.question)) - 2 <= limit]
        answers = [
            runtime.answer(s.frames, s.speed_trace(), p.question, driver_settings=w, beam_size=beam_size).text
            for s, w, p in pairs
        ]
        result["qa"] = qa_metrics(answers, [p.question for *_, p in pairs], [p.answer for *_, p in pairs]) | {
            "skipped_too_long": len(asked) - len(pairs)
        }
    result |= {
        "samples": len(chosen),
        "seconds": round(time.perf_counter() - started, 2),
        "ms_per_commentary": round(1000 * comment_seconds / len(chosen), 2),
        "examples": [
            {"id": s.id, "reference": s.commentary, "generated": c}
            for s, c in zip(chosen[:5], comments[:5], strict=True)
        ],
    }
    return result


def example_episodes(config: dict[str, Any], n: int) -> dict[str, bytes]:
    """``n`` held-out episodes (the unseen scenario first, then held-out seeds) as bundle
    examples: ``examples/NN_<scenario>.npz`` with ``frames`` uint8 [N, S, S, 3], ``ego_speed``
    [N] (m/s at each frame), ``commentary`` [N] (the reference; "" before), ``scenario`` and
    ``driver_settings`` [2] (set speed m/s, set time gap s)."""
    import io

    from vfm.plugins.driving.simulate import run_episode

    data = config["data"]
    if n == 0 or data["source"] != SYNTHETIC:
        return {}
    plan = DrivingPipeline._plan(data)
    episodes = [*plan.test_scenario[:1], *plan.test_seeds]
    files: dict[str, bytes] = {}
    k = int(data["clip_length"])
    for scenario, seed in episodes:
        samples = run_episode(scenario, seed, clip_length=k, frame_size=int(data["frame_size"]))
        if not samples:
            continue
        frames = np.concatenate(
            [
                samples[0].frames,
                np.stack([s.frames[-1] for s in samples[1:]]) if len(samples) > 1 else samples[0].frames[:0],
            ]
        )
        speed = np.array([*samples[0].frame_speeds, *(s.ego_speed for s in samples[1:])], dtype=np.float32)
        text = np.array([""] * (k - 1) + [s.commentary for s in samples])
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            frames=frames,
            ego_speed=speed,
            commentary=text,
            scenario=np.array(scenario),
            driver_settings=samples[0].driver_settings(),
        )
        files[f"examples/{len(files):02d}_{scenario}.npz"] = buffer.getvalue()
        if len(files) == n:
            break
    return files


def _flat(evaluation: dict[str, Any]) -> dict[str, float]:
    """``{"<set>/<metric>": value}`` of the headline numbers, for the model card."""
    rows: dict[str, float] = {}
    for name, scores in evaluation.items():
        commentary = scores.get("commentary", {})
        for key in ("action", "cause"):
            if commentary.get(key, {}).get("accuracy") is not None:
                rows[f"{name}/{key}_accuracy"] = commentary[key]["accuracy"]
        for key in ("bleu_4", "meteor", "cider"):
            if isinstance(commentary.get("caption", {}).get(key), float):
                rows[f"{name}/{key}"] = commentary["caption"][key]
        if scores.get("qa", {}).get("accuracy") is not None:
            rows[f"{name}/qa_accuracy"] = scores["qa"]["accuracy"]
    return rows
