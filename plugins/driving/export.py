"""Export a commentary model to ONNX (three graphs) and prove the exported decoding matches torch.

The folder :mod:`vfm.plugins.driving.decode` reads::

    encoder.onnx        frames [B, k, 3, H, W] float32 in [0, 1], speed [B, k] m/s per frame (NaN: unknown),
                        settings [B, 2] the driver's set speed (m/s) and set time gap (s) (NaN: unknown)
                        -> prefix [B, P, D], saliency [B, k, G, G]
    decoder.onnx        prefix [B, P, D], tokens [B, T] (no cache: the whole sequence)
                        -> logits [B, V] (last position), prefix_attention [B, P],
                           present_key_i / present_value_i [B, H, P+T, hd] for each layer i
    decoder_step.onnx   tokens [B, 1], past_key_i / past_value_i [B, H, T_past, hd]
                        -> logits [B, V], prefix_attention [B, P], present_* [B, H, T_past+1, hd]
    tokenizer.json, driving_model.json (decoding settings), parity.json

Cached decoding runs ``decoder.onnx`` once on the prompt (the prefill) and ``decoder_step.onnx``
per generated token; uncached decoding runs ``decoder.onnx`` on the whole sequence every step.

Parity, checked at export (a VfmError when it fails): every graph's outputs against torch
(max abs error, on inputs of another batch and length than the traced ones, so the dynamic
axes are exercised), and the greedy tokens of the ONNX runtime, with and without the cache,
against :meth:`CommentaryModel.generate` on the given clips and questions.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn as nn

from vfm.finetune.export import export_onnx, write_onnx
from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_json
from vfm.plugins.driving.decode import DECODER_ONNX, ENCODER_ONNX, STEP_ONNX, CommentaryRuntime, OnnxBackend
from vfm.plugins.driving.model import CommentaryModel, write_decoding_settings
from vfm.plugins.driving.tokenizer import TOKENIZER_FILE, DrivingTokenizer

PARITY_FILE = "parity.json"


class _EncoderGraph(nn.Module):
    def __init__(self, model: CommentaryModel):
        super().__init__()
        self.model = model

    def forward(self, frames, speed, settings):
        return self.model.prefix(frames, speed, settings, with_saliency=True)


class _FullGraph(nn.Module):
    def __init__(self, model: CommentaryModel):
        super().__init__()
        self.model = model

    def forward(self, prefix, tokens):
        logits, attention, present = self.model.decode_full(prefix, tokens)
        return logits, attention, *present


class _StepGraph(nn.Module):
    def __init__(self, model: CommentaryModel):
        super().__init__()
        self.model = model

    def forward(self, tokens, *past):
        logits, attention, present = self.model.decode_step(tokens, past)
        return logits, attention, *present


def _cache_names(prefix: str, layers: int) -> list[str]:
    return [f"{prefix}_{kind}_{i}" for i in range(layers) for kind in ("key", "value")]


def _export_decoder_graph(
    module: nn.Module,
    example: dict[str, torch.Tensor],
    output_names: list[str],
    dynamic_shapes: tuple,
    check: dict[str, torch.Tensor],
    path: Path,
    opset: int,
    atol: float,
) -> dict:
    """Export with the symbolic axes ``dynamic_shapes`` (structured as ``module.forward``'s
    arguments) and compare onnxruntime with torch on ``check``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="# The axis name")  # axes merged by their shared constraints
        program = torch.onnx.export(
            module,
            tuple(example.values()),
            input_names=list(example),
            output_names=output_names,
            opset_version=opset,
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            optimize=True,
            verbose=False,
        )
    files = write_onnx(program, path)
    with torch.no_grad():
        expected = [t.numpy() for t in module(*check.values())]
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(output_names, {name: t.numpy() for name, t in check.items()})
    except Exception as err:  # onnxruntime's own exception types, e.g. an axis the exporter fixed
        raise VfmError(
            f"the exported graph fails on another batch or length: {str(err).splitlines()[0]}",
            where=str(path),
            fix="make the model's shapes symbolic (no Python ints from tensor sizes)",
        ) from None
    errors = {
        name: float(np.abs(a - b).max()) if a.shape == b.shape else float("inf")
        for name, a, b in zip(output_names, got, expected, strict=True)
    }
    worst = max(errors, key=errors.get)
    if errors[worst] > atol:
        raise VfmError(
            f"ONNX output '{worst}' differs from torch by {errors[worst]:.3g} (atol {atol})",
            where=str(path),
            fix="check the decoder for ops that ONNX computes differently",
        )
    return {"max_abs_err": errors, "files": files}


