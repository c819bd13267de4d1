"""Export to ONNX and torch-free decoding: real onnxruntime sessions, token parity with torch in
both cache modes, beams, explanations, and clear errors for bad inputs."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from vfm.platform.errors import VfmError
from vfm.plugins.driving.decode import CommentaryRuntime, check_driver_settings, read_settings
from vfm.plugins.driving.export import export_commentary
from vfm.plugins.driving.training import clip_array

from .tiny_commentary import make_samples, one_thread, quick_fit, tiny_model, tiny_tokenizer

pytestmark = pytest.mark.slow  # the module fixture exports three graphs with torch.onnx (about 15 s)

K, SIZE = 3, 32
QUESTIONS = ("What is the car doing?", "Why?")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny model fitted for a few steps, exported once: (folder, model, tokenizer, samples, report)."""
    samples = make_samples(18, k=K, size=SIZE)
    tokenizer = tiny_tokenizer(samples)
    model = quick_fit(tiny_model(tokenizer, k=K, size=SIZE), tokenizer, samples)
    folder = tmp_path_factory.mktemp("driving-onnx")
    clips = np.stack([s.frames for s in samples[1:4]])
    _, speeds = clip_array(samples[1:4])  # [3, k]
    settings = np.stack([s.driver_settings() for s in samples[1:4]])  # [3, 2]
    assert np.isfinite(settings[0]).all()  # the first clip is also compared without its settings
    report = export_commentary(model, tokenizer, folder, clips, speeds, QUESTIONS, settings=settings)
    return folder, model, tokenizer, samples, report


@pytest.fixture(scope="module")
def runtime(exported):
    return CommentaryRuntime(exported[0])


def torch_greedy(model, tokenizer, sample, question=None) -> list[int]:
    frames = torch.from_numpy(sample.frames[None]).permute(0, 1, 4, 2, 3).float() / 255.0  # [1, k, 3, H, W]
    speed = torch.from_numpy(clip_array([sample])[1])  # [1, k]
    return model.generate(
        frames,
        speed,
        tokenizer.prompt(question),
        tokenizer.eos_id,
        settings=torch.from_numpy(sample.driver_settings()[None]),
    )[0]


def dims(model_path, name) -> list:
    graph = onnx.load(str(model_path)).graph
    value = next(v for v in [*graph.input, *graph.output] if v.name == name)
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_export_writes_three_graphs_with_symbolic_axes_and_a_parity_report(exported):
    folder, model, _, _, report = exported
    parity = json.loads((folder / "parity.json").read_text())
    assert (
        parity["tokens"]
        == report["tokens"]
        == {
            "cases": 3 + 1 + len(QUESTIONS),
            "cached_match": 6,
            "uncached_match": 6,
            "tokens_compared": report["tokens"]["tokens_compared"],
        }
    )
    assert report["tokens"]["tokens_compared"] > 10
    assert report["encoder"]["passed"] and report["encoder"]["n_inputs"] == 3
    for graph in ("decoder", "decoder_step"):
        assert max(report[graph]["max_abs_err"].values()) < 1e-4
    p, k, g = model.config.prefix_length, K, model.config.grid
    assert isinstance(dims(folder / "encoder.onnx", "frames")[0], str)
    assert dims(folder / "encoder.onnx", "saliency")[1:] == [k, g, g]
    full = dims(folder / "decoder.onnx", "tokens")
    assert all(isinstance(d, str) for d in full) and dims(folder / "decoder.onnx", "prefix")[1] == p
    past = dims(folder / "decoder_step.onnx", "past_key_0")
    assert isinstance(past[0], str) and isinstance(past[2], str)
    assert read_settings(folder)["prefix_length"] == p


def test_onnx_greedy_matches_torch_in_both_cache_modes(exported, runtime):
    _, model, tokenizer, samples, _ = exported
    said = set()
    for sample, question in [(samples[4], None), (samples[5], None), (samples[6], QUESTIONS[1])]:
        expected = torch_greedy(model, tokenizer, sample, question)
        for use_cache in (True, False):
            got = runtime.run(
                sample.frames,
                sample.speed_trace(),
                question,
                use_cache=use_cache,
                driver_settings=sample.driver_settings(),
            )
            assert list(got.tokens) == expected
        said.add(got.text)
    assert len(said) > 1 and all(len(text) > 3 for text in said)  # the fitted model says different things


def test_beam_search_in_both_cache_modes(exported, runtime):
    _, _, _, samples, _ = exported
    sample = samples[7]
    greedy = runtime.comment(sample.frames, sample.speed_trace())
    assert runtime.comment(sample.frames, sample.speed_trace(), beam_size=1).tokens == greedy.tokens
    cached = runtime.comment(sample.frames, sample.speed_trace(), beam_size=3)
    uncached = runtime.comment(sample.frames, sample.speed_trace(), beam_size=3, use_cache=False)
    assert cached.tokens == uncached.tokens
    assert [t for t, _ in cached.alternatives] == [t for t, _ in uncached.alternatives]
    assert 1 <= len(cached.alternatives) <= 3 and cached.alternatives[0][0] == cached.text
    for result in (greedy, cached):
        token_log_prob = sum(math.log(p) for p in result.token_probs)
        assert result.finished == (result.log_prob < token_log_prob - 1e-12)  # <eos> adds its own log-probability
        assert all(0.0 < p <= 1.0 for p in result.token_probs)


