"""A timm ViT classifier, and loading pretrained encoders into it.

``load_encoder_weights`` accepts our ``encoder.safetensors``, a RETFound/MAE torch checkpoint
(``{"model": state_dict}``, timm key names, decoder and ``mask_token`` included), a Lightning
checkpoint (``{"state_dict": ...}`` with a ``model.`` prefix) or a plain state dict, and:

- drops the MAE decoder (``decoder_*``, ``mask_token``) and any ``head.*``;
- drops the checkpoint's final ``norm.*`` when the classifier pools by average (timm then uses
  a fresh ``fc_norm`` after pooling, as in MAE/RETFound fine-tuning);
- resizes ``pos_embed`` bicubically on the patch grid (cls position kept) when the grids differ;
- re-initialises the head (weight ~ trunc_normal(std=2e-5), bias 0), as RETFound does.
"""

from __future__ import annotations

import argparse
import inspect
import json
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from timm.layers import resample_abs_pos_embed, trunc_normal_
from timm.models.vision_transformer import VisionTransformer

from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_bytes, atomic_write_json

ModelBuilder = Callable[..., torch.nn.Module]
"""``build(encoder_cfg, num_classes, drop_path_rate=..., global_pool=...) -> model`` with timm's
model API (``no_weight_decay``, ``group_matcher`` for layer decay): the ``model`` component."""

_VIT_ARGS = set(inspect.signature(VisionTransformer.__init__).parameters) - {"self"}
_DECODER = ("decoder_", "mask_token")
_ALLOWED_MISSING = ("head.", "fc_norm.")


def build_vit_classifier(
    encoder_cfg: dict, num_classes: int, drop_path_rate: float = 0.0, global_pool: str = "avg"
) -> VisionTransformer:
    """A randomly initialised timm ``VisionTransformer`` with the encoder's shape and a new head.

    encoder_cfg: ViT keyword arguments (``MaskedAutoencoderViT.encoder_config()``, or the
    ``"encoder"`` entry of ``encoder.json``).
    """
    unknown = sorted(set(encoder_cfg) - _VIT_ARGS)
    if unknown:
        raise VfmError(
            f"unknown ViT setting(s) {unknown}",
            where="encoder_cfg",
            fix="pass the 'encoder' entry of encoder.json, not the whole file",
        )
    return VisionTransformer(
        **encoder_cfg, num_classes=num_classes, drop_path_rate=drop_path_rate, global_pool=global_pool
    )


