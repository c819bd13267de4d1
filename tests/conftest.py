"""Shared fixtures. Tests never touch the network or the user's cache; tests marked `realdata` read
$VFM_DATA_DIR (default ../shared/data) when it exists and are skipped otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from vfm.platform.registry import discover

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
PLUGINS = sorted(discover().plugins)
"""The installed plugins, which the reliability suite (``tests/reliability/``) runs every case for."""


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VFM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "vfm-cache"))


def run_vfm(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run the real ``vfm`` command in a subprocess and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "vfm.platform.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


TINY_RUN = [
    "--set",
    "preprocessing.image_size=32",
    "--set",
    "data.n_train=40",
    "--set",
    "data.n_val=20",
    "--set",
    "pretrain.max_steps=4",
    "--set",
    "pretrain.batch_size=16",
    "--set",
    "pretrain.warmup_steps=1",
    "--set",
    "finetune.max_epochs=2",
    "--set",
    "finetune.batch_size=16",
    "--no-progress",
]


@pytest.fixture(scope="session")
def retina_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The whole retina pipeline through the real CLI, once per session, on tiny settings:
    pretrain -> finetune (from the pretrained encoder) -> export."""
    root = tmp_path_factory.mktemp("retina-run")
    paths = {"pretrain": root / "pretrain", "finetune": root / "finetune", "bundle": root / "bundle"}
    steps = [
        ("pretrain", "retina", "--out", str(paths["pretrain"]), *TINY_RUN),
        (
            "finetune",
            "retina",
            "--out",
            str(paths["finetune"]),
            "--pretrained",
            str(paths["pretrain"] / "encoder.safetensors"),
            *TINY_RUN,
        ),
        ("export", "retina", "--run", str(paths["finetune"]), "--out", str(paths["bundle"])),
    ]
    for args in steps:
        result = run_vfm(*args)
        assert result.returncode == 0, f"vfm {' '.join(args[:2])} failed:\n{result.stderr[-3000:]}"
        paths[f"{args[0]}_stdout"] = result.stdout
    return paths


def tiny_wordpiece_tokenizer(words: Sequence[str] = ("net", "income", "rose")):
    """A real fast BERT-style tokenizer over [PAD] [UNK] [CLS] [SEP] [MASK] and ``words``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(words)])}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]",
    )  # fmt: skip


def tiny_bert_folder(folder: Path, words: Sequence[str] = ("net", "income", "rose"), hidden: int = 16) -> Path:
    """A real (tiny, random) BERT encoder with a fast WordPiece tokenizer over ``words`` and a model card
    (Apache-2.0), as a Hugging Face folder."""
    from transformers import BertConfig, BertModel

    tokenizer = tiny_wordpiece_tokenizer(words)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny\n")
    return folder


def forge_file(bundle: Path, name: str, text: str) -> None:
    """Replace a bundle file and recompute its line of SHA256SUMS, as someone tampering would."""
    import hashlib

    (bundle / name).write_text(text)
    digest = hashlib.sha256((bundle / name).read_bytes()).hexdigest()
    lines = (bundle / "SHA256SUMS").read_text().splitlines()
    (bundle / "SHA256SUMS").write_text(
        "".join(f"{digest}  {name}\n" if line.endswith(f"  {name}") else f"{line}\n" for line in lines)
    )


@pytest.fixture(scope="session")
def smoke_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Plugin name -> a bundle exported from a run of the plugin's ``smoke_config`` (trained and exported
    once per session; the run is the bundle's sibling ``finetune/``). For ``tests/reliability/``."""
    registry = discover()
    root = tmp_path_factory.mktemp("smoke-bundles")
    bundles = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VFM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "vfm-cache"))
        for name in PLUGINS:
            pipeline = registry.get(name).component("pipeline")(registry.get(name))
            bundles[name] = pipeline.build_demo_bundle(root / name, config=pipeline.smoke_config(), progress=False)
    return bundles


@pytest.fixture(scope="session")
def app_url(smoke_bundles: dict[str, Path]) -> Iterator[str]:
    """The demo app with every smoke bundle, served in this process on a free loopback port."""
    from vfm.serve.app import build_app, free_port, launch
    from vfm.serve.runtime import open_predictor

    predictors = [open_predictor(path) for path in smoke_bundles.values()]
    app = build_app(predictors)
    port = free_port()
    launch(app, predictors, port=port, block=False)
    yield f"http://127.0.0.1:{port}/"
    app.close()
