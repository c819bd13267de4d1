"""Continued pretraining on tiny fresh models: loadable outputs, exact resume, perplexity falls,
a saved model used as a local base with an extended vocabulary."""

import json
import math
import shutil
import warnings

import pytest
import torch
from safetensors.torch import load_file
from text_general_sample import general_english_sample
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

from vfm.platform.errors import VfmError
from vfm.platform.training.optim import warmup_decay
from vfm.pretrain.text_adaptation import TextAdaptSettings, adapt_text_model
from vfm.pretrain.text_corpus import Document

pytestmark = pytest.mark.slow


def finance_docs(n: int = 240) -> list[Document]:
    """Repetitive finance-like notes: a tiny model learns them within a few dozen steps."""
    tail = "as adjusted EBITDA improved and amortization of intangibles fell. The board declared a dividend."
    return [
        Document(f"note-{i}", f"Revenue rose {i % 9}.5% to ${i % 4}.2 million in {2010 + i % 10} {tail}", "notes")
        for i in range(n)
    ]


def tiny(**overrides) -> TextAdaptSettings:
    base = dict(
        block_size=32,
        batch_size=8,
        max_steps=6,
        lr=2e-3,
        warmup_steps=2,
        vocab_size=300,
        precision="32",
        checkpoint_every_n_steps=3,
        heldout_fraction=0.1,
        eval_max_blocks=16,
    )
    return TextAdaptSettings(**{**base, **overrides})


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mlm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mlm")
    metrics = adapt_text_model(
        "fresh:bert-tiny", finance_docs(), general_english_sample(40), tiny(mix_ratio_general=0.2), out, progress=False
    )
    return out, metrics


@pytest.mark.parametrize(
    "base,auto_cls", [("fresh:bert-tiny", AutoModelForMaskedLM), ("fresh:gpt2-tiny", AutoModelForCausalLM)]
)
def test_fresh_runs_write_loadable_models(tmp_path, base, auto_cls, mlm_run):
    out, metrics = (
        mlm_run
        if base == "fresh:bert-tiny"
        else (tmp_path, adapt_text_model(base, finance_docs(), None, tiny(), tmp_path, progress=False))
    )
    assert metrics["objective"] == ("mlm" if "bert" in base else "clm")
    assert metrics["train"]["steps"] == 6
    model = auto_cls.from_pretrained(out / "model")
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    assert AutoModel.from_pretrained(out / "model").config.vocab_size == len(tokenizer)
    ids = tokenizer("Revenue rose 3.5% as EBITDA improved.", return_tensors="pt")["input_ids"]
    assert model(input_ids=ids).logits.shape == (1, ids.shape[1], len(tokenizer))
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["perplexity"] == metrics["perplexity"]
    assert set(saved["perplexity"]) == ({"domain", "general"} if "bert" in base else {"domain"})
    assert (out / "checkpoints" / "last.ckpt").is_file() and (out / "settings.json").is_file()


def test_mixing_is_reported(mlm_run):
    _, metrics = mlm_run
    assert metrics["corpus"]["mix"]["general_share"] == pytest.approx(0.2, abs=1e-3)
    assert metrics["corpus"]["general_sources"] == ["embedded-general-sample"]


def test_resume_continues_the_step_counter_and_repeats_the_uninterrupted_run(tmp_path):
    docs = finance_docs(120)
    first = adapt_text_model(
        "fresh:bert-tiny", docs, None, tiny(max_steps=3, schedule_steps=6), tmp_path / "b", progress=False
    )
    (tmp_path / "a").mkdir()  # the same tokenizer: a second training could number its tokens differently
    for name in ("tokenizer", "prepared.json"):
        (shutil.copytree if name == "tokenizer" else shutil.copy)(tmp_path / "b" / name, tmp_path / "a" / name)
    straight = adapt_text_model("fresh:bert-tiny", docs, None, tiny(), tmp_path / "a", progress=False)
    resumed = adapt_text_model("fresh:bert-tiny", docs, None, tiny(), tmp_path / "b", progress=False)
    assert (first["train"]["steps"], resumed["train"]["resumed_from_step"], resumed["train"]["steps"]) == (3, 3, 6)
    a, b = (load_file(tmp_path / run / "model" / "model.safetensors") for run in ("a", "b"))
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)  # same batches, masks, dropout, optimiser state
    assert resumed["perplexity"]["domain"] == pytest.approx(straight["perplexity"]["domain"], rel=1e-4)
    again = adapt_text_model("fresh:bert-tiny", docs, None, tiny(), tmp_path / "b", progress=False)
    assert again["train"]["steps"] == 6 and again["train"]["seconds"] == 0.0  # already done: nothing to train
    with pytest.raises(VfmError, match="resume with the same base and vocabulary settings"):
        adapt_text_model("fresh:bert-tiny", docs, None, tiny(vocab_size=200), tmp_path / "b", progress=False)


