"""The commentary model and its tokenizer: shapes, the loss, the cache, loading encoders and decoders."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tokenizers import Tokenizer, models

from vfm.platform.errors import VfmError
from vfm.plugins.driving.model import (
    CommentaryConfig,
    CommentaryModel,
    _cache_keyword,
    _flatten_cache,
    decoder_config,
    load_commentary_model,
    save_commentary_model,
)
from vfm.plugins.driving.tokenizer import DrivingTokenizer, sample_texts, train_tokenizer
from vfm.pretrain.mae import MaeConfig, MaskedAutoencoderViT

from .tiny_commentary import make_samples, one_thread, tiny_model, tiny_tokenizer

K, SIZE = 3, 32


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def samples():
    return make_samples(6, k=K, size=SIZE)


@pytest.fixture(scope="module")
def tokenizer(samples):
    return tiny_tokenizer(samples)


@pytest.fixture
def model(tokenizer):
    return tiny_model(tokenizer, k=K, size=SIZE).eval()


def clip_batch(samples, n: int = 2):
    frames = torch.from_numpy(np.stack([s.frames for s in samples[:n]]))  # [n, k, H, W, 3]
    speeds = torch.tensor([[12.0 + t for t in range(K)], [float("nan")] * K])[:n]  # [n, k]: accelerating; unknown
    return frames.permute(0, 1, 4, 2, 3).float() / 255.0, speeds


def test_tokenizer_round_trips_unseen_numbers_and_keeps_its_special_tokens(tokenizer, samples, tmp_path):
    text = "Slowing down because the lead vehicle is 137 m ahead at 29.5 m/s!"
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.prompt(None) == [tokenizer.bos_id, tokenizer.sep_id]
    assert tokenizer.prompt("Why?")[1:-1] == tokenizer.encode("Why?")
    assert tokenizer.target("ok")[-1] == tokenizer.eos_id
    assert len({tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.sep_id}) == 4
    loaded = DrivingTokenizer.load(tokenizer.save(tmp_path / "tokenizer.json"))
    assert loaded.encode(text) == tokenizer.encode(text) and loaded.vocab_size == tokenizer.vocab_size
    assert set(sample_texts(samples[:1])) == {
        samples[0].commentary,
        *(t for p in samples[0].qa for t in (p.question, p.answer)),
    }


def test_tokenizer_without_special_tokens_is_refused_or_extended():
    plain = Tokenizer(models.WordLevel({"car": 0, "[UNK]": 1}, unk_token="[UNK]"))
    with pytest.raises(VfmError, match="special token"):
        DrivingTokenizer(plain)
    extended = DrivingTokenizer.extend(plain)
    assert extended.vocab_size == 6 and extended.encode("car") == [0]
    assert plain.get_vocab_size(with_added_tokens=True) == 2  # the original is untouched


def test_prefix_layout_ego_token_and_saliency(model, samples):
    frames, speed = clip_batch(samples)
    with torch.no_grad():
        prefix, saliency = model.prefix(frames, speed, with_saliency=True)
        faster, _ = model.prefix(frames, speed + 10.0)
    cfg = model.config
    assert cfg.prefix_length == K * (1 + 2 * 2) + 1
    assert prefix.shape == (2, cfg.prefix_length, 64)
    assert saliency.shape == (2, K, cfg.grid, cfg.grid)
    torch.testing.assert_close(saliency.sum(dim=(2, 3)), torch.ones(2, K))
    torch.testing.assert_close(prefix[1, -1], model.unknown_ego)  # NaN speed, no settings: the learned unknown token
    assert not torch.allclose(faster[0, -1], prefix[0, -1])  # the speed changes the ego token only
    torch.testing.assert_close(faster[:, :-1], prefix[:, :-1])
    torch.testing.assert_close(faster[1], prefix[1])


def test_ego_token_reads_the_trend_and_partial_traces(model):
    nan = float("nan")
    traces = torch.tensor(
        [[12.0, 13.0, 14.0], [16.0, 15.0, 14.0], [nan, nan, 14.0], [nan, 15.0, 14.0], [nan, nan, nan]]
    )  # accelerating, braking, last frame only, two frames, unknown
    assert traces.shape[1] == K
    with torch.no_grad():
        tokens = model.ego_token(traces)  # [5, D]
    assert torch.isfinite(tokens).all()
    assert len({tuple(row.tolist()) for row in tokens}) == 5  # same final speed, five different tokens
    torch.testing.assert_close(tokens[4], model.unknown_ego)


def test_ego_token_reads_the_drivers_settings(model, samples):
    nan = float("nan")
    speed = torch.tensor([[12.0, 13.0, 14.0]] * 5 + [[nan, nan, nan]])  # [6, k]
    settings = torch.tensor(
        [[nan, nan], [25.0, 1.5], [30.0, 1.5], [25.0, 2.0], [25.0, nan], [25.0, 1.5]]
    )  # unknown, three settings, set speed alone; no speed but settings
    with torch.no_grad():
        tokens = model.ego_token(speed, settings)  # [6, D]
        default = model.ego_token(speed[:1])  # settings None: unknown
    assert len({tuple(row.tolist()) for row in tokens}) == 6
    torch.testing.assert_close(default[0], tokens[0])
    assert not torch.allclose(tokens[5], model.unknown_ego)  # settings alone are something known
    frames, clip_speed = clip_batch(samples)
    with torch.no_grad():
        plain, _ = model.prefix(frames, clip_speed)
        told, _ = model.prefix(frames, clip_speed, torch.tensor([[25.0, 1.5]] * 2))
    torch.testing.assert_close(told[:, :-1], plain[:, :-1])  # the settings reach the ego token only
    assert not torch.allclose(told[:, -1], plain[:, -1])


def test_loss_scores_the_target_tokens_only(model, tokenizer, samples):
    frames, speed = clip_batch(samples)
    prompt, target = tokenizer.prompt("Why?"), tokenizer.target(samples[0].commentary)
    tokens = torch.tensor([prompt + target + [tokenizer.pad_id] * 3] * 2)  # [2, T]
    labels = torch.full_like(tokens, -100)
    labels[:, len(prompt) : len(prompt) + len(target)] = tokens[:, len(prompt) : len(prompt) + len(target)]
    loss = model(frames, speed, tokens, labels)

    with torch.no_grad():
        prefix, _ = model.prefix(frames, speed)
        embeds = torch.cat([prefix, model.decoder.get_input_embeddings()(tokens)], dim=1)
        logits = model.decoder(inputs_embeds=embeds).logits  # [2, P+T, V]
    p = prefix.shape[1]
    positions = range(len(prompt), len(prompt) + len(target))  # token t is predicted at sequence position P+t-1
    manual = torch.stack([F.cross_entropy(logits[:, p + t - 1], tokens[:, t], reduction="none") for t in positions])
    torch.testing.assert_close(loss, manual.mean(), rtol=1e-5, atol=1e-6)

    padded_differently = tokens.clone()
    padded_differently[:, -3:] = 7
    torch.testing.assert_close(model(frames, speed, padded_differently, labels), loss)
    asked_differently = tokens.clone()
    asked_differently[:, 1] = 9  # the question changes the prediction but is not scored itself
    assert not torch.allclose(model(frames, speed, asked_differently, labels), loss)


def test_cached_step_gives_the_full_sequence_result(model, tokenizer, samples):
    frames, speed = clip_batch(samples)
    tokens = torch.tensor([tokenizer.prompt("What is the car doing?") + tokenizer.encode("slow")] * 2)
    with torch.no_grad():
        prefix, _ = model.prefix(frames, speed)
        logits, attention, present = model.decode_full(prefix, tokens)
        _, _, past = model.decode_full(prefix, tokens[:, :-1])
        step_logits, step_attention, step_present = model.decode_step(tokens[:, -1:], past)
    assert len(present) == 2 * 2 and present[0].shape == (2, 2, prefix.shape[1] + tokens.shape[1], 32)
    torch.testing.assert_close(step_logits, logits, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(step_attention, attention, atol=1e-6, rtol=1e-4)
    assert attention.shape == (2, prefix.shape[1]) and float(attention.sum(dim=1).max()) <= 1.0 + 1e-6
    for a, b in zip(step_present, present, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_loads_our_mae_encoder_and_refuses_another_shape(model, tmp_path):
    mae = MaskedAutoencoderViT(MaeConfig.preset("tiny", img_size=SIZE, embed_dim=32, depth=2, num_heads=2))
    save_file({k: v.contiguous() for k, v in mae.encoder_state_dict().items()}, tmp_path / "encoder.safetensors")
    report = model.load_encoder(tmp_path / "encoder.safetensors")
    assert report["format"] == "safetensors" and not report["missing"]
    for name, value in mae.encoder_state_dict().items():
        torch.testing.assert_close(model.vit.state_dict()[name], value)

    wide = MaskedAutoencoderViT(MaeConfig.preset("tiny", img_size=SIZE, embed_dim=64, depth=2, num_heads=2))
    save_file({k: v.contiguous() for k, v in wide.encoder_state_dict().items()}, tmp_path / "wide.safetensors")
    with pytest.raises(VfmError, match="encoder.json"):
        model.load_encoder(tmp_path / "wide.safetensors")


def test_save_and_load_round_trip_keeps_tied_weights(model, tokenizer, samples, tmp_path):
    save_commentary_model(model, tokenizer, tmp_path / "model")
    loaded, loaded_tokenizer = load_commentary_model(tmp_path / "model")
    frames, speed = clip_batch(samples)
    prompt = tokenizer.prompt(None)
    assert loaded.generate(frames, speed, prompt, tokenizer.eos_id, 6) == model.generate(
        frames, speed, prompt, tokenizer.eos_id, 6
    )
    decoder = loaded.decoder
    assert decoder.get_output_embeddings().weight.data_ptr() == decoder.get_input_embeddings().weight.data_ptr()
    assert loaded_tokenizer.vocab_size == tokenizer.vocab_size
    with pytest.raises(VfmError, match="driving training run"):
        load_commentary_model(tmp_path)

    config_file = tmp_path / "model" / "commentary.json"
    info = json.loads(config_file.read_text())
    config_file.write_text(
        json.dumps(info | {"config": info["config"] | {"motion": False}})
    )  # written before its removal
    assert load_commentary_model(tmp_path / "model")[0].config == loaded.config
    config_file.write_text(json.dumps(info | {"config": info["config"] | {"motion": True}}))
    with pytest.raises(VfmError, match="reads frame differences"):
        load_commentary_model(tmp_path / "model")


def test_for_text_plugs_in_a_saved_causal_lm(samples, tmp_path):
    from vfm.pretrain.text_models import fresh_model
    from vfm.pretrain.text_prepare import save_pretrained_atomic
    from vfm.pretrain.text_vocab import train_tokenizer as train_hf_tokenizer

    hf_tokenizer = train_hf_tokenizer(sample_texts(samples), "bpe", 300)
    lm = fresh_model("fresh:gpt2-tiny", hf_tokenizer)
    save_pretrained_atomic(lm, hf_tokenizer, tmp_path / "model")  # the layout text adaptation writes
    encoder = MaeConfig.preset("tiny", img_size=SIZE, embed_dim=32, depth=2, num_heads=2).encoder_config()
    model, tokenizer = CommentaryModel.for_text(tmp_path / "model", encoder, frames=K, max_new_tokens=20)

    rows = lm.get_input_embeddings().weight.shape[0]
    assert tokenizer.vocab_size == rows + 4  # <pad> <bos> <eos> <sep> appended
    assert model.decoder.get_input_embeddings().weight.shape[0] == tokenizer.vocab_size
    torch.testing.assert_close(model.decoder.get_input_embeddings().weight[:rows], lm.get_input_embeddings().weight)
    assert model.decoder.config._attn_implementation == "eager"
    assert model.config.extra["text_model"] == str(tmp_path / "model")
    frames, speed = clip_batch(samples)
    tokens = torch.tensor([tokenizer.prompt(None) + tokenizer.target(samples[0].commentary)] * 2)
    labels = tokens.clone()
    labels[:, :2] = -100
    assert torch.isfinite(model(frames, speed, tokens, labels))


def test_config_errors_name_the_fix(tokenizer):
    encoder = MaeConfig.preset("tiny", img_size=SIZE, embed_dim=32, depth=2, num_heads=2).encoder_config()
    with pytest.raises(VfmError, match="patch_grid 3 does not divide"):
        CommentaryConfig(encoder=encoder, decoder=decoder_config(tokenizer, "gpt2-tiny"), patch_grid=3)
    with pytest.raises(VfmError, match="unknown decoder preset"):
        decoder_config(tokenizer, "bert-tiny")
    too_long = CommentaryConfig(encoder=encoder, decoder=decoder_config(tokenizer, "gpt2-tiny", n_positions=32))
    with pytest.raises(VfmError, match="positions"):
        CommentaryModel(too_long)


def test_train_tokenizer_is_small_and_covers_any_text():
    tokenizer = train_tokenizer(["Keeping speed on a free road."] * 4, vocab_size=280)
    assert tokenizer.vocab_size <= 280
    assert tokenizer.decode(tokenizer.encode("Ünïcode 42 ✓")) == "Ünïcode 42 ✓"


class _DecoderBefore5_2x(torch.nn.Module):
    def forward(self, input_ids=None, past_key_values=None, use_cache=None):
        return input_ids


class _DecoderFrom5_2x(torch.nn.Module):
    def forward(self, input_ids=None, cache=None, use_cache=None):
        return input_ids


def test_the_key_value_cache_is_found_under_either_transformers_name():
    # transformers renamed past_key_values to cache in 5.2x; the GPU machine's 5.17 has the old name
    assert _cache_keyword(_DecoderBefore5_2x()) == "past_key_values"
    assert _cache_keyword(_DecoderFrom5_2x()) == "cache"
    layers = SimpleNamespace(layers=[SimpleNamespace(keys=torch.zeros(1), values=torch.ones(1))])
    for output in (SimpleNamespace(cache=layers), SimpleNamespace(past_key_values=layers)):
        keys, values = _flatten_cache(output)
        assert keys is layers.layers[0].keys and values is layers.layers[0].values