def _read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors in ``path`` and the format they came in."""
    if not path.is_file():
        raise VfmError("checkpoint file not found", where=str(path), fix="check the --pretrained path")
    not_a_checkpoint = VfmError(
        "not a model checkpoint (expected .safetensors or a torch state dict)",
        where=str(path),
        fix="pass encoder.safetensors or a RETFound .pth file",
    )
    if path.suffix == ".safetensors":
        try:
            return load_file(path), "safetensors"
        except (SafetensorError, OSError) as err:
            raise not_a_checkpoint from err
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):  # MAE/RETFound save their args too
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" in str(err):
            raise VfmError(
                "the checkpoint holds Python objects that safe (weights-only) loading refuses",
                where=str(path),
                fix="re-save it as {'model': state_dict} or as .safetensors",
            ) from err
        raise not_a_checkpoint from err
    except (zipfile.BadZipFile, RuntimeError, EOFError, ValueError) as err:
        raise not_a_checkpoint from err
    fmt = "state_dict"
    if isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict):
        ckpt, fmt = ckpt["model"], "retfound"
    elif isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict):
        ckpt, fmt = ckpt["state_dict"], "lightning"
    if not isinstance(ckpt, dict) or not ckpt or not all(torch.is_tensor(v) for v in ckpt.values()):
        raise not_a_checkpoint
    for prefix in ("module.", "model."):
        if all(k.startswith(prefix) for k in ckpt):
            ckpt = {k[len(prefix) :]: v for k, v in ckpt.items()}
    return ckpt, fmt


def load_encoder_weights(model: VisionTransformer, path: str | Path) -> dict:
    """Load a pretrained encoder into ``model`` (in place) and re-initialise its head.

    Returns ``{"format", "missing", "unexpected", "dropped", "interpolated_pos_embed"}``:
    ``missing`` are model keys the checkpoint lacks (only ``head.*``/``fc_norm.*`` are
    allowed; any other raises VfmError), ``unexpected`` checkpoint keys the model has no
    place for (ignored, listed), ``dropped`` the decoder/head/norm keys removed on purpose.
    """
    path = Path(path)
    state, fmt = _read_state_dict(path)
    own = model.state_dict()
    drop_norm = isinstance(model.norm, torch.nn.Identity)  # avg pooling: fc_norm replaces norm
    kept = {
        k: v
        for k, v in state.items()
        if not (k.startswith(_DECODER) or k.startswith("head.") or (drop_norm and k.startswith("norm.")))
    }
    dropped, state = sorted(set(state) - set(kept)), kept

    theirs, ours = state.get("pos_embed"), own.get("pos_embed")
    interpolated = (
        theirs is not None
        and ours is not None
        and theirs.shape[2] == ours.shape[2]
        and theirs.shape[1] != ours.shape[1]
    )
    if interpolated:
        state["pos_embed"] = _resize_pos_embed(theirs, ours, path)
    for key, value in state.items():
        if key in own and value.shape != own[key].shape:
            raise VfmError(
                f"checkpoint tensor '{key}' has shape {list(value.shape)}, the model expects {list(own[key].shape)}",
                where=str(path),
                fix="build the classifier with the encoder's own config (its encoder.json)",
            )

    result = model.load_state_dict(state, strict=False)
    missing = sorted(result.missing_keys)
    not_allowed = [k for k in missing if not k.startswith(_ALLOWED_MISSING)]
    if not_allowed:
        raise VfmError(
            f"checkpoint lacks {len(not_allowed)} encoder tensor(s), e.g. {not_allowed[:3]}",
            where=str(path),
            fix="pass a ViT encoder checkpoint of the same architecture",
        )
    if isinstance(model.head, torch.nn.Linear):
        trunc_normal_(model.head.weight, std=2e-5)
        torch.nn.init.zeros_(model.head.bias)
    return {
        "format": fmt,
        "missing": missing,
        "unexpected": sorted(result.unexpected_keys),
        "dropped": dropped,
        "interpolated_pos_embed": interpolated,
    }


def _resize_pos_embed(theirs: torch.Tensor, ours: torch.Tensor, path: Path) -> torch.Tensor:
    """theirs: [1, 1+G0*G0, D] -> [1, 1+G*G, D], bicubic on the grid, cls position unchanged."""
    old_grid, new_grid = round((theirs.shape[1] - 1) ** 0.5), round((ours.shape[1] - 1) ** 0.5)
    if old_grid**2 + 1 != theirs.shape[1] or new_grid**2 + 1 != ours.shape[1]:
        raise VfmError(
            f"checkpoint pos_embed {list(theirs.shape)} cannot be resized to {list(ours.shape)}",
            where=str(path),
            fix="use a ViT encoder with one cls token and a square patch grid",
        )
    return resample_abs_pos_embed(
        theirs.float(),
        new_size=[new_grid, new_grid],
        old_size=[old_grid, old_grid],
        num_prefix_tokens=1,
        interpolation="bicubic",
        antialias=False,
    )


def save_classifier(
    model: VisionTransformer, encoder_cfg: dict, num_classes: int, path_dir: str | Path, meta: dict | None = None
) -> list[Path]:
    """Write ``classifier.safetensors`` and ``classifier.json`` (encoder config, classes, pooling, meta)."""
    path_dir = Path(path_dir)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    info = {"encoder": encoder_cfg, "num_classes": num_classes, "global_pool": model.global_pool, **(meta or {})}
    return [
        atomic_write_bytes(path_dir / "classifier.safetensors", save(tensors)),
        atomic_write_json(path_dir / "classifier.json", info),
    ]


def load_classifier(path_dir: str | Path, build_model: ModelBuilder | None = None) -> VisionTransformer:
    """The classifier saved by ``save_classifier`` in ``path_dir``, in eval mode.

    ``build_model`` must be the builder it was trained with (default :func:`build_vit_classifier`).
    """
    path_dir = Path(path_dir)
    info_path, weights = path_dir / "classifier.json", path_dir / "classifier.safetensors"
    if not info_path.is_file() or not weights.is_file():
        raise VfmError(
            "no classifier.json + classifier.safetensors",
            where=str(path_dir),
            fix="pass the output directory of a fine-tuning run",
        )
    try:
        info = json.loads(info_path.read_text("utf-8"))
        model = (build_model or build_vit_classifier)(
            info["encoder"], info["num_classes"], global_pool=info["global_pool"]
        )
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise VfmError(
            f"classifier.json is not a vfm ViT classifier's ({err.__class__.__name__}: {err})",
            where=str(info_path),
            fix="pass the output directory of 'vfm finetune' (a baseline from benchmarks/ is not one)",
        ) from None
    try:
        model.load_state_dict(load_file(weights), strict=True)
    except RuntimeError as err:  # other keys or shapes: another architecture (e.g. the small-CNN baseline)
        raise VfmError(
            f"the weights are not this ViT classifier's ({str(err).splitlines()[0]})",
            where=str(weights),
            fix="pass the output directory of 'vfm finetune' (a baseline from benchmarks/ is not one)",
        ) from None
    return model.eval()
