"""The first vertical slice through the real CLI: pretrain -> finetune -> evaluate -> export -> predict."""

import json
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import yaml
from conftest import run_vfm
from PIL import Image

from vfm.plugins.retina.synthetic import generate

pytestmark = pytest.mark.slow


def test_runs_write_resolved_config_metrics_and_checkpoints(retina_run):
    pretrain, finetune = retina_run["pretrain"], retina_run["finetune"]
    for name in ("encoder.safetensors", "encoder.json", "config.yaml", "metrics.json", "reconstruction.png"):
        assert (pretrain / name).is_file(), name
    assert (pretrain / "checkpoints" / "last.ckpt").is_file()
    config = yaml.safe_load((finetune / "config.yaml").read_text())
    assert config["preprocessing"]["image_size"] == 32 and config["finetune"]["max_epochs"] == 2
    assert config["finetune"]["pretrained"].endswith("encoder.safetensors")
    metrics = json.loads((finetune / "metrics.json").read_text())
    assert {"auroc_macro_ovr", "accuracy", "qwk"} <= set(metrics)


def test_bundle_has_every_part_and_passes_parity(retina_run):
    bundle = retina_run["bundle"]
    for name in (
        "manifest.json",
        "model.onnx",
        "preprocessing.json",
        "labels.json",
        "metrics.json",
        "parity.json",
        "MODEL_CARD.md",
        "config.yaml",
        "SHA256SUMS",
    ):
        assert (bundle / name).is_file(), name
    parity = json.loads((bundle / "parity.json").read_text())
    assert parity["passed"] and parity["n_inputs"] >= 10
    for output in ("probabilities", "heatmap", "gradcam"):
        assert parity["outputs"][output]["max_abs_err"] <= 1e-4
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "Intended use" in card and "Limitations" in card and "synthetic" in card.lower()
    base = json.loads((bundle / "base_model.json").read_text())  # the MAE encoder it was fine-tuned from
    encoder = retina_run["pretrain"] / "encoder.safetensors"
    assert base["source"] == {"kind": "file"} and base["reference"] == str(encoder.resolve())
    digest = base["weights_sha256"]["encoder.safetensors"]
    assert f"`encoder.safetensors`: `{digest}`" in card and "## Base model" in card


