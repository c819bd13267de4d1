"""The Gradio tab of ``image-classification`` plugins: upload or pick an image, see grade,
probabilities and a heat-map overlay. Bad input is shown as an error message; the server
keeps serving.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vfm.platform.errors import VfmError
from vfm.serve.image_classifier import EXPLANATIONS
from vfm.serve.overlay import overlay_heatmap, resize_image


def build_image_classification_tab(predictor: Any) -> None:
    """Add the tab's components and events to the enclosing ``gr.Tab`` context.

    The event is exposed on the API as ``/<plugin>_predict`` (input: an image file; outputs:
    model input view, probabilities, rollout overlay, Grad-CAM overlay, summary markdown).
    """
    import gradio as gr

    name = predictor.plugin.name
    labels = predictor.labels

    def classify(path: str | None) -> tuple[Any, ...]:
        if not path:
            raise gr.Error("No image given: upload an image file or pick an example.")
        try:
            result = predictor.predict(path)
        except VfmError as err:
            raise gr.Error(err.public()) from None
        view = np.asarray(result["view"])
        overlays = [
            overlay_heatmap(view, result["explanations"][name])
            if name in result["explanations"]
            else resize_image(view)
            for name in EXPLANATIONS
        ]
        top = result["probabilities"][result["label"]]
        summary = (
            f"### {result['label']}\nprobability {top:.2f} · heat-maps: where the model looked "
            "(attention rollout) and what supports this grade (Grad-CAM)"
        )
        return resize_image(view), result["probabilities"], *overlays, summary

    manifest = predictor.plugin.manifest
    gr.Markdown(manifest.demo.description)
    with gr.Row():
        with gr.Column():
            upload = gr.File(label="Image file (PNG, JPEG, TIFF, ...)", type="filepath", file_types=["image"])
            button = gr.Button("Predict", variant="primary")
            examples = [[str(path)] for path in predictor.bundle.examples()]
            if examples:
                gr.Examples(examples=examples, inputs=[upload], label="Examples (synthetic)")
        with gr.Column():
            summary = gr.Markdown()
            probabilities = gr.Label(label="Probabilities", num_top_classes=len(labels))
            with gr.Row():
                view = gr.Image(label="Model input", type="numpy", interactive=False)
                heats = [
                    gr.Image(label=f"Heat-map: {title}", type="numpy", interactive=False)
                    for title in EXPLANATIONS.values()
                ]
    gr.Markdown(
        "**Intended use.** " + manifest.intended_use.strip() + "\n\n**Limits.** " + " ".join(manifest.limitations)
    )
    button.click(classify, inputs=upload, outputs=[view, probabilities, *heats, summary], api_name=f"{name}_predict")
