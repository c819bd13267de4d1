"""Every installed plugin's bad inputs (the plugin's own list, ``Predictor.bad_inputs``) get a clear
one-line error through ``vfm predict`` and through the demo app, and the app keeps answering."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from conftest import PLUGINS
from gradio_client import Client, handle_file

from vfm.platform.bad_input import BadInput
from vfm.platform.cli import EXIT_USER_ERROR, main
from vfm.serve.runtime import open_predictor

pytestmark = pytest.mark.slow


def _cli_problem(case: BadInput, code: int, out: str, err: str) -> str | None:
    """What is wrong with ``vfm predict``'s answer to a bad input, or None."""
    if "Traceback" in err or "internal error" in err:
        return f"not a user error: {err.strip()[-300:]}"
    if code != EXIT_USER_ERROR:
        return f"exit {code}, expected {EXIT_USER_ERROR}: {out[:300]}"
    refusals = [line for line in err.splitlines() if line.startswith("vfm: error:")]
    if refusals:  # refused before predicting: one line on stderr
        message = refusals[0]
        if len(refusals) > 1:
            return f"more than one error line: {refusals}"
    else:
        results = json.loads(out)
        if len(results) != 1 or "error" not in results[0]:
            return f"accepted: {out[:300]}"
        message = results[0]["error"]
        if "\n" in message:
            return f"more than one line: {message!r}"
    if case.expect.casefold() not in message.casefold():
        return f"expected {case.expect!r} in: {message}"
    return None


def _app_problem(case: BadInput, message: str | None) -> str | None:
    """What is wrong with the app's answer to a bad input, or None."""
    if message is None:
        return "accepted"
    if "internal error" in message or "has raised an exception" in message:
        return f"not a user error: {message}"
    if tempfile.gettempdir() + "/" in message:
        return f"shows a server path: {message}"
    expect = case.app_expect or case.expect
    if expect.casefold() not in message.casefold():
        return f"expected {expect!r} in: {message}"
    return None


def _uploads(value: Any) -> Any:
    """The endpoint's arguments with each path as a file upload."""
    if isinstance(value, Path):
        return handle_file(str(value))
    if isinstance(value, list):
        return [_uploads(v) for v in value]
    return value


@pytest.mark.parametrize("plugin", PLUGINS)
def test_vfm_predict_refuses_each_bad_input_in_one_line(plugin, smoke_bundles, tmp_path, capfd):
    bundle = str(smoke_bundles[plugin])
    cases = [case for case in open_predictor(bundle).bad_inputs(tmp_path / "inputs") if case.file is not None]
    assert len({case.name for case in cases}) == len(cases) >= 10
    failures = []
    for case in cases:
        code = main(["predict", bundle, str(case.file), "--explain-dir", str(tmp_path / "explained")])
        out, err = capfd.readouterr()
        if problem := _cli_problem(case, code, out, err):
            failures.append(f"{case.name}: {problem}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("plugin", PLUGINS)
def test_the_app_refuses_each_bad_input_and_keeps_serving(plugin, smoke_bundles, app_url, tmp_path):
    predictor = open_predictor(smoke_bundles[plugin])
    cases = [case for case in predictor.bad_inputs(tmp_path / "inputs") if case.app is not None]
    assert len(cases) >= 10
    client = Client(app_url, verbose=False)
    endpoint = f"/{plugin}_predict"
    failures = []
    for case in cases:
        try:
            client.predict(*_uploads(case.app), api_name=endpoint)
            message = None
        except Exception as err:  # gradio_client raises AppError for gr.Error, other types for the rest
            message = str(err)
        if problem := _app_problem(case, message):
            failures.append(f"{case.name}: {problem}")
    assert not failures, "\n".join(failures)
    assert client.predict(*predictor.smoke_inputs(), api_name=endpoint)  # still serving
