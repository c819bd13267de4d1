"""Default components per task: a plugin names only what its domain changes.

An ``image-classification`` plugin, for example, needs to bring just its synthetic
data generator (and usually its preprocessing); the pretraining and fine-tuning
pipeline, the torch-free predictor and the demo tab are the platform's. Any
default can be overridden in the manifest's ``components``.
"""

from __future__ import annotations

TASK_DEFAULTS: dict[str, dict[str, str]] = {
    "image-classification": {
        "loader": "vfm.platform.datasets:load_image_source",
        "preprocess": "vfm.serve.image_preprocess:preprocess",
        "model": "vfm.finetune.vit_classifier:build_vit_classifier",
        "metrics": "vfm.finetune.metrics:classification_metrics",
        "explain": "vfm.finetune.explain:ExplainedClassifier",
        "pipeline": "vfm.finetune.image_pipeline:ImageClassificationPipeline",
        "predictor": "vfm.serve.image_classifier:ImageClassifierPredictor",
        "demo_tab": "vfm.serve.image_tab:build_image_classification_tab",
    },
}

# Components every plugin must be able to resolve (from its manifest or its task).
REQUIRED_COMPONENTS = ("generator", "pipeline", "predictor", "demo_tab")
