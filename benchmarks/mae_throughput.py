"""MAE training-step throughput: images/s, peak memory and FLOPs, and what visible-only encoding saves.

One training step is forward, backward and an AdamW step, timed after ``--warmup`` steps.
Each configuration runs in a fresh process, so its peak memory is its own: on CUDA
``torch.cuda.max_memory_allocated``; on CPU the peak resident set size (``getrusage``) minus the
resident size before the model was built. FLOPs per step are counted once with
``torch.utils.flop_counter.FlopCounterMode`` (forward + backward matmuls and attention; the
optimiser's elementwise work is not counted); MFU divides them by the step time and
``--peak-tflops`` (the device's dense bf16 peak, e.g. 989 for an H100 or H200 SXM). On CUDA the
report also gives the bf16 matrix-product rate measured on the device (8192^3, mean of ten after
three warm-ups), the ceiling that a real training step can approach.

Variants: ``mae`` encodes the visible patches only (``MaskedAutoencoderViT``); ``all-patches``
is SimMIM-style (MAE's "encoder w/ [M]" ablation): masked patches are replaced by a learned
mask token and the encoder runs on all of them, with the same decoder.

    python benchmarks/mae_throughput.py --sizes tiny base --precisions fp32 bf16 \\
        --output docs/results/performance.md --json docs/results/performance.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from vfm.pretrain.mae import MaeConfig, MaskedAutoencoderViT

DEFAULTS = {"tiny": (64, 64), "small": (224, 32), "base": (224, 8), "large": (224, 8)}  # size: (image side, batch)


class AllPatchEncoderMAE(MaskedAutoencoderViT):
    """The encoder sees every patch, masked ones replaced by a learned token; the decoder reads all of them."""

    def __init__(self, cfg: MaeConfig):
        super().__init__(cfg)
        self.encoder_mask_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        nn.init.normal_(self.encoder_mask_token, std=0.02)

    def forward_encoder(self, imgs: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None):
        """imgs: [N, C, H, W] -> latent [N, 1+L, D] in patch order, mask [N, L], ids_restore [N, L]."""
        x = self.patch_embed(imgs)  # [N, L, D]
        _, mask, ids_restore = self.random_masking(x, mask_ratio, noise)
        x = torch.where(mask[..., None].bool(), self.encoder_mask_token.to(x.dtype), x) + self.pos_embed[:, 1:]
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)  # [N, 1, D]
        x = torch.cat([cls, x], dim=1)  # [N, 1+L, D]
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, ids_restore

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """latent: [N, 1+L, D] -> pred [N, L, p*p*C]; no mask tokens to insert."""
        x = self.decoder_embed(latent) + self.decoder_pos_embed  # [N, 1+L, Dd]
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]  # [N, L, p*p*C]


def rss_mib() -> float:
    """The current resident set size (Linux)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(
    size: str,
    precision: str,
    variant: str,
    img_size: int,
    batch: int,
    steps: int,
    warmup: int,
    mask_ratio: float,
    threads: int | None,
    compile_model: bool = False,
) -> dict:
    """Time ``steps`` training steps of one configuration (run in a fresh process). With
    ``compile_model`` the model runs through ``torch.compile`` after the FLOP-counting step, and
    the compilation happens in the warmup steps."""
    if threads:
        torch.set_num_threads(threads)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    torch.manual_seed(0)
    before = rss_mib()
    cfg = MaeConfig.preset(size, img_size=img_size, mask_ratio=mask_ratio)
    model = (AllPatchEncoderMAE if variant == "all-patches" else MaskedAutoencoderViT)(cfg).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05)
    imgs = torch.randn(batch, 3, img_size, img_size, device=device)  # [B, 3, S, S]
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    forward = model

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss, _, _ = forward(imgs)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    with FlopCounterMode(display=False) as counter:
        step()  # also the first warmup step
    if compile_model:
        forward = torch.compile(model)
    for _ in range(warmup - 1):
        step()
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before  # ru_maxrss is in KiB
    tokens = cfg.img_size**2 // cfg.patch_size**2
    return {
        "size": size,
        "variant": variant,
        "compiled": compile_model,
        "precision": precision,
        "img_size": img_size,
        "batch": batch,
        "encoder_tokens": 1 + (tokens if variant == "all-patches" else round(tokens * (1 - mask_ratio))),
        "steps": steps,
        "warmup": warmup,
        "step_s": seconds,
        "images_per_s": batch / seconds,
        "gflop_per_step": counter.get_total_flops() / 1e9,
        "peak_mem_mib": peak,
        "memory": "cuda max_memory_allocated" if cuda else "peak RSS - RSS before the model",
        "threads": torch.get_num_threads(),
    }