def export_commentary(
    model: CommentaryModel,
    tokenizer: DrivingTokenizer,
    folder: str | Path,
    clips: np.ndarray,
    speeds: np.ndarray,
    questions: Sequence[str] = (),
    *,
    settings: np.ndarray | None = None,
    opset: int = 18,
    atol: float = 1e-4,
) -> dict:
    """Export ``model`` into ``folder`` (see the module docstring) and check parity.

    Args:
        model: put in eval mode and float32, in place.
        clips: uint8 [N, k, H, W, 3], N >= 1, the clips of the token parity check (real ones
            make it meaningful: an untrained model repeats one token).
        speeds: [N, k] m/s at each frame of each clip (NaN allowed).
        questions: asked about the first clip, also compared token by token.
        settings: [N, 2] the driver's settings of each clip (NaN allowed; None: unknown). The
            first clip is also compared with its settings hidden.

    Returns:
        the parity report, also written to ``parity.json``: ``{"encoder": export_onnx's report,
        "decoder", "decoder_step": {"max_abs_err": {output: error}, "files"}, "tokens": {"cases",
        "cached_match", "uncached_match", "tokens_compared"}}``.

    Raises:
        VfmError: an output or a decoded token differs.
    """
    folder = Path(folder)
    model = model.eval().float()
    cfg = model.config
    batch = torch.export.Dim("batch", min=1)
    generator = torch.Generator().manual_seed(0)

    frames = torch.rand(3, cfg.frames, 3, cfg.image_size, cfg.image_size, generator=generator)  # [3, k, 3, H, W]
    speed = torch.linspace(12.5, 14.0, cfg.frames)  # [k]: an accelerating car
    speed = torch.stack([speed, torch.full_like(speed, float("nan")), speed.flip(0) / 4])  # [3, k]
    speed[2, 0] = float("nan")  # a partly known trace
    wanted = torch.tensor([[25.0, 1.5], [float("nan"), float("nan")], [8.0, float("nan")]])  # [3, 2]
    encoder = export_onnx(
        _EncoderGraph(model).eval(),
        {"frames": frames[:2], "speed": speed[:2], "settings": wanted[:2]},
        ["prefix", "saliency"],
        folder / ENCODER_ONNX,
        opset=opset,
        atol=atol,
        parity_inputs={"frames": frames, "speed": speed, "settings": wanted},
    )

    tokens = torch.randint(4, tokenizer.vocab_size, (3, 7), generator=generator)  # [3, 7]
    with torch.no_grad():
        prefix, _ = model.prefix(frames, speed, wanted)  # [3, P, D]
        past = model.decode_full(prefix, tokens[:, :-1])[2]  # (key_0, value_0, ...) each [3, H, P+6, hd]
    layers = len(past) // 2
    length = torch.export.Dim("length", min=1)
    outputs = ["logits", "prefix_attention"]
    full = _export_decoder_graph(
        _FullGraph(model).eval(),
        {"prefix": prefix[:2], "tokens": tokens[:2, :3]},
        [*outputs, *_cache_names("present", layers)],
        ({0: batch}, {0: batch, 1: length}),
        {"prefix": prefix, "tokens": tokens},
        folder / DECODER_ONNX,
        opset,
        atol,
    )

    past_names = _cache_names("past", layers)
    past_len = torch.export.Dim("past", min=1)
    example = {"tokens": tokens[:2, -1:], **{n: t[:2, :, :-2] for n, t in zip(past_names, past, strict=True)}}
    step = _export_decoder_graph(
        _StepGraph(model).eval(),
        example,
        [*outputs, *_cache_names("present", layers)],
        ({0: batch}, tuple({0: batch, 2: past_len} for _ in past_names)),
        {"tokens": tokens[:, -1:], **dict(zip(past_names, past, strict=True))},
        folder / STEP_ONNX,
        opset,
        atol,
    )

    tokenizer.save(folder / TOKENIZER_FILE)
    write_decoding_settings(model, folder)
    report = {
        "encoder": encoder,
        "decoder": full,
        "decoder_step": step,
        "tokens": token_parity(model, tokenizer, folder, clips, speeds, questions, settings),
    }
    atomic_write_json(folder / PARITY_FILE, report)
    return report


def token_parity(
    model: CommentaryModel,
    tokenizer: DrivingTokenizer,
    folder: Path,
    clips: np.ndarray,
    speeds: np.ndarray,
    questions: Sequence[str],
    settings: np.ndarray | None = None,
) -> dict:
    """Greedy tokens of the exported runtime (cached and uncached) against torch's
    :meth:`CommentaryModel.generate`: commentary on every clip (with its driver ``settings``
    [N, 2], and on the first also without them), and each question on the first."""
    runtime = CommentaryRuntime(folder, backend=OnnxBackend(folder))
    speeds = np.asarray(speeds, dtype=np.float32)  # [N, k]
    unknown = np.full(2, np.nan, dtype=np.float32)
    settings = np.full((len(clips), 2), np.nan, np.float32) if settings is None else np.asarray(settings, np.float32)
    cases = [(clip, speed, wanted, None) for clip, speed, wanted in zip(clips, speeds, settings, strict=True)]
    cases += [(clips[0], speeds[0], unknown, None)] if np.isfinite(settings[0]).any() else []
    cases += [(clips[0], speeds[0], settings[0], question) for question in questions]
    matches, compared = {"cached": 0, "uncached": 0}, 0
    for clip, speed, wanted, question in cases:
        pixels = torch.from_numpy(runtime.preprocess(clip))  # [1, k, 3, H, W]
        expected = model.generate(
            pixels,
            torch.from_numpy(speed[None]),  # [1, k]
            tokenizer.prompt(question),
            tokenizer.eos_id,
            settings=torch.from_numpy(wanted[None]),
        )[0]  # [1, 2]
        compared += len(expected)
        for mode, use_cache in (("cached", True), ("uncached", False)):
            got = runtime.run(clip, speed, question, driver_settings=wanted, use_cache=use_cache)
            if list(got.tokens) != expected:
                raise VfmError(
                    f"{mode} ONNX greedy decoding gives {list(got.tokens)[:8]}..., torch gives "
                    f"{expected[:8]}... (question {question!r})",
                    where=str(folder),
                    fix="re-export; if it persists, report the model config as a bug",
                )
            matches[mode] += 1
    return {
        "cases": len(cases),
        "cached_match": matches["cached"],
        "uncached_match": matches["uncached"],
        "tokens_compared": compared,
    }