def test_evaluate_scores_any_npz_split_and_image_folder(retina_run, tmp_path):
    images, labels = generate(25, seed=777, image_size=48)
    np.savez(tmp_path / "held_out.npz", test_images=images, test_labels=labels[:, None])
    out = run_vfm(
        "evaluate",
        "retina",
        "--run",
        str(retina_run["finetune"]),
        "--data",
        str(tmp_path / "held_out.npz"),
        "--split",
        "test",
        "--output",
        str(tmp_path / "m.json"),
    )
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout)
    assert metrics["n"] == 25 and 0.0 <= metrics["auroc_macro_ovr"] <= 1.0 and metrics["split"] == "test"
    assert json.loads((tmp_path / "m.json").read_text()) == metrics

    folder = tmp_path / "folder"
    folder.mkdir()
    rows = ["filename,label"]
    for i, (image, label) in enumerate(zip(images[:10], labels[:10])):
        Image.fromarray(image).save(folder / f"eye{i}.png")
        rows.append(f"eye{i}.png,{label}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    out = run_vfm("evaluate", "retina", "--run", str(retina_run["finetune"]), "--data", str(folder))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["n"] == 10

    missing_split = run_vfm(
        "evaluate",
        "retina",
        "--run",
        str(retina_run["finetune"]),
        "--data",
        str(tmp_path / "held_out.npz"),
        "--split",
        "val",
    )
    assert missing_split.returncode == 2 and "test" in missing_split.stderr


def _huge_png(path):
    """A valid 8x8 PNG whose header claims 100000 x 100000 pixels."""
    Image.new("RGB", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data[12:29]
    ihdr[4:12] = struct.pack(">II", 100_000, 100_000)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(data))


def test_predict_handles_good_and_bad_images(retina_run, tmp_path):
    image = generate(1, seed=5, image_size=96)[0][0]
    good = tmp_path / "good.png"
    Image.fromarray(image).save(good)
    Image.fromarray(image).convert("L").save(tmp_path / "gray.png")
    Image.fromarray(image).convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(image[..., 0].astype(np.uint16) * 257).save(tmp_path / "deep16.png")
    Image.new("RGB", (1, 1)).save(tmp_path / "tiny.png")
    (tmp_path / "corrupt.png").write_bytes(good.read_bytes()[:60] + b"\x00garbage" * 10)
    _huge_png(tmp_path / "huge.png")
    names = ["good", "gray", "rgba", "deep16", "tiny", "corrupt", "huge", "missing"]
    out = run_vfm(
        "predict",
        str(retina_run["bundle"]),
        *[str(tmp_path / f"{n}.png") for n in names],
        "--explain-dir",
        str(tmp_path / "explain"),
    )
    assert out.returncode == 2  # some inputs failed; the others were still predicted
    results = {r["input"].rsplit("/", 1)[-1][:-4]: r for r in json.loads(out.stdout)}
    for name in ("good", "gray", "rgba", "deep16"):
        assert "error" not in results[name], results[name]
        assert abs(sum(results[name]["probabilities"].values()) - 1) < 1e-4
        assert set(results[name]["explanations"]) == {"heatmap", "gradcam"}
        assert all(Image.open(path).size == (256, 256) for path in results[name]["explanations"].values())
    for name in ("tiny", "corrupt", "huge", "missing"):
        error = results[name]["error"]
        assert "fix:" in error and "\n" not in error, error


def test_tampered_and_incompatible_bundles_are_refused(retina_run, tmp_path):
    tampered = tmp_path / "tampered"
    shutil.copytree(retina_run["bundle"], tampered)
    with open(tampered / "model.onnx", "ab") as handle:
        handle.write(b"\x00")
    out = run_vfm("predict", str(tampered), str(tampered / "examples" / "00_label0.png"))
    assert out.returncode == 2 and "checksum mismatch for model.onnx" in out.stderr

    from vfm.platform.bundle import load_bundle, write_bundle

    original = load_bundle(retina_run["bundle"])
    future = original.plugin_manifest.model_copy(update={"version": "9.0.0"})
    files = {
        p.relative_to(original.path).as_posix(): p
        for p in original.path.rglob("*")
        if p.is_file() and p.name not in ("SHA256SUMS", "manifest.json")
    }
    write_bundle(
        tmp_path / "future", plugin_manifest=future, models={"model": "model.onnx"}, files=files, vfm_version="0.1.0"
    )
    out = run_vfm("predict", str(tmp_path / "future"), str(tampered / "examples" / "00_label0.png"))
    assert out.returncode == 2 and "made by plugin retina 9.0.0" in out.stderr


def test_runtime_imports_no_torch(retina_run):
    example = next((retina_run["bundle"] / "examples").iterdir())
    code = (
        "import sys; from vfm.serve.runtime import open_predictor; import vfm.serve.app; "
        "import vfm.platform.cli; "
        f"r = open_predictor({str(retina_run['bundle'])!r}).predict({str(example)!r}); "
        "assert 'torch' not in sys.modules, 'torch was imported'; print(r['label'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip()


def test_pretrain_on_a_flat_folder_then_finetune_on_an_npz(tmp_path):
    """Real data enters by path: unlabelled photographs for MAE, an npz with train/val for fine-tuning."""
    from conftest import TINY_RUN

    images, labels = generate(30, seed=99, image_size=40)
    folder = tmp_path / "unlabelled"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"eye{i:02d}.png")
    flat = run_vfm("pretrain", "retina", "--data", str(folder), "--out", str(tmp_path / "pre"), *TINY_RUN)
    assert flat.returncode == 2 and "train" in flat.stderr and "data.train_split" in flat.stderr, flat.stderr
    pre = run_vfm(
        "pretrain",
        "retina",
        "--data",
        str(folder),
        "--out",
        str(tmp_path / "pre"),
        *TINY_RUN,
        "--set",
        "data.train_split=null",
        "--set",
        "data.val_split=null",
    )
    assert pre.returncode == 0, pre.stderr[-3000:]
    assert json.loads(pre.stdout)["steps"] == 4

    np.savez(
        tmp_path / "eyes.npz",
        train_images=images[:20],
        train_labels=labels[:20, None],
        val_images=images[20:],
        val_labels=labels[20:, None],
    )
    fine = run_vfm(
        "finetune",
        "retina",
        "--data",
        str(tmp_path / "eyes.npz"),
        "--out",
        str(tmp_path / "ft"),
        "--pretrained",
        str(tmp_path / "pre" / "encoder.safetensors"),
        *TINY_RUN,
    )
    assert fine.returncode == 0, fine.stderr[-3000:]
    result = json.loads(fine.stdout)
    assert result["n_train"] == 20 and result["n_val"] == 10
    assert yaml.safe_load((tmp_path / "ft" / "config.yaml").read_text())["data"]["source"].endswith("eyes.npz")
