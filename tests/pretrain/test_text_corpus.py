"""Text corpora: readers, dedupe, evaluation-set exclusion, held-out split, mixing by tokens, packing."""

import json
import os
import zipfile
from pathlib import Path

import pytest
import torch
from text_general_sample import SOURCE, general_english_sample

from vfm.platform.errors import VfmError
from vfm.plugins.finance.data.corpus import finance_document_id, read_finance, read_phrasebank
from vfm.pretrain.text_blocks import mix_by_tokens, pack_blocks, split_heldout
from vfm.pretrain.text_corpus import Corpus, Document, build_corpus, normalise, read_jsonl, read_text

DATA = Path(os.environ.get("VFM_DATA_DIR", Path(__file__).resolve().parents[3] / "shared" / "data"))


def read_any(path: str | Path) -> list[Document]:
    """Dispatch on the path: a ``.zip`` is PhraseBank, ``.jsonl`` JSON Lines, ``.json`` a finance
    QA file, anything else text files."""
    suffix = Path(path).suffix.lower()
    if suffix == ".zip":
        return read_phrasebank(path)
    if suffix == ".jsonl":
        return read_jsonl(path)
    if suffix == ".json":
        return read_finance(path)
    return read_text(path)


def load_corpus(
    paths: list[Path], exclude_ids: tuple[str, ...] | list[str] = (), exclude_files: list[Path] | tuple[Path, ...] = ()
) -> Corpus:
    """Every path read with :func:`read_any`, through :func:`build_corpus`, excluding the ids and
    every document of ``exclude_files`` (read the same way)."""
    documents = [doc for path in paths for doc in read_any(path)]
    excluded = [doc for path in exclude_files for doc in read_any(path)]
    return build_corpus(documents, exclude_ids, excluded, id_key=finance_document_id)


def finqa_record(doc: str, n: int, sentence: str) -> dict:
    return {
        "id": f"{doc}-{n}",
        "pre_text": [sentence, "the company reports in millions ."],
        "table": [["", "2019", "2018"], ["revenue", "$ 1,452", "$ 1,300"]],
        "post_text": ["end of note ."],
        "qa": {"question": "what is the change?", "program": "subtract(1452, 1300)", "exe_ans": 152.0},
    }


def test_readers(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("First paragraph.\n\nSecond paragraph.\n")
    (tmp_path / "docs" / "b.txt").write_text("Another file.")
    assert [d.id for d in read_text(tmp_path / "docs")] == ["a.txt", "b.txt"]
    paragraphs = [d.text for d in read_text(tmp_path / "docs", unit="paragraph")]
    assert paragraphs == ["First paragraph.", "Second paragraph.", "Another file."]
    (tmp_path / "c.jsonl").write_text('{"id": "x", "text": "hello there"}\n\n{"text": "second"}\n')
    assert [(d.id, d.text) for d in read_jsonl(tmp_path / "c.jsonl")] == [("x", "hello there"), ("c.jsonl:3", "second")]
    (tmp_path / "bad.jsonl").write_text('{"body": "no text field"}\n')
    with pytest.raises(VfmError, match="no string field 'text'"):
        read_jsonl(tmp_path / "bad.jsonl")
    with pytest.raises(VfmError, match="no text files"):
        read_text(tmp_path / "missing")


def test_phrasebank_reads_sentences_inside_the_zip_without_labels(tmp_path):
    path = tmp_path / "FinancialPhraseBank-v1.0.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(
            "FinancialPhraseBank-v1.0/Sentences_50Agree.txt",
            "Profit rose to EUR 5 mn .@positive\r\nSales were flat .@neutral\r\n".encode("latin-1"),
        )
        archive.writestr("__MACOSX/FinancialPhraseBank-v1.0/._Sentences_50Agree.txt", b"\x00junk")
    docs = read_phrasebank(path)
    assert [d.text for d in docs] == ["Profit rose to EUR 5 mn .", "Sales were flat ."]
    assert {d.source for d in docs} == {"phrasebank"}


def test_finance_contexts_dedupe_and_exclusion_by_id_and_content(tmp_path):
    shared = "the board declared a quarterly dividend of $ 0.13 per share payable to shareholders of record ."
    train = [
        finqa_record("AAA/2019/page_1.pdf", 1, "aaa makes widgets in many countries around the world ."),
        finqa_record("AAA/2019/page_1.pdf", 2, "aaa makes widgets in many countries around the world ."),
        finqa_record("BBB/2018/page_7.pdf", 1, shared),
        finqa_record("CCC/2017/page_3.pdf", 1, "ccc sells services to hospitals and clinics in europe ."),
    ]
    dev = [finqa_record("DDD/2016/page_9.pdf", 4, shared)]
    (tmp_path / "train.json").write_text(json.dumps(train))
    (tmp_path / "dev.json").write_text(json.dumps(dev))

    corpus = load_corpus([tmp_path / "train.json"], exclude_files=[tmp_path / "dev.json"])
    assert [d.id for d in corpus.documents] == ["AAA/2019/page_1.pdf", "CCC/2017/page_3.pdf"]
    assert corpus.documents[0].record_ids == ("AAA/2019/page_1.pdf-1", "AAA/2019/page_1.pdf-2")
    assert "the revenue of 2019 is $ 1,452 ;" in corpus.documents[0].text  # table rows as sentences
    assert corpus.report["excluded_by_content"] == 1  # BBB shares a long sentence with the dev document
    assert corpus.report["read"] == 3 and corpus.report["kept"] == 2
    by_id = load_corpus([tmp_path / "train.json"], exclude_ids=["Single_CCC/2017/page_3.pdf-5"])
    assert [d.id for d in by_id.documents] == ["AAA/2019/page_1.pdf", "BBB/2018/page_7.pdf"]
    assert by_id.report["excluded_by_id"] == 1