def matmul_ceiling_tflops(side: int = 8192, repeats: int = 10) -> float:
    """The CUDA device's measured bf16 rate: TFLOP/s of ``[side, side] @ [side, side]`` on random data."""
    a, b = (torch.randn(side, side, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * side**3 * repeats / (start.elapsed_time(end) / 1e3) / 1e12


def machine() -> dict:
    model_name = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    flags = next(
        (
            line.split(":", 1)[1].split()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("flags")
        ),
        [],
    )
    import timm

    return {
        "nproc": os.cpu_count(),
        "cpu": model_name,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_flags": [f for f in flags if f in ("avx512_bf16", "amx_bf16", "amx_tile")],
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "matmul_bf16_tflops": round(matmul_ceiling_tflops(), 1) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "python": platform.python_version(),
    }


def report(results: list[dict], info: dict, command: str, peak_tflops: float | None) -> str:
    """The results as a markdown page."""
    lines = [
        "# MAE pretraining throughput",
        "",
        f"Generated by `{command}`.",
        "",
        f"Machine: {info['nproc']} CPU cores ({info['cpu']}, torch CPU capability {info['cpu_capability']}, "
        f"bf16 flags: {', '.join(info['bf16_flags']) or 'none'}); GPU: {info['gpu'] or 'none'}; "
        f"torch {info['torch']} (threads: {results[0]['threads']}), timm {info['timm']}, Python {info['python']}. "
        f"1-minute load average "
        f"{info['load_average'][0]} before and {info['load_average'][1]} after the run "
        "(other jobs share this machine; timings move with them).",
        "",
    ]
    if info["gpu"] is None:
        lines += [
            "No CUDA device was available to this run: every figure below is CPU, and no GPU throughput "
            "or MFU was measured.",
            "",
        ]
    else:
        lines += [
            f"Measured bf16 matrix-product rate on this device (8192^3, random data): "
            f"{info['matmul_bf16_tflops']} TFLOP/s"
            + (f"; MFU is against the datasheet's {peak_tflops:g}." if peak_tflops else "."),
            "",
        ]
    mfu = peak_tflops is not None
    lines += [
        "One step = forward + backward + AdamW step, mean over the timed steps after warmup. "
        "Encoder tokens include the cls token. Memory: " + results[0]["memory"] + ".",
        "",
        "| model | variant | precision | image | batch | encoder tokens | steps timed | s/step | images/s "
        "| GFLOP/step | TFLOP/s | peak memory (MiB) |" + (" MFU |" if mfu else ""),
        "|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if mfu else ""),
    ]
    for r in results:
        tflops = r["gflop_per_step"] / r["step_s"] / 1e3
        variant = r["variant"] + (" (compiled)" if r.get("compiled") else "")
        lines.append(
            f"| {r['size']} | {variant} | {r['precision']} | {r['img_size']} | {r['batch']} "
            f"| {r['encoder_tokens']} | {r['steps']} | {r['step_s']:.3g} | {r['images_per_s']:.3g} "
            f"| {r['gflop_per_step']:.4g} | {tflops:.3g} | {r['peak_mem_mib']:.0f} |"
            + (f" {100 * tflops / peak_tflops:.1f}% |" if mfu else "")
        )
    pairs = {(r["size"], r["precision"], r["batch"], r.get("compiled", False)): {} for r in results}
    for r in results:
        pairs[(r["size"], r["precision"], r["batch"], r.get("compiled", False))][r["variant"]] = r
    savings = [(key, v["mae"], v["all-patches"]) for key, v in pairs.items() if len(v) == 2]
    if savings:
        lines += ["", "What visible-only encoding saves (MAE vs all-patches, same decoder):", ""]
        for (size, precision, batch, compiled), mae, full in savings:
            lines.append(
                f"- {size} {precision} batch {batch}{' compiled' if compiled else ''}: "
                f"{full['step_s'] / mae['step_s']:.2f}x faster per step, "
                f"{full['gflop_per_step'] / mae['gflop_per_step']:.2f}x fewer FLOPs, "
                f"{full['peak_mem_mib'] - mae['peak_mem_mib']:.0f} MiB less peak memory "
                f"({mae['peak_mem_mib']:.0f} vs {full['peak_mem_mib']:.0f})."
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        nargs="+",
        default=["tiny", "base"],
        choices=sorted(DEFAULTS),
        help="MAE presets; tiny runs at 64 px batch 64, the others at 224 px batch 8 (small: 32)",
    )
    parser.add_argument(
        "--precisions",
        nargs="+",
        default=["fp32", "bf16"],
        choices=["fp32", "bf16"],
        help="bf16 = torch.autocast(bfloat16) around the forward pass",
    )
    parser.add_argument("--variants", nargs="+", default=["mae", "all-patches"], choices=["mae", "all-patches"])
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: tiny 10, others 2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: tiny 2, others 1)")
    parser.add_argument(
        "--batch",
        type=int,
        nargs="+",
        default=None,
        help="override the per-size batch; several values run each configuration at each",
    )
    parser.add_argument("--mask-ratio", type=float, default=0.75)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="run the model through torch.compile (compiled during the warmup steps: use --warmup 3+)",
    )
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak bf16 TFLOP/s, for MFU")
    parser.add_argument("--output", type=Path, default=None, help="write the markdown report here")
    parser.add_argument("--json", type=Path, default=None, help="write the raw results here")
    args = parser.parse_args(argv)

    jobs = []
    for size in args.sizes:
        img_size, batch = DEFAULTS[size]
        steps = args.steps or (10 if size == "tiny" else 2)
        warmup = args.warmup or (2 if size == "tiny" else 1)
        if args.compile and warmup < 2:
            parser.error(
                f"--compile compiles in the warmup steps after the first, and {size} warms up "
                f"{warmup} step: give --warmup 2 or more (3 is safer)"
            )
        for precision in args.precisions:
            for size_batch in args.batch or [batch]:
                for variant in args.variants:
                    jobs.append(
                        dict(
                            size=size,
                            precision=precision,
                            variant=variant,
                            img_size=img_size,
                            batch=size_batch,
                            steps=steps,
                            warmup=warmup,
                            mask_ratio=args.mask_ratio,
                            threads=args.threads,
                            compile_model=args.compile,
                        )
                    )
    load_before, results = os.getloadavg()[0], []
    for job in tqdm(jobs, desc="configurations", file=sys.stderr):
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:  # a fresh peak memory
            result = pool.submit(measure, **job).result()
        tqdm.write(
            f"{job['size']} {job['variant']} {job['precision']} batch {job['batch']}: "
            f"{result['images_per_s']:.1f} images/s, "
            f"{result['peak_mem_mib']:.0f} MiB",
            file=sys.stderr,
        )
        results.append(result)

    command = "python benchmarks/mae_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
    info = machine() | {"load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
    text = report(results, info, command.strip(), args.peak_tflops)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": command, "machine": info, "results": results}, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    print(text)


if __name__ == "__main__":
    main()
