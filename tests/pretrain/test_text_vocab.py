"""Domain vocabulary: tokenizer training, finding badly split domain terms, extending embeddings."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from vfm.platform.errors import VfmError
from vfm.pretrain.text_models import fresh_model
from vfm.pretrain.text_vocab import add_domain_tokens, find_domain_tokens, train_tokenizer

FINANCE = [
    "Adjusted EBITDA rose 12.5% to $1.2 million while amortization of intangibles fell.",
    "The shares trade as NYSE: XYZ and amortization expense was $1.2 million in 2019.",
    "Revenue grew 12.5% and EBITDA margins widened, the company said.",
]
GENERAL = ["the cat sat on the mat and the dog ran in the park with a ball"] * 40
TEXTS = FINANCE * 6 + GENERAL
BASE = GENERAL + ["abcdefghijklmnopqrstuvwxyz zabcdefghijklmnopqrstuvwxy 0123456789 9012345678 $ % . , :"]
"""What a general base tokenizer learns from: every character, no finance words."""


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_trained_tokenizers_have_the_tokens_their_models_need():
    bert = train_tokenizer(TEXTS, "wordpiece", 200)
    assert (bert.cls_token, bert.sep_token, bert.mask_token, bert.pad_token) == ("[CLS]", "[SEP]", "[MASK]", "[PAD]")
    assert bert("the cat")["input_ids"][0] == bert.cls_token_id
    gpt2 = train_tokenizer(TEXTS, "bpe", 300)
    assert gpt2.eos_token == "<|endoftext|>" and gpt2.decode(gpt2(FINANCE[0])["input_ids"]) == FINANCE[0]
    with pytest.raises(VfmError, match="unknown tokenizer kind"):
        train_tokenizer(TEXTS, "unigram", 100)


def test_domain_tokens_are_ranked_by_count_times_pieces():
    tokenizer = train_tokenizer(BASE, "wordpiece", 120)
    found = find_domain_tokens(tokenizer, TEXTS, top_k=50, min_count=3)
    texts = [t.text for t in found]
    assert {"ebitda", "amortization", "12.5%", "$1.2 million", "nyse: xyz"} <= set(texts)  # lower-cased, as BERT
    assert all(t.score == t.count * (len(t.pieces) - 1) for t in found)
    assert [t.score for t in found] == sorted((t.score for t in found), reverse=True)
    assert "the" not in texts  # a single piece saves nothing


def test_new_rows_are_the_mean_of_their_pieces_and_text_gets_shorter():
    tokenizer = train_tokenizer(BASE, "wordpiece", 120)
    model = fresh_model("fresh:bert-tiny", tokenizer)
    torch.nn.init.normal_(model.get_output_embeddings().bias)
    old = model.get_input_embeddings().weight.detach().clone()
    old_bias = model.get_output_embeddings().bias.detach().clone()
    before = [len(tokenizer(t)["input_ids"]) for t in FINANCE]
    added = add_domain_tokens(model, tokenizer, find_domain_tokens(tokenizer, TEXTS, top_k=5, min_count=3))
    assert len(added) == 5 and model.get_input_embeddings().weight.shape[0] == len(tokenizer) == 125
    weight = model.get_input_embeddings().weight
    for token in added:
        assert torch.allclose(weight[token["id"]], old[token["piece_ids"]].mean(dim=0))
        bias = float(model.get_output_embeddings().bias[token["id"]].detach())
        assert bias == pytest.approx(float(old_bias[token["piece_ids"]].mean()))
        assert tokenizer.tokenize(token["token"]) == [token["token"]]
    assert torch.equal(weight[: len(old)], old)  # old rows untouched
    after = [len(tokenizer(t)["input_ids"]) for t in FINANCE]
    assert all(a <= b for a, b in zip(after, before, strict=True)) and sum(after) < sum(before)


def test_untied_byte_level_model_extends_both_embeddings():
    tokenizer = train_tokenizer(BASE, "bpe", 280)
    model = GPT2LMHeadModel(
        GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=64, tie_word_embeddings=False)
    )
    old_in = model.get_input_embeddings().weight.detach().clone()
    old_out = model.get_output_embeddings().weight.detach().clone()
    n_before = len(tokenizer(FINANCE[1])["input_ids"])
    added = add_domain_tokens(model, tokenizer, find_domain_tokens(tokenizer, TEXTS, top_k=4, min_count=3))
    assert added and all(a["pieces"][0].startswith("Ġ") for a in added)  # mid-text form, with its space
    for token in added:
        assert torch.allclose(model.get_input_embeddings().weight[token["id"]], old_in[token["piece_ids"]].mean(0))
        assert torch.allclose(model.get_output_embeddings().weight[token["id"]], old_out[token["piece_ids"]].mean(0))
    ids = tokenizer(FINANCE[1])["input_ids"]
    assert len(ids) < n_before and tokenizer.decode(ids) == FINANCE[1]
