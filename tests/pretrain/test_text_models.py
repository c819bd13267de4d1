"""Which objective a checkpoint adapts with, and pseudo-perplexity on a model whose answer is known."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, GPT2Config, LlamaConfig, PreTrainedTokenizerFast

from tests.conftest import tiny_wordpiece_tokenizer
from vfm.pretrain.text_models import pseudo_perplexity, resolve_objective


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    return tiny_wordpiece_tokenizer()


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (BertConfig(architectures=["BertModel"]), "mlm"),  # a sentence encoder (all-MiniLM-L6-v2): no LM head
        (BertConfig(architectures=["BertForMaskedLM"]), "mlm"),
        (BertConfig(architectures=["BertLMHeadModel"], is_decoder=True), "clm"),
        (GPT2Config(architectures=["GPT2LMHeadModel"]), "clm"),
        (LlamaConfig(architectures=["LlamaForCausalLM"]), "clm"),  # SmolLM2
    ],
)
def test_auto_adapts_an_encoder_as_a_masked_lm_and_a_decoder_as_a_causal_lm(config, expected, tokenizer):
    assert resolve_objective(config, tokenizer) == expected


def test_pseudo_perplexity_of_a_uniform_model_is_the_vocabulary_size(tokenizer):
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    model = BertForMaskedLM(config)
    with torch.no_grad():
        model.cls.predictions.decoder.weight.zero_()  # tied to the embeddings: every logit becomes the bias
        model.cls.predictions.bias.zero_()
    model.train()
    blocks = torch.tensor([[2, 5, 6, 7, 3], [2, 7, 7, 5, 3]])  # [CLS] ... [SEP]: 3 tokens scored per block
    result = pseudo_perplexity(model, blocks, tokenizer, batch_size=2)
    assert result["tokens"] == 6 and result["blocks"] == 2
    assert result["pseudo_perplexity"] == pytest.approx(len(tokenizer), rel=1e-4)
    assert model.training  # put back as it was
