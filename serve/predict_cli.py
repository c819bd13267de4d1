"""``vfm predict``: run a bundle on files and describe each result as JSON (torch-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vfm.platform.errors import VfmError
from vfm.serve.overlay import overlay_heatmap
from vfm.serve.runtime import open_predictor


def jsonable(result: dict[str, Any]) -> dict[str, Any]:
    """The result without its arrays (heat-maps, views), for printing."""
    return {
        k: v
        for k, v in result.items()
        if not isinstance(v, np.ndarray)
        and not (isinstance(v, dict) and any(isinstance(x, np.ndarray) for x in v.values()))
    }


def predict_files(
    bundle: str | Path, inputs: list[str], *, explain_dir: Path, public_key: str | Path | None = None
) -> list[dict[str, Any]]:
    """Predict every input; a bad input yields ``{"input", "error"}`` and the others still run.

    Each heat-map explanation the model gives is written as ``explain_dir/<input name>_<method>.png``
    (overlaid on the model's input) and its path reported under ``explanations``. A result's
    ready-made ``overlay`` frames, uint8 [n, H, W, 3] (a clip's), are written side by side as
    ``explain_dir/<input name>_overlay.png`` and that path reported under ``overlay``. ``<input name>``
    is the file's name with its extension (``photo.png``, ``photo.jpg``), numbered when two inputs share it.
    ``public_key``: require the bundle's signature by this key.
    """
    if explain_dir.exists() and not explain_dir.is_dir():
        raise VfmError(
            "the explanations folder is a file", where=str(explain_dir), fix="pass a folder to --explain-dir"
        )
    predictor = open_predictor(bundle, public_key)
    results = []
    seen: dict[str, int] = {}
    for name in inputs:
        try:
            result = predictor.predict(name)
        except VfmError as err:
            results.append({"input": name, "error": str(err)})
            continue
        entry = {"input": name, **jsonable(result)}
        label = Path(name).name
        seen[label] = seen.get(label, 0) + 1
        label += f"-{seen[label]}" if seen[label] > 1 else ""
        if result.get("explanations") and result.get("view") is not None:
            explain_dir.mkdir(parents=True, exist_ok=True)
            entry["explanations"] = {}
            for method, heatmap in result["explanations"].items():
                path = explain_dir / f"{label}_{method}.png"
                Image.fromarray(overlay_heatmap(result["view"], heatmap)).save(path)
                entry["explanations"][method] = str(path)
        overlay = result.get("overlay")
        if isinstance(overlay, np.ndarray) and overlay.ndim == 4:
            explain_dir.mkdir(parents=True, exist_ok=True)
            path = explain_dir / f"{label}_overlay.png"
            Image.fromarray(np.concatenate(list(overlay), axis=1)).save(path)
            entry["overlay"] = str(path)
        results.append(entry)
    return results