def test_an_excluded_document_never_reaches_the_corpus_or_the_blocks():
    secret = "the secret merger terms were approved by the board of directors in closed session today"
    docs = [Document(f"d{i}", f"public note number {i} about quarterly revenue and costs", "t") for i in range(20)]
    docs += [Document("copy-1", secret.upper() + " !", "t"), Document("copy-2", "intro line.\n" + secret + ".", "u")]
    corpus = build_corpus(docs, exclude_documents=[Document("eval", secret, "dev")])
    assert all(normalise(secret) not in normalise(d.text) for d in corpus.documents)
    assert corpus.report["excluded_by_content"] == 2
    dups = build_corpus(docs + [Document("again", "Public note number 3, about quarterly revenue and costs.", "v")])
    assert dups.report["duplicates"] == 1
    assert finance_document_id("phrasebank-12") == "phrasebank-12"  # only filing pages lose their question number


def test_heldout_split_is_by_document_and_stable():
    docs = [Document(f"d{i}", f"text {i}", "s") for i in range(400)]
    train, held = split_heldout(docs, 0.1, seed=3)
    assert {d.id for d in train}.isdisjoint(d.id for d in held) and len(train) + len(held) == 400
    assert 20 < len(held) < 65
    _, held_more = split_heldout(docs + [Document("new", "new text", "s")], 0.1, seed=3)
    assert {d.id for d in held} <= {d.id for d in held_more}


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.6])
def test_mixing_hits_the_general_share_of_tokens(ratio):
    domain = [[10 + i % 5] * (20 + i) for i in range(30)]  # ids 10-14
    general = [[20 + i % 5] * 15 for i in range(30)]  # ids 20-24: too few for 0.6, so they repeat
    docs, stats = mix_by_tokens(domain, general, ratio, seed=1)
    blocks = pack_blocks(docs, 16, separator_id=1)  # [N, 16]
    tokens = blocks[blocks != 1]
    share = float((tokens >= 20).float().mean())
    assert stats["domain_tokens"] == sum(map(len, domain))
    assert stats["general_share"] == pytest.approx(ratio, abs=1e-3)
    assert share == pytest.approx(ratio, abs=0.03)
    assert (stats["general_passes"] > 1) == (ratio == 0.6)
    with pytest.raises(VfmError, match="general corpus is empty"):
        mix_by_tokens(domain, [], 0.3)


def test_packing_separates_documents_and_wraps_encoder_blocks():
    blocks = pack_blocks([[5, 6, 7], [8, 9]], 4, separator_id=3)
    assert blocks.tolist() == [[5, 6, 7, 3]]  # the tail [8, 9, 3] does not fill a block
    wrapped = pack_blocks([[5, 6, 7], [8, 9]], 4, separator_id=3, wrap=(2, 3))
    assert wrapped.tolist() == [[2, 5, 6, 3], [2, 7, 3, 3], [2, 8, 9, 3]]
    assert pack_blocks([], 8, 3).shape == (0, 8) and pack_blocks([[1]], 8, 3).dtype == torch.long


def test_general_sample_is_deterministic_and_flagged():
    a, b = general_english_sample(5, seed=2), general_english_sample(5, seed=2)
    assert a == b and {d.source for d in a} == {SOURCE}
    assert a != general_english_sample(5, seed=3)


@pytest.mark.realdata
def test_real_finance_corpus_excludes_finqa_dev_documents():
    paths = [DATA / "finqa" / "dev_sample200.original.json", DATA / "convfinqa" / "convfinqa_dev.pot_format.json"]
    if not all(p.exists() for p in paths):
        pytest.skip("shared data not available")
    dev_ids = {finance_document_id(r) for d in load_corpus(paths[:1]).documents for r in d.record_ids}
    corpus = load_corpus(paths[1:], exclude_files=paths[:1])
    assert corpus.report["excluded_by_content"] >= 74  # ConvFinQA dev shares 74 filing pages with this sample
    assert dev_ids.isdisjoint(d.id for d in corpus.documents)