def test_explanations_per_token_and_per_frame(exported, runtime):
    _, model, _, samples, _ = exported
    result = runtime.answer(samples[8].frames, None, QUESTIONS[0])
    n, p = len(result.tokens), model.config.prefix_length
    assert result.prefix_attention.shape == (n, p) and n > 0
    assert ((result.prefix_attention >= 0) & (result.prefix_attention <= 1)).all()
    assert result.frame_attention.shape == (K,)
    assert 0 < result.frame_attention.sum() + result.speed_attention <= 1 + 1e-5
    np.testing.assert_allclose(result.saliency.sum(axis=(1, 2)), np.ones(K), rtol=1e-5)
    overlay = result.overlay()
    assert overlay.shape == (K, model.config.grid, model.config.grid)
    assert overlay.min() >= 0 and overlay.max() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("change", "message", "fix"),
    [
        (lambda clip, q: (clip[:-1], None), "the clip has 2 frames, the model reads 3", "last 3 frames"),
        (lambda clip, q: (np.zeros((K, 48, 64, 3), np.uint8), None), "frames are 48x64", "resize the frames to 32x32"),
        (lambda clip, q: (clip.astype(np.float32), None), "frames are float32", "uint8"),
        (lambda clip, q: (clip[..., 0], None), "expected [k, H, W, 3]", "RGB"),
        (lambda clip, q: (clip, "   "), "the question is empty", "type a question"),
        (lambda clip, q: (clip, "why " * 40), "the model reads at most 12", "shorten the question"),
    ],
)
def test_bad_inputs_raise_one_line_errors_naming_the_fix(exported, runtime, change, message, fix):
    sample = exported[3][0]
    frames, question = change(sample.frames, None)
    with pytest.raises(VfmError) as caught:
        runtime.run(frames, sample.speed_trace(), question)
    text = str(caught.value)
    assert message in text and fix in text and "fix:" in text and "\n" not in text


def test_speed_given_per_frame_for_the_last_frame_or_not_at_all(exported, runtime):
    sample = exported[3][4]
    trace = runtime.speed_trace([12.0, 13.0, 14.0])
    np.testing.assert_array_equal(trace, np.array([12.0, 13.0, 14.0], np.float32))
    assert np.isnan(runtime.speed_trace(14.0)[:-1]).all() and runtime.speed_trace(14.0)[-1] == 14.0
    assert np.isnan(runtime.speed_trace(None)).all()
    pixels = runtime.preprocess(sample.frames)
    unknown = np.full((1, 2), np.nan, np.float32)
    prefixes = [
        runtime.backend.encode(pixels, runtime.speed_trace(speed)[None], unknown)[0][0]
        for speed in ([12.0, 13.0, 14.0], 14.0, None)
    ]  # each [P, D]
    for i, j in ((0, 1), (0, 2), (1, 2)):  # each form reaches the speed token, and only it
        assert not np.allclose(prefixes[i][-1], prefixes[j][-1])
        np.testing.assert_array_equal(prefixes[i][:-1], prefixes[j][:-1])
    assert all(runtime.comment(sample.frames, speed).tokens for speed in ([12.0, 13.0, 14.0], 14.0, None))
    for bad, message in (([1.0, 2.0], "the clip has 3 frames"), (-3.0, "non-negative"), ("fast", "numbers in m/s")):
        with pytest.raises(VfmError, match=message) as caught:
            runtime.comment(sample.frames, bad)
        assert "fix:" in str(caught.value) and "\n" not in str(caught.value)


def test_driver_settings_reach_the_ego_token_in_every_form(exported, runtime):
    sample = exported[3][4]
    pixels, speed = runtime.preprocess(sample.frames), runtime.speed_trace(sample.speed_trace())[None]
    forms = [None, (25.0, 1.5), [25.0, None], np.array([np.nan, 1.5])]
    prefixes = [runtime.backend.encode(pixels, speed, check_driver_settings(form)[None])[0][0] for form in forms]
    for i in range(len(forms)):
        for j in range(i):
            assert not np.allclose(prefixes[i][-1], prefixes[j][-1])
            np.testing.assert_array_equal(prefixes[i][:-1], prefixes[j][:-1])
    assert runtime.comment(sample.frames, sample.speed_trace(), driver_settings=(25.0, 1.5)).tokens
    for bad in ("fast", [25.0], [25.0, 1.5, 3.0], [-1.0, 1.5], [float("inf"), 1.5], 25.0, (True, 1.5)):
        with pytest.raises(VfmError, match="driver_settings") as caught:
            runtime.comment(sample.frames, 10.0, driver_settings=bad)
        assert "fix:" in str(caught.value) and "\n" not in str(caught.value)


def test_bad_decoding_options_and_folders_are_refused(exported, runtime, tmp_path):
    sample = exported[3][0]
    with pytest.raises(VfmError, match="beam_size"):
        runtime.comment(sample.frames, 10.0, beam_size=0)
    with pytest.raises(VfmError, match="max_new_tokens"):
        runtime.comment(sample.frames, 10.0, max_new_tokens=1000)
    with pytest.raises(VfmError, match="export_commentary"):
        CommentaryRuntime(tmp_path)


def test_runtime_decodes_without_torch(exported, runtime, tmp_path):
    folder, _, _, samples, _ = exported
    np.save(tmp_path / "clip.npy", samples[9].frames)
    script = (
        "import sys; sys.modules['torch'] = None\n"  # any import of torch now fails
        "import numpy as np\n"
        "from vfm.plugins.driving.decode import CommentaryRuntime\n"
        f"clip = np.load({str(tmp_path / 'clip.npy')!r})\n"
        f"result = CommentaryRuntime({str(folder)!r}).comment(clip, {samples[9].speed_trace().tolist()!r}, beam_size=2)\n"
        "print(result.text)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == runtime.comment(samples[9].frames, samples[9].speed_trace(), beam_size=2).text
