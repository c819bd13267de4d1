"""Training the commentary model: exact resume after a crash, label fractions, tasks, a frozen
pretrained encoder. Tiny CPU runs of a few steps."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest
import torch
from safetensors.torch import load_file, save_file

from vfm.platform.errors import VfmError
from vfm.plugins.driving import training
from vfm.plugins.driving.model import load_commentary_model
from vfm.plugins.driving.training import (
    CommentaryTrainSettings,
    clip_array,
    collate,
    hide_settings,
    hide_speeds,
    make_examples,
    train_commentary,
)
from vfm.pretrain.mae import MaeConfig, MaskedAutoencoderViT

from .tiny_commentary import make_samples, one_thread, tiny_settings, tiny_tokenizer

MAX_STEPS = 4


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def samples():
    return make_samples(12, k=2, size=32)


def weights(out) -> dict[str, torch.Tensor]:
    return load_file(out / "model" / "commentary.safetensors")


def logged_steps(out, version: int) -> list[int]:
    with open(out / "logs" / f"version_{version}" / "metrics.csv", newline="") as handle:
        return [int(row["step"]) for row in csv.DictReader(handle) if row["train/loss"]]


def test_a_crashed_run_resumes_its_step_counter_and_weights(samples, tmp_path, monkeypatch):
    settings = tiny_settings(max_steps=MAX_STEPS, checkpoint_every_n_steps=2)
    reference = train_commentary(samples, settings, tmp_path / "reference", progress=False)
    assert reference["steps"] == MAX_STEPS and reference["resumed_from_step"] == 0

    def crash_at_step_3(module, batch, batch_idx):
        if module.global_step == 3:
            raise RuntimeError("simulated crash")

    with monkeypatch.context() as patch:
        patch.setattr(training.CommentaryModule, "on_train_batch_start", crash_at_step_3, raising=False)
        with pytest.raises(RuntimeError, match="simulated crash"):
            train_commentary(samples, settings, tmp_path / "crashed", progress=False)
    assert torch.load(tmp_path / "crashed" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2

    resumed = train_commentary(samples, settings, tmp_path / "crashed", progress=False)
    assert (resumed["resumed_from_step"], resumed["steps"]) == (2, MAX_STEPS)
    saved = torch.load(tmp_path / "crashed" / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]
    assert resumed["seconds_all_calls"] > resumed["seconds"] > 0  # the crashed call's 2 steps count too
    assert saved["TrainingClock"]["seconds"] >= resumed["seconds_all_calls"] - 1e-3
    assert logged_steps(tmp_path / "crashed", 1) == [2, 3]  # the second fit logs steps 2 and 3 only
    for name, value in weights(tmp_path / "reference").items():
        torch.testing.assert_close(weights(tmp_path / "crashed")[name], value, msg=name)

    again = train_commentary(samples, settings, tmp_path / "crashed", progress=False)  # already done: no step
    assert (again["resumed_from_step"], again["steps"], again["seconds"]) == (MAX_STEPS, MAX_STEPS, 0.0)
    assert again["seconds_all_calls"] == pytest.approx(saved["TrainingClock"]["seconds"], abs=1e-3)


def test_a_checkpoint_of_another_model_is_refused_in_one_line(samples, tmp_path):
    train_commentary(samples, tiny_settings(max_steps=2), tmp_path / "run", progress=False)
    with pytest.raises(VfmError, match="does not fit this model") as caught:  # another prefix layout
        train_commentary(samples, tiny_settings(max_steps=4, patch_grid=1), tmp_path / "run", progress=False)
    assert "slot_embed" in str(caught.value) and "new --out folder" in str(caught.value)
    assert "\n" not in str(caught.value)
    (tmp_path / "run" / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(VfmError, match="cannot read the checkpoint"):
        train_commentary(samples, tiny_settings(max_steps=4), tmp_path / "run", progress=False)


def test_label_fraction_and_tasks_choose_the_examples(samples, tmp_path):
    result = train_commentary(
        samples, tiny_settings(max_steps=1, label_fraction=0.5, tasks=("qa",)), tmp_path, progress=False
    )
    assert result["samples"] == {"given": 12, "labelled": 12, "trained_on": 6}  # 2 of each of 3 actions
    assert result["examples"] == {"commentary": 0, "qa": 12, "too_long": 0}
    assert json.loads((tmp_path / "settings.json").read_text())["label_fraction"] == 0.5
    model, tokenizer = load_commentary_model(tmp_path / "model")
    assert model.config.frames == 2 and tokenizer.vocab_size <= 300


def test_examples_mix_commentary_and_qa_and_score_the_answer_only(samples):
    tokenizer = tiny_tokenizer(samples)
    examples, counts = make_examples(samples[:2], tokenizer, ("commentary", "qa"), 12, 40)
    assert counts == {"commentary": 2, "qa": 4, "too_long": 0}
    frames, speeds = map(torch.from_numpy, clip_array(samples[:2]))
    batch = collate(examples[:3], frames, speeds, tokenizer.pad_id)
    assert batch["frames"].shape == (3, 2, 3, 32, 32) and float(batch["frames"].max()) <= 1.0
    assert batch["speed"].shape == (3, 2)
    first = examples[0]
    assert batch["tokens"][0, : len(first.tokens)].tolist() == list(first.tokens)
    assert (batch["labels"][0, : first.prompt] == -100).all()
    assert batch["labels"][0, first.prompt : len(first.tokens)].tolist() == list(first.tokens[first.prompt :])
    _, short = make_examples(samples[:2], tokenizer, ("commentary",), 12, 5)
    assert short == {"commentary": 0, "qa": 0, "too_long": 2}


def test_commentary_repeats_repeat_the_commentary_only(samples):
    tokenizer = tiny_tokenizer(samples)
    once, counts = make_examples(samples[:2], tokenizer, ("commentary", "qa"), 12, 40)
    thrice, repeated_counts = make_examples(samples[:2], tokenizer, ("commentary", "qa"), 12, 40, commentary_repeats=3)
    assert repeated_counts == counts  # distinct sequences
    commentary = [e for e in once if e.prompt == 2]  # <bos> <sep>: no question
    assert len(commentary) == 2 and len(thrice) == len(once) + 2 * len(commentary)
    assert Counter(thrice) == Counter(once) + Counter(commentary * 2)
    with pytest.raises(VfmError, match="commentary_repeats"):
        tiny_settings(commentary_repeats=0)


def test_frozen_pretrained_encoder_stays_as_pretrained(samples, tmp_path):
    mae_cfg = MaeConfig.preset("tiny", img_size=32)
    mae = MaskedAutoencoderViT(mae_cfg)
    save_file({k: v.contiguous() for k, v in mae.encoder_state_dict().items()}, tmp_path / "encoder.safetensors")
    (tmp_path / "encoder.json").write_text(json.dumps({"encoder": mae_cfg.encoder_config()}))
    settings = tiny_settings(max_steps=2, pretrained_encoder=str(tmp_path / "encoder.safetensors"), freeze_encoder=True)
    train_commentary(samples, settings, tmp_path / "run", progress=False)
    trained = weights(tmp_path / "run")
    for name, value in mae.encoder_state_dict().items():
        torch.testing.assert_close(trained[f"vit.{name}"], value, msg=name)
    model, _ = load_commentary_model(tmp_path / "run" / "model")
    assert model.config.extra["pretrained_encoder"] == str(tmp_path / "encoder.safetensors")


def test_patch_size_sets_the_encoder_grid_of_a_scratch_model(samples):
    frames, _ = clip_array(samples)  # 32 px: the tiny preset picks 8 px patches, a 4 x 4 grid
    default, _ = training.build_model(tiny_settings(), frames.shape[1], frames.shape[2], ["a sentence"])
    finer, _ = training.build_model(
        tiny_settings(patch_size=4, patch_grid=4), frames.shape[1], frames.shape[2], ["a sentence"]
    )
    assert (default.config.grid, finer.config.grid) == (4, 8)
    assert finer.vit.patch_embed.proj.kernel_size == (4, 4)


def test_bad_settings_and_data_are_refused(samples, tmp_path):
    with pytest.raises(VfmError, match="label_fraction"):
        CommentaryTrainSettings(label_fraction=0.0)
    with pytest.raises(VfmError, match="tasks"):
        CommentaryTrainSettings(tasks=("steering",))
    odd = make_samples(2, k=2, size=32) + make_samples(1, k=3, size=32)
    with pytest.raises(VfmError, match="same k, H, W"):
        train_commentary(odd, tiny_settings(), tmp_path, progress=False)


def test_a_text_adapted_decoder_is_trained_with_its_own_tokenizer(samples, tmp_path):
    from vfm.plugins.driving.tokenizer import sample_texts
    from vfm.pretrain.text_models import fresh_model
    from vfm.pretrain.text_prepare import save_pretrained_atomic
    from vfm.pretrain.text_vocab import train_tokenizer as train_hf_tokenizer

    hf_tokenizer = train_hf_tokenizer(sample_texts(samples), "bpe", 300)
    save_pretrained_atomic(fresh_model("fresh:gpt2-tiny", hf_tokenizer), hf_tokenizer, tmp_path / "lm")
    result = train_commentary(
        samples, tiny_settings(max_steps=1, text_model=str(tmp_path / "lm")), tmp_path / "run", progress=False
    )
    assert result["steps"] == 1
    model, tokenizer = load_commentary_model(tmp_path / "run" / "model")
    assert tokenizer.vocab_size == len(hf_tokenizer) + 4
    assert model.config.extra["text_model"] == str(tmp_path / "lm")


def test_settings_dropout_hides_whole_rows():
    torch.manual_seed(0)
    settings = torch.tensor([[25.0, 1.5]] * 400)
    hidden = hide_settings(settings, 0.3)
    gone = torch.isnan(hidden).all(dim=1)
    assert (torch.isnan(hidden).any(dim=1) == gone).all()  # a row is hidden whole or not at all
    assert 0.2 < gone.float().mean() < 0.4
    torch.testing.assert_close(hidden[~gone], settings[~gone])
    torch.testing.assert_close(hide_settings(settings, 0.0), settings)


def test_speed_dropout_hides_whole_traces_or_all_but_the_last_reading():
    speed = torch.arange(1, 1 + 400 * 3, dtype=torch.float32).reshape(400, 3)
    torch.manual_seed(0)
    hidden = hide_speeds(speed, 0.5)
    unknown = torch.isnan(hidden)
    whole, last_only = unknown.all(dim=1), unknown[:, :-1].all(dim=1) & ~unknown[:, -1]
    untouched = ~unknown.any(dim=1)
    assert bool((whole | last_only | untouched).all())
    assert 60 < int(whole.sum()) < 140 and 60 < int(last_only.sum()) < 140  # about a quarter each
    torch.testing.assert_close(hidden[untouched], speed[untouched])
    torch.testing.assert_close(hide_speeds(speed, 0.0), speed)
