"""Torch-free image classification: bundle ONNX model + the plugin's numpy preprocessing.

The default ``predictor`` component of ``image-classification`` plugins, used by
``vfm predict``, ``vfm serve`` and the demo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vfm.platform.bad_input import BadInput
from vfm.platform.bundle import Bundle
from vfm.platform.errors import VfmError
from vfm.platform.image_io import read_image
from vfm.platform.plugin import Plugin
from vfm.serve.image_bad_inputs import image_bad_inputs
from vfm.serve.runtime import onnx_session

EXPLANATIONS = {"heatmap": "attention rollout", "gradcam": "Grad-CAM"}
"""Heat-map outputs a bundle's model may have, and how to call them."""


class ImageClassifierPredictor:
    """Classify one image and explain it with the bundle's heat-map output.

    ``predict`` returns a dict with ``label`` (str), ``index`` (int), ``probabilities``
    (label -> float), ``explanations`` (method -> float32 [S, S] in [0, 1]: ``heatmap`` is
    attention rollout, ``gradcam`` Grad-CAM of the predicted class; whichever the bundle's
    model outputs) and ``view`` (uint8 [S, S, 3], the preprocessed image the model saw,
    de-normalised for display).
    """

    def __init__(self, bundle: Bundle, plugin: Plugin):
        self.bundle = bundle
        self.plugin = plugin
        self.labels: list[str] = bundle.json("labels.json")
        self.params: dict[str, Any] = bundle.json("preprocessing.json")
        self.preprocess = plugin.component("preprocess")
        self.session = onnx_session(bundle.model_path())
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [out.name for out in self.session.get_outputs()]
        shapes = {out.name: out.shape for out in self.session.get_outputs()}
        classes = shapes.get("probabilities", [None])[-1]
        if not isinstance(self.params, dict):
            raise VfmError(
                "preprocessing.json is not an object of preprocessing settings",
                where=str(bundle.path),
                fix="re-export the bundle",
            )
        if not isinstance(self.labels, list) or not all(isinstance(label, str) for label in self.labels):
            raise VfmError(
                "labels.json is not a list of label names", where=str(bundle.path), fix="re-export the bundle"
            )
        if isinstance(classes, int) and classes != len(self.labels):
            raise VfmError(
                f"the model outputs {classes} classes but labels.json names {len(self.labels)}",
                where=str(bundle.path),
                fix="re-export the bundle from its run (labels.json and the model must come from the same export)",
            )

    def _pixels(self, source: Any) -> np.ndarray:
        image = read_image(source)  # uint8 [H, W, 3]
        return self.preprocess(image, **self.params)[None].astype(np.float32)  # [1, 3, S, S]

    def _view(self, pixels: np.ndarray) -> np.ndarray:
        """float32 [3, S, S] normalised -> uint8 [S, S, 3] for display."""
        mean = np.asarray(self.params.get("mean", [0.0, 0.0, 0.0]), np.float32)[:, None, None]
        std = np.asarray(self.params.get("std", [1.0, 1.0, 1.0]), np.float32)[:, None, None]
        return ((pixels * std + mean).clip(0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 0)

    def smoke_inputs(self) -> list[Any]:
        """The first bundled example image, as the demo's upload."""
        from gradio_client import handle_file

        return [handle_file(str(self.bundle.examples()[0]))]

    def bad_inputs(self, folder: Path) -> list[BadInput]:
        """Wrong image files (:func:`vfm.serve.image_bad_inputs.image_bad_inputs`)."""
        return image_bad_inputs(folder)

    def predict(self, source: Any) -> dict[str, Any]:
        pixels = self._pixels(source)
        outputs = dict(zip(self.output_names, self.session.run(None, {self.input_name: pixels})))
        probs = outputs["probabilities"][0]  # [C]
        if not np.all(np.isfinite(probs)):
            raise VfmError(
                "the model produced non-finite probabilities for this image",
                fix="check the image; re-export the bundle if this happens for every image",
            )
        index = int(np.argmax(probs))
        return {
            "label": self.labels[index],
            "index": index,
            "probabilities": {name: float(p) for name, p in zip(self.labels, probs)},
            "explanations": {name: outputs[name][0] for name in EXPLANATIONS if name in outputs},
            "view": self._view(pixels[0]),
        }
