"""What a plugin tells the reliability suite about its inputs: the mistakes users make, and the
one-line error each must get.

Every plugin's predictor lists its own (``Predictor.bad_inputs``), so a new plugin brings its
own cases and ``tests/reliability/`` runs them through ``vfm predict`` and the demo app without
knowing the plugin.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BadInput:
    """One wrong input and the error it must get.

    Attributes:
        name: a short id (the test's parameter id), unique within the plugin.
        expect: a fragment of the one-line error (compared case-insensitively).
        file: the input as ``vfm predict BUNDLE FILE`` takes it, written under the folder the
            plugin was given; None when the mistake can only be made in the app.
        app: the arguments of the demo tab's ``/<plugin>_predict`` endpoint, in order, with any
            :class:`~pathlib.Path` standing for a file upload; None when the app cannot send it.
        app_expect: the fragment of the app's error where it differs from ``expect``: Gradio itself
            refuses some inputs (a file type the upload does not take, a number below the field's minimum).
    """

    name: str
    expect: str
    file: Path | None = None
    app: list[Any] | None = None
    app_expect: str | None = None

    def __post_init__(self) -> None:
        if self.file is None and self.app is None:
            raise ValueError(f"bad input {self.name!r} reaches neither the CLI nor the app")


def write_bytes(folder: Path, name: str, data: bytes) -> Path:
    """``folder/name`` holding ``data``, for a :class:`BadInput`'s file."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
