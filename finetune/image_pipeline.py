"""The image-classification pipeline: data -> MAE pretraining -> fine-tuning -> evaluation -> bundle.

This is the default ``pipeline`` component of every ``image-classification`` plugin. The
plugin supplies its synthetic generator, its pure-numpy preprocessing and its manifest;
everything else here is shared. Each method is one CLI verb.

Config sections (defaults from the plugin manifest's ``preprocessing`` and ``training``):

- ``data``: ``source`` (``synthetic`` or a path: ``.npz``, image folder, CSV/JSONL manifest),
  ``train_split``/``val_split`` (``null``: the whole source, e.g. a flat folder for pretraining),
  ``labels_csv``, synthetic ``n_train``/``n_val``/``seed``.
- ``preprocessing``: keyword arguments of the plugin's ``preprocess``.
- ``pretrain``: ``preset``, any of :data:`vfm.pretrain.mae.SHAPE_FIELDS` (e.g. ``patch_size``) and
  :class:`vfm.pretrain.mae_training.PretrainSettings` fields.
- ``finetune``: ``pretrained`` plus :class:`vfm.finetune.classification_training.FinetuneSettings` fields.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vfm.platform.config import build_settings, deep_merge, load_yaml_file, write_config
from vfm.platform.datasets import ImageSet, SplitNotFound
from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_json, read_json_if_any
from vfm.platform.plugin import Plugin

if TYPE_CHECKING:
    from vfm.pretrain.mae import MaeConfig

VAL_SEED_OFFSET = 10_000  # synthetic validation images never share a seed with training ones


def mae_config(config: dict[str, Any]) -> MaeConfig:
    """The :class:`vfm.pretrain.mae.MaeConfig` of a resolved config: ``pretrain.preset`` at the
    preprocessing's image size, with any :data:`vfm.pretrain.mae.SHAPE_FIELDS` of ``pretrain`` over
    it (the rest of ``pretrain`` are training settings). It shapes the from-scratch ViT of
    ``finetune`` too, so that both arms of a study have the same encoder."""
    from vfm.pretrain.mae import SHAPE_FIELDS, MaeConfig

    section = config["pretrain"]
    overrides = {k: section[k] for k in SHAPE_FIELDS if section.get(k) is not None}
    return MaeConfig.preset(section["preset"], img_size=int(config["preprocessing"]["image_size"]), **overrides)


class ImageClassificationPipeline:
    """Pretrain, fine-tune, evaluate and export an image classifier for one plugin."""

    def __init__(self, plugin: Plugin):
        self.plugin = plugin
        self.manifest = plugin.manifest
        self.labels = self.manifest.labels
        if not self.labels:
            raise VfmError(f"plugin '{plugin.name}' declares no output labels", fix="add labels to the first output")

    # ------------------------------------------------------------------ config
    def default_config(self) -> dict[str, Any]:
        training = self.manifest.training
        synthetic = training.get("synthetic", {})
        return {
            "plugin": self.plugin.name,
            "data": {
                "source": "synthetic",
                "train_split": "train",
                "val_split": "val",
                "labels_csv": None,
                "n_train": synthetic.get("n_train", 500),
                "n_val": synthetic.get("n_val", 100),
                "seed": 0,
            },
            "preprocessing": dict(self.manifest.preprocessing),
            "pretrain": {"preset": "tiny", **training.get("pretrain", {})},
            "finetune": {"pretrained": None, **training.get("finetune", {})},
        }

    def resolve(self, config: dict[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with ``config`` (the CLI's file + overrides)."""
        return deep_merge(self.default_config(), config)

    # -------------------------------------------------------------------- data
    def load_split(self, config: dict[str, Any], which: str) -> ImageSet:
        """The raw ``train`` or ``val`` image set the config points at."""
        data = config["data"]
        if data["source"] == "synthetic":
            generate = self.plugin.component("generator")
            n = int(data["n_train"] if which == "train" else data["n_val"])
            seed = int(data["seed"]) + (0 if which == "train" else VAL_SEED_OFFSET)
            images, labels = generate(n, seed=seed, image_size=int(config["preprocessing"].get("image_size", 64)))
            return ImageSet(
                images=images,
                labels=labels,
                names=[f"synthetic:{which}[{i}]" for i in range(n)],
                source=f"synthetic(seed={seed})",
            )
        key = f"{which}_split"
        try:
            return self.load_source(data["source"], split=data[key], labels_csv=data.get("labels_csv"))
        except SplitNotFound as err:
            raise VfmError(
                err.what,
                where=err.where,
                fix=f"point data.{key} at one of your splits (--set data.{key}=NAME), or use the whole "
                f"source with --set data.{key}=null",
            ) from None

    @staticmethod
    def _external(config: dict[str, Any]) -> bool:
        """True when the data comes from a path rather than the synthetic generator."""
        return config["data"]["source"] != "synthetic"

    def load_source(self, source: str, *, split: str | None, labels_csv: str | None = None) -> ImageSet:
        """Load a labelled or unlabelled image source by path with the plugin's ``loader``."""
        loader = self.plugin.component("loader")
        return loader(source, split=split, labels_csv=labels_csv, label_names=self.labels)

    def prepare(self, images: ImageSet | list[np.ndarray] | np.ndarray, config: dict[str, Any]) -> np.ndarray:
        """Run the plugin's preprocessing on every image: -> float32 [N, 3, S, S]."""
        preprocess = self.plugin.component("preprocess")
        items = images.images if isinstance(images, ImageSet) else images
        return np.stack([preprocess(np.asarray(img), **config["preprocessing"]) for img in items]).astype(np.float32)

    def _labelled(self, image_set: ImageSet, what: str) -> np.ndarray:
        if image_set.labels is None:
            raise VfmError(
                f"the {what} data has no labels",
                where=image_set.source,
                fix="give labels (npz <split>_labels, labels.csv or class sub-folders)",
            )
        labels = np.asarray(image_set.labels, dtype=np.int64).reshape(-1)
        if labels.min() < 0 or labels.max() >= len(self.labels):
            raise VfmError(f"{what} labels must lie in 0..{len(self.labels) - 1}", where=image_set.source)
        return labels

    # ---------------------------------------------------------------- pretrain
    def pretrain(self, config: dict[str, Any], out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
        """MAE-pretrain the encoder on the unlabelled train (+ val) images."""
        from vfm.platform.training.checkpoints import keep_trained_result
        from vfm.pretrain.mae import SHAPE_FIELDS
        from vfm.pretrain.mae_training import PretrainSettings, pretrain_mae

        config = self.resolve(config)
        section = {k: v for k, v in config["pretrain"].items() if k != "preset" and k not in SHAPE_FIELDS}
        settings = build_settings(PretrainSettings, section, "pretrain")
        mae = mae_config(config)
        parts = ["train"] if self._external(config) and config["data"]["val_split"] is None else ["train", "val"]
        images = np.concatenate([self.prepare(self.load_split(config, w), config) for w in parts])
        out_dir.mkdir(parents=True, exist_ok=True)
        write_config(config, out_dir)
        meta = {
            "mean": config["preprocessing"].get("mean"),
            "std": config["preprocessing"].get("std"),
            "plugin": self.plugin.name,
        }
        metrics = keep_trained_result(
            pretrain_mae(images, mae, settings, out_dir, progress=progress, extra_meta=meta),
            read_json_if_any(out_dir / "metrics.json"),
        )
        atomic_write_json(out_dir / "metrics.json", metrics)
        return metrics

    # ---------------------------------------------------------------- finetune
    def finetune(self, config: dict[str, Any], out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
        """Fine-tune a ViT classifier (from the pretrained encoder when given, else from scratch)."""
        from vfm.finetune.classification_training import FinetuneSettings, finetune_classifier
        from vfm.platform.pipeline import record_base_model

        config = self.resolve(config)
        section = dict(config["finetune"])
        pretrained = section.pop("pretrained")
        settings = build_settings(FinetuneSettings, section, "finetune")
        encoder_cfg = self._encoder_config(config, pretrained)
        if self._external(config) and config["data"]["val_split"] is None:
            raise VfmError(
                "fine-tuning needs a validation split for model selection",
                where=config["data"]["source"],
                fix="set data.val_split to a split of your data, e.g. --set data.val_split=val",
            )
        train_set, val_set = self.load_split(config, "train"), self.load_split(config, "val")
        train = (self.prepare(train_set, config), self._labelled(train_set, "train"))
        val = (self.prepare(val_set, config), self._labelled(val_set, "validation"))
        out_dir.mkdir(parents=True, exist_ok=True)
        write_config(self._with_pretraining_used(config, pretrained), out_dir)
        record_base_model(out_dir, pretrained)
        return finetune_classifier(
            train,
            val,
            encoder_cfg=encoder_cfg,
            num_classes=len(self.labels),
            settings=settings,
            out_dir=out_dir,
            pretrained=Path(pretrained) if pretrained else None,
            label_names=self.labels,
            progress=progress,
            build_model=self.plugin.component("model"),
            metrics_fn=self.plugin.component("metrics"),
            mean=config["preprocessing"].get("mean"),
            std=config["preprocessing"].get("std"),
        ) | {"n_train": len(train[1]), "n_val": len(val[1])}

    @staticmethod
    def _with_pretraining_used(config: dict[str, Any], pretrained: str | None) -> dict[str, Any]:
        """``config`` whose ``pretrain`` section is the one the encoder was made with, when it comes from
        a ``vfm pretrain`` run (its ``config.yaml`` beside it), instead of this run's defaults."""
        if not pretrained:
            return config
        path = Path(pretrained)
        made_with = (path if path.is_dir() else path.parent) / "config.yaml"
        if not made_with.is_file():
            return config
        try:
            section = load_yaml_file(made_with).get("pretrain")
        except VfmError:
            return config
        return {**config, "pretrain": section} if isinstance(section, dict) else config

    def _encoder_config(self, config: dict[str, Any], pretrained: str | None) -> dict[str, Any]:
        """The ViT shape: from the pretrained encoder's JSON when there is one, else the preset."""
        if pretrained:
            path = Path(pretrained)
            meta = (path if path.is_dir() else path.parent) / "encoder.json"
            if meta.is_file():
                return json.loads(meta.read_text("utf-8"))["encoder"]
        return mae_config(config).encoder_config()

    # ---------------------------------------------------------------- evaluate
    def evaluate(
        self,
        run_dir: Path,
        config_overrides: dict[str, Any] | None = None,
        *,
        source: str | None = None,
        split: str | None = None,
    ) -> dict[str, Any]:
        """Score a fine-tuned run (torch) or a bundle (ONNX, verified as ``vfm predict`` verifies one)
        on its validation data, or on any labelled source by path."""
        from vfm.platform.config import load_yaml_file

        bundle = (run_dir / "SHA256SUMS").is_file()
        if bundle:
            config = deep_merge(self.resolve(load_yaml_file(run_dir / "config.yaml")), config_overrides or {})
        else:
            config = self._run_config(run_dir, config_overrides)
        if source:
            image_set = self.load_source(source, split=split, labels_csv=config["data"].get("labels_csv"))
        else:
            image_set = self.load_split(config, "val")
        labels = self._labelled(image_set, "evaluation")
        probs = self._bundle_proba(run_dir, image_set) if bundle else self._run_proba(run_dir, image_set, config)
        metrics = self.plugin.component("metrics")(labels, probs, self.labels)
        return metrics | {"data": image_set.source, "split": split}

    def _run_proba(self, run_dir: Path, image_set: ImageSet, config: dict[str, Any]) -> np.ndarray:
        """float [N, C]: the run's torch model on the images."""
        from vfm.finetune.classification_training import predict_proba
        from vfm.finetune.vit_classifier import load_classifier

        model = load_classifier(run_dir, self.plugin.component("model"))
        return predict_proba(model, self.prepare(image_set, config))

    def _bundle_proba(self, bundle: Path, image_set: ImageSet) -> np.ndarray:
        """float [N, C]: the bundle's ONNX model on the images, through its predictor."""
        from vfm.serve.runtime import open_predictor

        predictor = open_predictor(bundle)
        results = (predictor.predict(np.asarray(image))["probabilities"] for image in image_set.images)
        return np.array([[result[label] for label in self.labels] for result in results], dtype=np.float64)

    def _run_config(self, run_dir: Path, overrides: dict[str, Any] | None) -> dict[str, Any]:
        from vfm.platform.config import load_yaml_file

        if not (run_dir / "classifier.safetensors").is_file():
            raise VfmError(
                "not a fine-tuned run (no classifier.safetensors)",
                where=str(run_dir),
                fix="pass the --out directory of 'vfm finetune'",
            )
        return deep_merge(self.resolve(load_yaml_file(run_dir / "config.yaml")), overrides or {})

    # ------------------------------------------------------- demo and validate
    def smoke_config(self) -> dict[str, Any]:
        """A seconds-long config for ``vfm plugins validate``: same code path, tiny sizes."""
        return {
            "data": {"n_train": 20, "n_val": 10},
            "pretrain": {"max_steps": 2, "batch_size": 8, "warmup_steps": 1},
            "finetune": {"max_epochs": 1, "batch_size": 8},
        }

    def check_forward(self) -> dict[str, Any]:
        """Fake-input forward pass: random pixels through an untrained model, shapes checked."""
        import torch

        config = self.resolve({})
        size = int(config["preprocessing"]["image_size"])
        encoder_cfg = self._encoder_config(config, None)
        build_model, explain = self.plugin.component("model"), self.plugin.component("explain")
        model = explain(build_model(encoder_cfg, len(self.labels))).eval()
        with torch.no_grad():
            outputs = model(torch.randn(2, 3, size, size))
        names = [spec.name for spec in self.manifest.outputs]
        if len(outputs) != len(names):
            raise VfmError(
                f"the model returns {len(outputs)} outputs but the manifest declares {names}",
                fix="declare one manifest output per model output, in order",
            )
        expected = {"probabilities": (2, len(self.labels)), "heatmap": (2, size, size), "gradcam": (2, size, size)}
        expected = {name: expected[name] for name in names if name in expected}
        got = {name: tuple(out.shape) for name, out in zip(names, outputs) if name in expected}
        if got != expected:
            raise VfmError(f"model output shapes {got} differ from the manifest's {expected}")
        return {"outputs": {k: list(v) for k, v in got.items()}}

    def build_demo_bundle(self, work_dir: Path, *, config: dict[str, Any] | None = None, progress: bool = True) -> Path:
        """Pretrain, fine-tune from the pretrained encoder and export, in ``work_dir``.

        Steps already completed (their outputs present) are not run again, and an
        interrupted step resumes from its last checkpoint.
        """
        config = config or {}
        pretrain_dir, finetune_dir = work_dir / "pretrain", work_dir / "finetune"
        if not (pretrain_dir / "encoder.safetensors").is_file():
            self.pretrain(config, pretrain_dir, progress=progress)
        if not (finetune_dir / "classifier.safetensors").is_file():
            encoder = {"finetune": {"pretrained": str(pretrain_dir / "encoder.safetensors")}}
            self.finetune(deep_merge(config, encoder), finetune_dir, progress=progress)
        return self.export(finetune_dir, work_dir / "bundle", progress=progress)

    # ------------------------------------------------------------------ export
    def export(self, run_dir: Path, out: Path, *, progress: bool = True) -> Path:
        """Export the fine-tuned classifier (+ attention-rollout and Grad-CAM heat-maps) as a verified bundle."""
        config = self._run_config(run_dir, None)
        import torch

        from vfm.finetune.export import export_onnx
        from vfm.finetune.vit_classifier import load_classifier
        from vfm.platform.pipeline import ParityReport, write_run_bundle

        metrics = json.loads((run_dir / "metrics.json").read_text("utf-8"))
        val_set = self.load_split(config, "val")
        pixels = torch.from_numpy(self.prepare(val_set, config)[:16])
        explain = self.plugin.component("explain")
        wrapped = explain(load_classifier(run_dir, self.plugin.component("model"))).eval()
        names = [spec.name for spec in self.manifest.outputs]
        spec = self.manifest.export
        staging = out.parent / f".{out.name}.onnx-staging"
        staging.mkdir(parents=True, exist_ok=True)
        try:
            report = export_onnx(
                wrapped,
                {self.manifest.inputs[0].name: pixels[:2]},
                names,
                staging / "model.onnx",
                opset=spec.opset,
                atol=spec.atol,
                rtol=spec.rtol,
                parity_inputs={self.manifest.inputs[0].name: pixels},
            )
            files: dict[str, Any] = {
                "model.onnx": staging / "model.onnx",  # copied, never held in memory
                "preprocessing.json": json.dumps(config["preprocessing"], indent=2),
                "labels.json": json.dumps(self.labels, indent=2),
            }
            files.update(self._example_files())
            return write_run_bundle(
                out,
                self.manifest,
                models={"model": "model.onnx"},
                model_files=files,
                metrics=metrics,
                parity=ParityReport.from_graphs({"": report}),
                config_file=run_dir / "config.yaml",
            )
        finally:
            for leftover in staging.glob("*"):
                leftover.unlink()
            staging.rmdir()

    def _example_files(self) -> dict[str, bytes]:
        """A few synthetic example images (one per label, cycling) for the demo, as PNG bytes."""
        from PIL import Image

        n = self.manifest.demo.n_examples
        if n == 0:
            return {}
        size = int(self.manifest.preprocessing.get("image_size", 64))
        images, labels = self.plugin.component("generator")(n, seed=424242, image_size=max(size, 128))
        files = {}
        for i, (image, label) in enumerate(zip(images, labels)):
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="PNG")
            files[f"examples/{i:02d}_label{int(label)}.png"] = buffer.getvalue()
        return files
