"""GGUF checkpoints (llama.cpp's quantized format) to Hugging Face safetensors folders.

The one module of :mod:`vfm.platform.models` that imports torch (through ``transformers``, which
dequantizes GGUF with the ``gguf`` package); :mod:`vfm.platform.models.store` imports it only to
convert a packaged GGUF. Checked first, each with a one-line error: the file is GGUF, its
architecture is one ``transformers`` reads, its float32 weights fit in memory, its tokenizer has a
fast version.
"""

from __future__ import annotations

from pathlib import Path

from vfm.platform.errors import VfmError
from vfm.platform.fileio import available_memory

MEMORY_SHARE = 0.8
"""A GGUF is converted only when its float32 weights fit in this share of the available memory."""


def gguf_architecture(path: Path) -> tuple[str, int]:
    """``(architecture, bytes of its weights in float32)`` from a GGUF file's header.

    Raises:
        VfmError: the ``gguf`` package is missing, or the file is not GGUF.
    """
    try:
        from gguf import GGUFReader
    except ImportError:
        raise VfmError("reading GGUF files needs the gguf package", fix="pip install 'vfm[models]'") from None
    try:
        reader = GGUFReader(str(path))
        field = reader.fields["general.architecture"]
        architecture = bytes(field.parts[field.data[0]]).decode("utf-8")
        elements = sum(int(tensor.n_elements) for tensor in reader.tensors)
    except (KeyError, ValueError, IndexError) as err:
        raise VfmError(f"not a readable GGUF file: {err}", where=str(path)) from None
    return architecture, 4 * elements


def convert_gguf(path: Path, dest: Path) -> str:
    """Dequantize a GGUF causal LM with ``transformers`` and save it as a safetensors folder in ``dest``.

    Returns:
        the GGUF's architecture.

    Raises:
        VfmError: an architecture ``transformers`` cannot read, weights too large for memory, or a
        tokenizer without a fast version.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    architecture, size = gguf_architecture(path)
    if architecture not in GGUF_CONFIG_MAPPING:
        raise VfmError(
            f"GGUF architecture {architecture!r} is not one transformers can convert",
            where=str(path),
            fix=f"use a model of a supported architecture ({', '.join(sorted(GGUF_CONFIG_MAPPING)[:8])}, ...)",
        )
    free = available_memory()
    if size > MEMORY_SHARE * free:
        raise VfmError(
            f"the model needs {size / 2**30:.1f} GiB in float32, {free / 2**30:.1f} GiB of memory is available",
            where=str(path),
            fix="free memory, or use a smaller model",
        )
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    if not tokenizer.is_fast:
        raise VfmError("the model's tokenizer has no fast version", where=str(path), fix="use another model")
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)  # dequantized to float32
    model.hf_quantizer = None  # type: ignore[assignment]  # plain tensors now: saved as an ordinary model
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return architecture
