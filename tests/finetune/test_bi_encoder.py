"""Contrastive fine-tuning of a sentence encoder on a real tiny BERT: it learns to rank, resumes exactly
after an interruption, reloads with AutoModel, and its ONNX export embeds like torch at any length."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from safetensors.torch import load_file

from tests.conftest import tiny_bert_folder
from vfm.finetune.bi_encoder import (
    BiEncoderModule,
    BiEncoderSettings,
    ContrastiveGroup,
    TorchSentenceEncoder,
    contrastive_loss,
    export_sentence_encoder,
    load_sentence_encoder,
    train_bi_encoder,
)
from vfm.platform.errors import VfmError
from vfm.platform.training.trainer import fit
from vfm.serve.sentence_encoder import OnnxSentenceEncoder, load_tokenizer

SYNONYMS = {
    "revenue": "turnover",
    "income": "earnings",
    "cash": "liquidity",
    "debt": "borrowings",
    "assets": "holdings",
    "equity": "capital",
    "expenses": "costs",
    "dividends": "payouts",
    "margin": "spread",
    "capex": "investment",
}
METRICS = list(SYNONYMS)
WORDS = ["what", "was", "the", "in", "rose", "fell", "report", *METRICS, *SYNONYMS.values()]


def _groups() -> list[ContrastiveGroup]:
    """'what was the <synonym of a metric>' against sentences about six metrics; the one about it
    answers. No word is shared, so a random encoder ranks at chance."""
    groups = []
    for i, metric in enumerate(METRICS):
        others = [m for m in METRICS if m != metric][i % 3 : i % 3 + 5]
        candidates = [f"the {m} {'rose' if j % 2 else 'fell'} in the report" for j, m in enumerate([metric, *others])]
        order = np.random.default_rng(i).permutation(len(candidates))
        groups.append(
            ContrastiveGroup(
                f"what was the {SYNONYMS[metric]}", tuple(candidates[k] for k in order), (int(np.argmin(order)),)
            )
        )
    return groups


def _top1(folder, groups) -> float:
    encoder = TorchSentenceEncoder(folder, max_length=32)
    hits = [int(np.argmax(encoder.embed(g.candidates) @ encoder.embed([g.query])[0])) in g.positives for g in groups]
    return float(np.mean(hits))


def _settings(**changes) -> BiEncoderSettings:
    values = dict(max_steps=60, batch_size=4, negatives=3, lr=2e-3, warmup_steps=5, max_length=32, precision="32")
    return BiEncoderSettings(**{**values, **changes, "accelerator": "cpu", "devices": 1})


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    torch.manual_seed(0)
    return tiny_bert_folder(tmp_path_factory.mktemp("bert") / "base", WORDS, hidden=32)


def test_the_loss_prefers_positives():
    queries = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=-1)
    candidates = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7071, 0.7071]])
    right = torch.tensor([[True, False, False], [False, True, False]])
    assert contrastive_loss(queries, candidates, right, 0.1) < contrastive_loss(queries, candidates, ~right, 0.1)


def test_fine_tuning_teaches_the_encoder_to_rank(base, tmp_path):
    groups = _groups()
    before = _top1(base, groups)
    result = train_bi_encoder(base, groups, _settings(), tmp_path / "run", progress=False)
    after = _top1(result["model"], groups)
    assert result["steps"] == 60 and before <= 0.5 and after >= 0.9, (before, after)
    from transformers import AutoModel  # the tuned encoder is an ordinary Hugging Face folder

    assert AutoModel.from_pretrained(result["model"]).config.hidden_size == 32
    again = train_bi_encoder(base, groups, _settings(), tmp_path / "run", progress=False)
    assert again["reused"], "a finished encoder is kept"
    with pytest.raises(VfmError, match="another base, data or settings"):
        train_bi_encoder(base, groups, _settings(lr=1e-3), tmp_path / "run", progress=False)


class _Crash(Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == 7:
            raise RuntimeError("killed")  # mid-run, after a checkpoint every step


def test_an_interrupted_run_resumes_to_the_same_weights(base, tmp_path):
    groups, settings = _groups(), _settings(max_steps=12, checkpoint_every_n_steps=1)
    straight = train_bi_encoder(base, groups, settings, tmp_path / "straight", progress=False)
    torch.manual_seed(0)
    module = BiEncoderModule(
        load_sentence_encoder(base).train(), groups, load_tokenizer(base / "tokenizer.json", 32), settings
    )
    with pytest.raises(RuntimeError, match="killed"):
        fit(module, settings, tmp_path / "resumed", callbacks=[_Crash()], progress=False)
    assert (tmp_path / "resumed/checkpoints/last.ckpt").is_file() and not (tmp_path / "resumed/model").exists()
    resumed = train_bi_encoder(base, groups, settings, tmp_path / "resumed", progress=False)
    assert resumed["steps"] == 12
    a, b = (load_file(f"{r['model']}/model.safetensors") for r in (straight, resumed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_onnx_export_embeds_like_torch_at_any_length(base, tmp_path):
    texts = ["revenue", "what was the cash in the report", "the debt fell " * 5, "margin capex unknownword"]
    report = export_sentence_encoder(base, tmp_path / "encoder.onnx", texts, max_length=32)
    assert report["passed"] and report["outputs"]["sentence_embedding"]["shape"] == [4, 32]
    onnx = OnnxSentenceEncoder(tmp_path / "encoder.onnx", base / "tokenizer.json", max_length=32)
    torch_side = TorchSentenceEncoder(base, max_length=32)
    for batch in (texts, texts[:1], ["the " * 40]):  # other batch sizes and a text past max_length
        np.testing.assert_allclose(onnx.embed(batch), torch_side.embed(batch), atol=1e-5)
    assert np.allclose(np.linalg.norm(onnx.embed(texts), axis=1), 1.0, atol=1e-5)


def test_bad_settings_and_inputs_get_one_line(base, tmp_path):
    with pytest.raises(VfmError, match="temperature"):
        _settings(temperature=0)
    with pytest.raises(VfmError, match="at least 2"):
        train_bi_encoder(base, _groups()[:1], _settings(), tmp_path / "one", progress=False)
    with pytest.raises(VfmError, match="cannot load the sentence encoder"):
        load_sentence_encoder(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(VfmError, match="tokenizer"):
        load_tokenizer(tmp_path / "tokenizer.json", 32)
