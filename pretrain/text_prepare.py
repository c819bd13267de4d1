"""The model and tokenizer a text adaptation run starts from, and how its outputs are saved.

A first run builds them (a fresh model on a tokenizer trained on the corpus, or a base model
whose tokenizer gains the top-K domain tokens) and saves the tokenizer to ``out_dir/tokenizer``
with ``prepared.json``. A later run in the same folder with the same base and vocabulary
settings reuses that tokenizer rather than building another: ``tokenizers`` trainers break ties
in hash order, so two trainings on the same text can number (and even choose) tokens
differently, and a checkpoint only fits the tokenizer it was trained with.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_json
from vfm.pretrain.text_blocks import tokenize
from vfm.pretrain.text_models import FRESH_OBJECTIVE, FRESH_TOKENIZER, fresh_family, fresh_model, load_pretrained
from vfm.pretrain.text_vocab import add_domain_tokens, find_domain_tokens, train_tokenizer


def prepare_model(base: str, settings, train_texts: list[str], out_dir: Path, resume: bool = False):
    """``(model, tokenizer, objective, vocabulary_report)`` for ``base`` (see module docstring).

    The report holds ``size`` (tokens), ``trained_on_corpus`` (fresh bases), ``added`` (domain
    tokens with counts and the pieces they replace) and ``corpus_tokens_before``/``_after``
    (the training text's length in tokens before and after the extension).

    Raises:
        VfmError: ``resume`` (a checkpoint is waiting) but the folder was prepared for another
            base or other vocabulary settings.
    """
    from transformers import AutoTokenizer

    tok_dir, prepared = out_dir / "tokenizer", out_dir / "prepared.json"
    fresh = base.startswith("fresh:")
    key = {
        "base": base,
        "objective": settings.objective,
        "vocab_size": settings.vocab_size if fresh else None,
        "add_domain_tokens": 0 if fresh else settings.add_domain_tokens,
        "min_token_count": settings.min_token_count,
    }
    if _rank() > 0:  # other processes of a distributed run use what rank 0 prepares
        _wait_for(prepared, key, tok_dir)
    info = json.loads(prepared.read_text()) if prepared.is_file() else {}
    if resume and not (tok_dir.is_dir() and info.get("key") == key):
        raise VfmError(
            f"the checkpoint here was trained from {info.get('key')}, not {key}",
            where=str(out_dir),
            fix="resume with the same base and vocabulary settings, or use a new output folder",
        )
    if tok_dir.is_dir() and info.get("key") == key:
        tokenizer = AutoTokenizer.from_pretrained(tok_dir, trust_remote_code=False, local_files_only=True)
        if fresh:
            model = fresh_model(base, tokenizer, settings.seed)
        else:
            model = load_pretrained(base, info["objective"])[0]
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        return model, tokenizer, info["objective"], info["vocabulary"]

    if fresh:
        family = fresh_family(base)
        objective = FRESH_OBJECTIVE[family]
        if settings.objective not in ("auto", objective):
            raise VfmError(
                f"{base} trains as {objective}, not {settings.objective}",
                where="objective",
                fix=f'use "auto" or "{objective}"',
            )
        tokenizer = train_tokenizer(train_texts, FRESH_TOKENIZER[family], settings.vocab_size)
        model = fresh_model(base, tokenizer, settings.seed)
        vocab = {"size": len(tokenizer), "trained_on_corpus": True, "added": []}
    else:
        model, tokenizer, objective = load_pretrained(base, settings.objective)
        vocab = {"size": len(tokenizer), "base_size": len(tokenizer), "trained_on_corpus": False, "added": []}
        if settings.add_domain_tokens > 0:
            before = sum(map(len, tokenize(tokenizer, train_texts)))
            found = find_domain_tokens(tokenizer, train_texts, settings.add_domain_tokens, settings.min_token_count)
            added = add_domain_tokens(model, tokenizer, found)
            after = sum(map(len, tokenize(tokenizer, train_texts)))
            vocab.update(
                size=len(tokenizer),
                added=[{k: a[k] for k in ("token", "count", "pieces")} for a in added],
                corpus_tokens_before=before,
                corpus_tokens_after=after,
            )
    save_dir_atomic(lambda path: tokenizer.save_pretrained(path), tok_dir)
    atomic_write_json(prepared, {"key": key, "objective": objective, "vocabulary": vocab})
    return model, tokenizer, objective, vocab


def _rank() -> int:
    """This process's global rank as the launchers (torchrun, SLURM, Lightning) set it."""
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def _wait_for(prepared: Path, key: dict, tok_dir: Path, timeout_s: float = 3600.0) -> None:
    """Wait until rank 0 has written ``prepared.json`` for ``key`` (and its tokenizer)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if json.loads(prepared.read_text()).get("key") == key and tok_dir.is_dir():
                return
        except (OSError, json.JSONDecodeError):
            pass
        time.sleep(1.0)
    raise VfmError(
        "rank 0 did not prepare the tokenizer in time",
        where=str(prepared),
        fix="check rank 0's log; all ranks need the same base, settings and output folder",
    )


def save_dir_atomic(write, path: Path) -> Path:
    """Call ``write(tmp)`` on a fresh folder beside ``path``, then swap it in for ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        write(tmp)
        if path.exists():
            path.rename(old)
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return path


def save_pretrained_atomic(model, tokenizer, path: Path, *, base: str | None = None) -> Path:
    """``save_pretrained`` the model and its tokenizer into ``path``, loadable with ``AutoModel*``
    and ``AutoTokenizer.from_pretrained(path)``; with ``base`` (the model it was adapted from), also
    the folder's record (``vfm_model.json``: the base's source, licence and hashes, and this folder's
    file hashes, for ``vfm models verify`` and the model cards of what is trained on it)."""
    from vfm.platform.fileio import atomic_write_json
    from vfm.platform.models.sources import base_model_entry
    from vfm.platform.models.store import RECORD_FILE, make_record

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if base is not None:
            entry = base_model_entry(base)
            record = make_record(
                tmp,
                name=f"{path.parent.name}/{path.name}",
                source={"kind": "adapted", "base": entry},
                upstream=entry.get("upstream"),
                licence=entry["licence"],
            )
            atomic_write_json(tmp / RECORD_FILE, record)

    return save_dir_atomic(write, path)
