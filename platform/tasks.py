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
REQUIRED_COMPONENTS = ("pipeline", "predictor", "demo_tab")

# What a task's default pipeline resolves through the plugin beyond its defaults: the plugin must bring these.
TASK_REQUIRED: dict[str, tuple[str, ...]] = {"image-classification": ("generator",)}


def task_components(task: str) -> set[str]:
    """The components the platform resolves for a plugin of ``task``: a manifest may declare these
    and no others (a declared component nothing resolves would be an override that changes nothing).
    A task without platform defaults brings its own pipeline, which imports what it needs itself."""
    return set(REQUIRED_COMPONENTS) | set(TASK_DEFAULTS.get(task, {})) | set(TASK_REQUIRED.get(task, ()))
