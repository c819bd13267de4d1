"""The program generator: input features, targets, grammar, and a model that can overfit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vfm.platform.errors import VfmError
from vfm.plugins.finance.data.synthetic import generate
from vfm.plugins.finance.generation.decode import greedy_decode
from vfm.plugins.finance.generation.features import (
    OUTPUT_VOCAB,
    VOCAB_INDEX,
    Example,
    InputEncoder,
    ProgramGrammar,
    make_example,
    number_argument,
    options_to_tokens,
    program_targets,
    split_words,
)
from vfm.plugins.finance.generation.generator import (
    GeneratorConfig,
    TorchBackend,
    build_generator,
    collate,
    load_generator,
    save_generator,
)
from vfm.plugins.finance.generation.generator_training import record_texts, train_word_tokenizer, training_units
from vfm.plugins.finance.language.program import parse_program, program_tokens

TINY = {"d_model": 32, "n_layers": 1, "n_heads": 2, "d_ff": 64, "max_len": 160, "dropout": 0.0}


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared CPU, more threads make small models slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def records():
    return generate(4, seed=11)


@pytest.fixture(scope="module")
def inputs(records):
    return InputEncoder(train_word_tokenizer(record_texts(records), 2000, 1), max_len=160)


def _example(record):
    return make_example(record, training_units(record, list(record.evidence()), 3))


def test_split_words_keeps_numbers_whole():
    assert split_words("Revenue was $1,452.5m in 2018-2019 (5.2%).") == [
        "revenue",
        "was",
        "$",
        "1,452.5",
        "m",
        "in",
        "2018",
        "-",
        "2019",
        "(",
        "5.2%",
        ")",
        ".",
    ]


@pytest.mark.parametrize(
    ("text", "index", "argument"),
    [
        ("$ 1,452 ;", 1, "1452"),
        ("up 5.2 % in", 1, "5.2%"),
        ("-1234 ( 1234 )", 2, "1234"),
        ("a loss of ( 9,819 ) in", 4, "-9819"),
    ],
)
def test_number_arguments_are_written_as_finqa_programs_write_them(text, index, argument):
    assert number_argument(split_words(text), index) == argument


def test_input_marks_numbers_rows_and_matches(inputs, records):
    record = records[0]
    encoded = inputs.encode(_example(record))
    assert len(encoded) <= 160 and encoded.units
    assert encoded.rows and all(name in {row[0] for row in record.table} for name in encoded.rows.values())
    assert set(encoded.numbers).isdisjoint(encoded.rows)
    ids, mask, types = encoded.padded(160, inputs.pad_id)
    assert ids.shape == mask.shape == types.shape == (1, 160) and mask.sum() == len(encoded)


def test_targets_spell_the_gold_program(inputs, records):
    for record in records:
        encoded = inputs.encode(_example(record))
        targets = program_targets(record.program, encoded)
        assert targets is not None, record.program
        gold = [
            int(v) if v >= 0 else len(OUTPUT_VOCAB) + int(np.flatnonzero(p)[0])
            for v, p in zip(targets.vocab_targets, targets.pointer_targets, strict=True)
        ]
        assert options_to_tokens(gold, encoded) == program_tokens(parse_program(record.program))


def test_unreachable_arguments_give_no_targets(inputs, records):
    encoded = inputs.encode(_example(records[0]))
    assert program_targets("add(123456789, 2)", encoded) is None


def test_grammar_allows_only_well_formed_programs():
    grammar = ProgramGrammar(has_numbers=True, has_rows=False)
    vocab, pointer = grammar.allowed()
    assert vocab[VOCAB_INDEX["add("]] and not vocab[VOCAB_INDEX["table_sum("]] and not vocab[VOCAB_INDEX["EOF"]]
    grammar.advance(VOCAB_INDEX["greater("])
    vocab, pointer = grammar.allowed()
    assert not vocab[VOCAB_INDEX["#0"]] and pointer == 1
    with pytest.raises(VfmError, match="cannot come after"):
        grammar.advance(VOCAB_INDEX[")"])
    for option in (len(OUTPUT_VOCAB) + 3, VOCAB_INDEX["const_100"], VOCAB_INDEX[")"]):
        grammar.advance(option)
    vocab, _ = grammar.allowed()
    assert vocab.tolist() == [word == "EOF" for word in OUTPUT_VOCAB]


def test_the_model_overfits_a_handful_of_records(inputs, records):
    torch.manual_seed(0)
    model = build_generator(GeneratorConfig(vocab_size=inputs.tokenizer.get_vocab_size(), **TINY))
    examples = [(e, program_targets(r.program, e)) for r in records for e in [inputs.encode(_example(r))]]
    batch = collate(examples)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(50):
        loss = model.forward_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 < losses[0]
    backend = TorchBackend(model)
    for (encoded, _), record in zip(examples, records, strict=True):
        decoded = greedy_decode(backend, encoded, length=160, pad_id=inputs.pad_id)
        assert list(decoded.tokens) == program_tokens(parse_program(record.program))
        assert 0.5 < decoded.confidence <= 1.0


def test_save_and_load_give_the_same_model(inputs, tmp_path):
    model = build_generator(GeneratorConfig(vocab_size=inputs.tokenizer.get_vocab_size(), **TINY))
    save_generator(model, tmp_path)
    loaded = load_generator(tmp_path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])


def test_config_errors_name_the_field():
    with pytest.raises(VfmError, match="n_heads"):
        GeneratorConfig(d_model=30, n_heads=4)
    with pytest.raises(VfmError, match="no generator_config|no generator.safetensors"):
        load_generator("/nonexistent/folder")


def test_a_hugging_face_encoder_plugs_in(tmp_path, records):
    """A local HF folder (here a tiny random BERT with its tokenizer.json) replaces the scratch encoder."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertModel

    words = sorted({w for text in record_texts(records) for w in split_words(text)})
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *words])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    BertModel(
        BertConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=160,
        )
    ).save_pretrained(tmp_path / "hf")
    inputs = InputEncoder(Tokenizer.from_file(str(tmp_path / "tokenizer.json")), max_len=160)
    model = build_generator(
        GeneratorConfig(vocab_size=len(vocab), encoder=str(tmp_path / "hf"), d_model=48, n_heads=2, max_len=160)
    )
    examples = [(e, program_targets(r.program, e)) for r in records[:2] for e in [inputs.encode(_example(r))]]
    assert torch.isfinite(model.forward_loss(collate(examples)))
    save_generator(model, tmp_path / "saved")
    loaded = load_generator(tmp_path / "saved")
    memory, _ = loaded.forward_encoder(*(torch.from_numpy(a) for a in examples[0][0].padded(160, inputs.pad_id)))
    assert memory.shape == (1, 160, 48)


def test_a_folder_without_config_is_refused(tmp_path):
    with pytest.raises(VfmError, match="config.json"):
        build_generator(GeneratorConfig(encoder=str(tmp_path)))


def test_inputs_that_do_not_fit_are_cut(inputs, records):
    long = Example("what ?", tuple((f"text_{i}", "word " * 100) for i in range(5)))
    encoded = inputs.encode(long)
    assert len(encoded) <= 160 and len(encoded.units) < 5
