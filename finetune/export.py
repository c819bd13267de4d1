"""Export a torch module to ONNX (torch.onnx dynamo exporter) and prove it computes the same thing.

The parity report compares onnxruntime (CPUExecutionProvider) against torch on the same
inputs, per output:

- ``max_abs_err`` = max |onnx - torch|
- ``max_rel_err`` = max |onnx - torch| / max(|torch|, 1e-6)  (large where torch is near 0)
- an output passes when every element satisfies |onnx - torch| <= atol + rtol * |torch|
  (``numpy.allclose``), so near-zero values are judged by ``atol``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from vfm.platform.errors import VfmError


def write_onnx(program: torch.onnx.ONNXProgram, path: Path) -> list[str]:
    """Save into a staging folder beside ``path``, then move each file into place.

    A single file unless the weights pass ONNX's 2 GB limit, when the exporter writes them to
    ``<name>.data`` beside it (moved first, so ``path`` never points at missing data).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        program.save(staging / path.name, external_data=False)
        written = sorted(staging.iterdir(), key=lambda p: p.name == path.name)  # the .onnx last
        for file in written:
            os.replace(file, path.parent / file.name)
        return [str(path.parent / file.name) for file in written]
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _as_tuple(outputs) -> tuple[torch.Tensor, ...]:
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)


def export_onnx(
    module: torch.nn.Module,
    example_inputs: dict[str, torch.Tensor],
    output_names: list[str],
    path: Path,
    *,
    opset: int = 18,
    dynamic_batch: bool = True,
    dynamic_dims: dict[int, str] | None = None,
    atol: float = 1e-4,
    rtol: float = 1e-3,
    parity_inputs: dict[str, torch.Tensor] | None = None,
    raise_on_failure: bool = True,
) -> dict:
    """Export ``module`` (put in eval mode and cast to float32, in place) to ``path`` and check parity.

    Args:
        module: takes the inputs positionally, in ``example_inputs`` order; returns a tensor or
            a tuple of tensors, named by ``output_names``.
        example_inputs: ONNX input name -> example tensor used for tracing. With
            ``dynamic_batch`` axis 0 of every input (and output) is symbolic ("batch"); give
            a batch of at least 2, as torch.export specialises size-1 dimensions.
        dynamic_dims: further symbolic axes of every input, by axis (``{1: "sequence"}`` for
            token inputs of any length; give examples longer than 1 along them).
        parity_inputs: inputs for the parity check (e.g. real images, any batch size);
            defaults to ``example_inputs``.
        raise_on_failure: raise VfmError naming the first failing output.

    Returns:
        ``{"outputs": {name: {"max_abs_err", "max_rel_err", "shape"}}, "atol", "rtol", "passed",
        "n_inputs" (samples in the parity batch), "opset", "onnxruntime", "torch", "files"}``.
    """
    path = Path(path)
    module = module.eval().float()
    names = list(example_inputs)
    example = tuple(t.float() if t.is_floating_point() else t for t in example_inputs.values())
    batch = torch.export.Dim("batch", min=1)
    axes = {axis: torch.export.Dim(name, min=1) for axis, name in (dynamic_dims or {}).items()}
    axes |= {0: batch} if dynamic_batch else {}
    dynamic_shapes = tuple(dict(axes) for _ in names) if axes else None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*axis name.*will not be used.*")  # axes of one Dim
        program = torch.onnx.export(
            module,
            example,
            input_names=names,
            output_names=list(output_names),
            opset_version=opset,
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            optimize=True,
            verbose=False,
        )
    files = write_onnx(program, path)

    inputs = {k: (v.float() if v.is_floating_point() else v) for k, v in (parity_inputs or example_inputs).items()}
    with torch.no_grad():
        expected = [t.numpy() for t in _as_tuple(module(*inputs.values()))]
    if len(expected) != len(output_names):
        raise VfmError(
            f"the module returns {len(expected)} outputs for {len(output_names)} names",
            where="export_onnx(output_names)",
            fix="name every output, in order",
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(list(output_names), {k: v.numpy() for k, v in inputs.items()})

    outputs, failures = {}, []
    for name, onnx_out, torch_out in zip(output_names, got, expected):
        same_shape = onnx_out.shape == torch_out.shape
        diff = np.abs(onnx_out.astype(np.float64) - torch_out) if same_shape else np.array([np.inf])
        rel = diff / np.maximum(np.abs(torch_out), 1e-6) if same_shape else diff
        outputs[name] = {
            "max_abs_err": float(diff.max(initial=0.0)),
            "max_rel_err": float(rel.max(initial=0.0)),
            "shape": list(onnx_out.shape),
        }
        if not (same_shape and np.allclose(onnx_out, torch_out, rtol=rtol, atol=atol)):
            failures.append(name)
    report = {
        "outputs": outputs,
        "atol": atol,
        "rtol": rtol,
        "passed": not failures,
        "n_inputs": int(next(iter(inputs.values())).shape[0]),
        "opset": opset,
        "onnxruntime": ort.__version__,
        "torch": torch.__version__,
        "files": files,
    }
    if failures and raise_on_failure:
        worst = outputs[failures[0]]
        raise VfmError(
            f"ONNX output '{failures[0]}' differs from torch: max abs err {worst['max_abs_err']:.3g}, "
            f"max rel err {worst['max_rel_err']:.3g} (atol {atol}, rtol {rtol}); "
            f"shape {worst['shape']}",
            where=str(path),
            fix="check the model for ops that ONNX computes differently, or loosen atol/rtol",
        )
    return report