def test_perplexity_falls_on_a_repetitive_corpus(tmp_path):
    metrics = adapt_text_model(
        "fresh:gpt2-tiny", finance_docs(), None, tiny(max_steps=40, warmup_steps=4), tmp_path, progress=False
    )
    domain = metrics["perplexity"]["domain"]
    assert domain["after"] < 0.25 * domain["before"]
    assert metrics["train"]["final_loss"] < math.log(domain["before"])


def test_local_base_gains_domain_tokens(tmp_path, mlm_run):
    out, _ = mlm_run
    words = [
        Document(f"w{i}", "The marlintonic derasolines of the plentarium were recorded. " * 3, "odd") for i in range(60)
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = adapt_text_model(
            str(out / "model"),
            words,
            None,
            tiny(max_steps=2, add_domain_tokens=3, min_token_count=2),
            tmp_path,
            progress=False,
        )
    assert not [w for w in caught if "eval mode" in str(w.message)]  # from_pretrained's eval mode: trained with dropout
    vocab = metrics["vocabulary"]
    assert metrics["objective"] == "mlm" and vocab["size"] == vocab["base_size"] + 3
    assert {a["token"] for a in vocab["added"]} == {"marlintonic", "derasolines", "plentarium"}
    assert vocab["corpus_tokens_after"] < vocab["corpus_tokens_before"]
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model")
    assert "plentarium" in tokenizer.tokenize("the plentarium thing")
    assert AutoModelForMaskedLM.from_pretrained(tmp_path / "model").config.vocab_size == len(tokenizer)


def test_settings_and_inputs_fail_with_one_line_errors(tmp_path):
    with pytest.raises(VfmError, match=r"invalid objective.*TextAdaptSettings.objective"):
        TextAdaptSettings(objective="seq2seq")
    with pytest.raises(VfmError, match="unknown fresh config"):
        adapt_text_model("fresh:bert-huge", finance_docs(20), None, tiny(), tmp_path, progress=False)
    with pytest.raises(VfmError, match="fresh:gpt2-tiny trains as clm"):
        adapt_text_model(
            "fresh:gpt2-tiny", finance_docs(20), None, tiny(objective="mlm"), tmp_path / "x", progress=False
        )
    with pytest.raises(VfmError, match="not a model reference"):  # neither a folder, a package nor org/name
        adapt_text_model(
            str(tmp_path / "no-such-model"), finance_docs(20), None, tiny(), tmp_path / "y", progress=False
        )
    (tmp_path / "empty").mkdir()
    with pytest.raises(VfmError, match="cannot load a tokenizer"):
        adapt_text_model(str(tmp_path / "empty"), finance_docs(20), None, tiny(), tmp_path / "z", progress=False)
    assert warmup_decay(2, 10, shape="linear")(0) == 0.5 and warmup_decay(2, 10, shape="linear")(10) == 0.0


def test_lora_trains_adapters_only_and_saves_a_plain_model(tmp_path):
    """LoRA through peft on a pretrained (here: briefly trained tiny GPT-2) causal LM: a small share of the
    weights trains, perplexity falls, and the merged model reloads with from_pretrained, with no adapter left."""
    base = tmp_path / "base"
    adapt_text_model("fresh:gpt2-tiny", finance_docs(), None, tiny(max_steps=4), base, progress=False)
    words = [Document(f"w{i}", "The marlintonic derasolines of the plentarium. " * 4, "odd") for i in range(60)]
    settings = tiny(max_steps=30, lr=5e-3, lora_rank=4, lora_alpha=8, add_domain_tokens=2, min_token_count=2)
    metrics = adapt_text_model(str(base / "model"), words, None, settings, tmp_path / "lora", progress=False)
    parameters = metrics["train"]["parameters"]
    assert 0 < parameters["trained"] < 0.5 * parameters["total"], parameters
    domain = metrics["perplexity"]["domain"]
    assert domain["after"] < 0.75 * domain["before"]
    weights = load_file(tmp_path / "lora/model/model.safetensors")
    assert not [k for k in weights if "lora" in k or "base_layer" in k]
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "lora/model")
    assert model.get_input_embeddings().weight.shape[0] == metrics["vocabulary"]["size"]
    with pytest.raises(VfmError, match="a fresh: base has none"):
        adapt_text_model("fresh:gpt2-tiny", words, None, tiny(lora_rank=4), tmp_path / "x", progress=False)
