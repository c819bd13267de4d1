"""The finance pipeline: domain text adaptation -> program generator -> evaluation -> bundle.

Each method is one CLI verb (``vfm pretrain|finetune|evaluate|export finance``). Config sections:

- ``data``: ``source`` is ``synthetic`` (the embedded statement generator) or a folder laid
  out as ``$VFM_DATA_DIR`` (``finqa/``, ``tatqa/``, ``convfinqa/``, optionally ``phrasebank/``),
  whose held-out sets (FinQA dev, the TAT-QA held-out contexts) are never trained on.
- ``pretrain``: ``base`` (a Hugging Face id, a local folder or ``fresh:<name>``) plus
  :class:`vfm.pretrain.text_adaptation.TextAdaptSettings` fields: continued pretraining of
  the encoder on the domain text (the training documents, or synthetic statements).
- ``finetune``: ``pretrained`` (a Hugging Face model folder with ``tokenizer.json``, e.g. the
  ``model/`` folder ``vfm pretrain finance`` writes; ``null`` trains the encoder from scratch),
  ``dense_retriever`` (a model reference, e.g. ``all-minilm-l6-v2``: the sentence encoder the
  retriever fine-tunes and fuses; ``null``: lexical retrieval; a packaged model that is not
  installed is skipped with a warning) plus :class:`vfm.plugins.finance.generation.generator_training.TrainingSettings` fields.
- ``evaluate``: ``beam_size`` (null: the model's; 1: greedy), ``limit`` (score the first N
  questions), ``rerank`` (choose among beams with the run's re-ranker) and ``lookup`` (answer from
  table cells and sentences when the run has those models); ``--set evaluate.rerank=false`` scores
  the generator's own order.

A fine-tune run folder is itself a model folder (the torch generator's weights, tokenizer,
retriever, decoding settings): ``evaluate`` scores it with the torch generator. ``export`` converts
the generator to ONNX, checks the conversion against torch and bundles it; ``evaluate`` scores a
bundle without torch.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from vfm.platform.config import build_settings, check_known_keys, deep_merge, write_config
from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_json
from vfm.platform.plugin import Plugin

SYNTHETIC = "synthetic"
EVAL_SEED = 2  # synthetic evaluation records are drawn with this seed (training uses finetune.seed = 0)
EVALUATE_DEFAULTS: dict[str, Any] = {"beam_size": None, "limit": None, "rerank": True, "lookup": True}
"""The ``evaluate`` section: how ``vfm evaluate finance`` decodes (see the module docstring)."""
READER_FILES = ("tokenizer.json", "retriever.json", "finance_model.json")
"""What the generator reads a question with: a run and a bundle both hold them."""


class FinancePipeline:
    """Adapt, train, evaluate and export the finance question-answering model of one plugin."""

    def __init__(self, plugin: Plugin):
        self.plugin = plugin
        self.manifest = plugin.manifest

    # ------------------------------------------------------------------ config
    def default_config(self) -> dict[str, Any]:
        training = self.manifest.training
        return {
            "plugin": self.plugin.name,
            "data": {"source": SYNTHETIC},
            "pretrain": {"base": "fresh:bert-tiny", **training.get("pretrain", {})},
            "finetune": {"pretrained": None, **training.get("finetune", {})},
            "evaluate": {**EVALUATE_DEFAULTS, **training.get("evaluate", {})},
        }

    def resolve(self, config: dict[str, Any]) -> dict[str, Any]:
        return deep_merge(self.default_config(), config)

    @staticmethod
    def _data_dir(config: dict[str, Any]) -> str | None:
        source = config["data"]["source"]
        if source == SYNTHETIC:
            return None
        if not Path(source).is_dir():
            raise VfmError(
                "finance training data must be a folder holding finqa/, tatqa/, convfinqa/",
                where=str(source),
                fix="pass the data folder (as $VFM_DATA_DIR) or data.source=synthetic",
            )
        return str(source)

    # ---------------------------------------------------------------- pretrain
    def pretrain(self, config: dict[str, Any], out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
        """Continue pretraining the encoder on domain text (masked LM for encoders)."""
        from vfm.plugins.finance.data.corpus import finance_documents, read_phrasebank
        from vfm.plugins.finance.data.synthetic import generate
        from vfm.pretrain.text_adaptation import TextAdaptSettings, adapt_text_model
        from vfm.pretrain.text_corpus import build_corpus

        config = self.resolve(config)
        section = dict(config["pretrain"])
        base = section.pop("base")
        settings = build_settings(TextAdaptSettings, section, "pretrain")
        data_dir = self._data_dir(config)
        if data_dir is None:
            documents, held_out = finance_documents(generate(2000, seed=config["finetune"].get("seed", 0))), []
        else:
            from vfm.plugins.finance.data.data_splits import load_real_data

            real = load_real_data(data_dir)
            documents = finance_documents(real.train)
            documents += [
                doc for path in sorted(Path(data_dir).glob("phrasebank/*.zip")) for doc in read_phrasebank(path)
            ]
            held_out = finance_documents(real.finqa_dev + real.tatqa_held_out)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_config(config, out_dir)
        metrics = adapt_text_model(
            base, build_corpus(documents, exclude_documents=held_out), None, settings, out_dir, progress=progress
        )
        atomic_write_json(out_dir / "metrics.json", metrics)
        return metrics

    # ---------------------------------------------------------------- finetune
    def _training_settings(self, config: dict[str, Any]) -> Any:
        from vfm.platform.models.sources import resolve, resolve_if_installed
        from vfm.plugins.finance.generation.generator import SCRATCH
        from vfm.plugins.finance.generation.generator_training import TrainingSettings

        section = dict(config["finetune"])
        pretrained = section.pop("pretrained")
        for reserved, where in (("data_dir", "data.source"), ("encoder", "finetune.pretrained")):
            if reserved in section:
                raise VfmError(f"finetune.{reserved} is set through {where}", fix=f"set {where} instead")
        data_dir = self._data_dir(config)
        section |= {"data_dir": data_dir, "encoder": str(resolve(pretrained)) if pretrained else SCRATCH}
        if section.get("dense_retriever"):
            folder = resolve_if_installed(section["dense_retriever"], "the dense retriever")
            section["dense_retriever"] = str(folder) if folder else None
        if data_dir is None:
            section["synthetic_only"] = True
        return build_settings(TrainingSettings, section, "finetune")

    def finetune(self, config: dict[str, Any], out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
        """Fit the retriever, train the program generator and the answer models, and score them (``metrics.json``);
        the run keeps the generator in torch (``generator.safetensors``)."""
        from vfm.platform.pipeline import record_base_model
        from vfm.plugins.finance.generation.generator_training import train_generator

        config = self.resolve(config)
        settings = self._training_settings(config)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_config(config, out_dir)
        dense = config["finetune"].get("dense_retriever") if settings.dense_retriever else None
        record_base_model(out_dir, config["finetune"]["pretrained"], components={"dense retriever": dense})
        return train_generator(settings, out_dir)

    # ---------------------------------------------------------------- evaluate
    def evaluate(
        self,
        run_dir: Path,
        config_overrides: dict[str, Any] | None = None,
        *,
        source: str | None = None,
        split: str | None = None,
    ) -> dict[str, Any]:
        """Score a run (or a bundle) on a FinQA / TAT-QA / ConvFinQA file, or on synthetic test records.

        A run's torch generator answers every question; a bundle's ONNX model, without torch.
        """
        from vfm.plugins.finance.data.synthetic import generate
        from vfm.plugins.finance.evaluation.evaluate import evaluate_file, evaluate_records
        from vfm.plugins.finance.generation.decode import ProgramPredictor

        check_model_folder(run_dir)
        if split is not None:
            raise VfmError(
                f"finance files hold one split each; got --split {split}",
                fix="drop --split and pass the file of the split to score with --data",
            )
        options = self.resolve(config_overrides or {})["evaluate"]
        check_known_keys({"evaluate": options}, {"evaluate": EVALUATE_DEFAULTS})
        if source:
            return evaluate_file(source, run_dir, progress=False, **options)
        limit = options.pop("limit")
        records = generate(200, seed=EVAL_SEED)[:limit]
        return {
            "file": f"synthetic(seed={EVAL_SEED}, n={len(records)})",
            **evaluate_records(ProgramPredictor(run_dir, **options), records, progress=False),
        }

    # ------------------------------------------------------- demo and validate
    def smoke_config(self) -> dict[str, Any]:
        """A seconds-long config for ``vfm plugins validate``: same code path, tiny sizes."""
        return {
            "finetune": {
                "synthetic": 40,
                "max_epochs": 1,
                "d_model": 32,
                "n_layers": 1,
                "n_heads": 2,
                "d_ff": 64,
                "max_len": 128,
                "select_synthetic": 4,
                "eval_synthetic": 4,
                "parity_records": 2,
                "beam_size": 2,
                "warmup_steps": 1,
            }
        }

    def check_forward(self) -> dict[str, Any]:
        """Fake-input forward pass: a synthetic question through an untrained generator, shapes checked."""
        import numpy as np
        from tokenizers import Tokenizer

        from vfm.plugins.finance.data.synthetic import generate
        from vfm.plugins.finance.generation.features import InputEncoder, make_example
        from vfm.plugins.finance.generation.generator import TorchBackend, build_generator
        from vfm.plugins.finance.generation.generator_training import record_texts, train_word_tokenizer

        settings = self._training_settings(self.resolve(self.smoke_config()))
        records = generate(4, seed=0)
        tokenizer = Tokenizer.from_str(train_word_tokenizer(record_texts(records), 500, 1).to_str())
        inputs = InputEncoder(tokenizer, settings.max_len, settings.max_question_len)
        backend = TorchBackend(build_generator(settings.model_config(tokenizer.get_vocab_size())).eval())
        encoded = inputs.encode(make_example(records[0], records[0].gold_evidence))
        ids, mask, types = encoded.padded(settings.max_len, inputs.pad_id)  # each [1, max_len]
        memory, state = backend.encode(ids, mask, types)
        logits, _ = backend.step(np.zeros(1, np.int64), state, memory, mask)
        expected = {"memory": (1, settings.max_len, settings.d_model), "state": (1, settings.d_model)}
        got = {"memory": memory.shape, "state": state.shape}
        if got != expected or logits.shape[0] != 1:
            raise VfmError(f"generator output shapes {got} differ from {expected}")
        return {"memory": list(memory.shape), "state": list(state.shape), "logits": list(logits.shape)}

    def build_demo_bundle(self, work_dir: Path, *, config: dict[str, Any] | None = None, progress: bool = True) -> Path:
        """Train on synthetic statements (the manifest's demo recipe) and export, in ``work_dir``.

        A finished training run is reused; the demo skips text adaptation (see the manifest).
        """
        run = work_dir / "finetune"
        if not (run / "metrics.json").is_file():
            self.finetune(config or {}, run, progress=progress)
        return self.export(run, work_dir / "bundle", progress=progress)

    # ------------------------------------------------------------------ export
    def export(self, run_dir: Path, out: Path, *, progress: bool = True) -> Path:
        """A training run in, a verified bundle out: the run's generator converted to ONNX (encoder + one
        decoder step), each graph and the greedy program tokens on synthetic records checked against torch
        (``parity.json``), bundled with the tokenizer, the retriever (its sentence encoder converted to ONNX and
        checked the same way, embeddings and retrieval scores, when it has one), the decoding settings and the beam
        re-ranker, the table lookup, the scale model and the text answerer when the run kept them.

        Raises:
            VfmError: ``run_dir`` is not a finished training run, or the ONNX program tokens differ from torch's.
        """
        from vfm.platform.pipeline import ParityReport, write_run_bundle
        from vfm.plugins.finance.answers.lookup import FILE as LOOKUP_FILE
        from vfm.plugins.finance.answers.scale import FILE as SCALE_FILE
        from vfm.plugins.finance.answers.text_answer import FILE as TEXT_FILE
        from vfm.plugins.finance.data.examples import example_files
        from vfm.plugins.finance.data.synthetic import generate
        from vfm.plugins.finance.generation.decode import ENCODER_ONNX, STEP_ONNX
        from vfm.plugins.finance.generation.generator import (
            PARITY_RECORDS,
            export_generator,
            greedy_token_parity,
            load_generator,
        )
        from vfm.plugins.finance.generation.reranker import FILE as RERANKER_FILE
        from vfm.plugins.finance.retrieval.dense import TOKENIZER_FILE as DENSE_TOKENIZER
        from vfm.plugins.finance.retrieval.dense_training import export_dense_encoder
        from vfm.plugins.finance.retrieval.retriever import EvidenceRetriever

        run_dir, out = Path(run_dir), Path(out)
        check_model_folder(run_dir, export=True)
        metrics = json.loads((run_dir / "metrics.json").read_text("utf-8"))
        records = generate(int(metrics.get("settings", {}).get("parity_records", PARITY_RECORDS)), seed=EVAL_SEED)
        model = load_generator(run_dir)
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.onnx.", dir=out.parent))
        try:
            graphs = export_generator(model, staging)
            tokens = greedy_token_parity(model, staging, run_dir, records)
            if tokens["equal"] != tokens["count"]:
                raise VfmError(
                    f"the ONNX generator's greedy program tokens differ from torch's on "
                    f"{tokens['count'] - tokens['equal']} of {tokens['count']} synthetic records "
                    f"(first: {tokens['mismatches'][0]['id']})",
                    where=str(run_dir),
                    fix="report this as a bug, with the run folder",
                )
            checks: dict[str, Any] = {"greedy_tokens": {**tokens, "passed": True}}
            if EvidenceRetriever.load(run_dir / "retriever.json").dense is not None:
                graphs["dense_encoder"], checks["dense_retrieval"] = export_dense_encoder(run_dir, staging, records)
                if not checks["dense_retrieval"]["passed"]:
                    raise VfmError(
                        "the ONNX sentence encoder changes the retriever's scores by "
                        f"{checks['dense_retrieval']['max_probability_diff']:.3g} (more than 1e-3)",
                        where=str(run_dir),
                        fix="report this as a bug, with the run folder",
                    )
            report = ParityReport.from_graphs(graphs, **checks)
            summary = {
                name: {
                    mode: scores["program"] | {"retrieval": scores["retrieval"]} | _tatqa_summary(scores)
                    for mode, scores in result.items()
                }
                for name, result in metrics.get("evaluation", {}).items()
            }
            # the ONNX graphs (and their weights' files, past ONNX's 2 GB limit)
            files: dict[str, Any] = {Path(f).name: Path(f) for r in graphs.values() for f in r["files"]}
            files |= {name: run_dir / name for name in READER_FILES}
            if (staging / DENSE_TOKENIZER).is_file():
                files[DENSE_TOKENIZER] = staging / DENSE_TOKENIZER
            for optional in (RERANKER_FILE, LOOKUP_FILE, SCALE_FILE, TEXT_FILE):
                if (run_dir / optional).is_file():
                    files[optional] = run_dir / optional
            files |= example_files(self.manifest.demo.n_examples)
            return write_run_bundle(
                out,
                self.manifest,
                models={"encoder": ENCODER_ONNX, "decoder_step": STEP_ONNX},
                model_files=files,
                metrics=summary,
                parity=report,
                config_file=run_dir / "config.yaml",
                card_metrics=_flat_metrics(summary),
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def check_model_folder(folder: Path, *, export: bool = False) -> None:
    """Refuse a folder ``evaluate`` cannot read (a training run, or a bundle) or, with ``export``, one
    ``export`` cannot (a finished training run: the generator's weights and ``metrics.json``), naming the
    missing files."""
    from vfm.plugins.finance.generation.decode import CONFIG_FILE, ENCODER_ONNX, STEP_ONNX, WEIGHTS_FILE

    folder = Path(folder)
    if export:
        needed, what = (WEIGHTS_FILE, CONFIG_FILE, *READER_FILES, "metrics.json"), "finished finance training run"
    elif (folder / ENCODER_ONNX).is_file():
        needed, what = (ENCODER_ONNX, STEP_ONNX, *READER_FILES), "finance bundle"
    else:
        needed, what = (WEIGHTS_FILE, CONFIG_FILE, *READER_FILES), "finance run"
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise VfmError(
            f"not a {what}: {', '.join(missing)} missing",
            where=str(folder),
            fix="pass the --out folder of 'vfm finetune finance'" + ("" if export else " (or a finance bundle)"),
        )


def _tatqa_summary(scores: dict[str, Any]) -> dict[str, float]:
    """TAT-QA's exact match and F1 over all questions of a TAT-QA set (every answer kind), for the
    model card; empty for other sets."""
    if "tatqa" not in scores:
        return {}
    return {"tatqa_exact_match": scores["tatqa"]["all"]["exact_match"], "tatqa_f1": scores["tatqa"]["all"]["f1"]}


def _flat_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """``{"<set>/<decoding>/<metric>": value}`` for the model card's table."""
    return {
        f"{name}/{mode}/{metric}": value
        for name, modes in summary.items()
        for mode, scores in modes.items()
        for metric, value in scores.items()
        if isinstance(value, (int, float))
    }
