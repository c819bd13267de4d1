"""The commentary model: a clip of k frames, the ego speed at each and the driver's settings in, a
sentence out (LINGO-1 style).

Vision: one timm ``VisionTransformer`` with the MAE encoder's shape and names (loadable from
``encoder.safetensors`` of :func:`vfm.pretrain.mae_training.pretrain_mae`, or a RETFound-style
checkpoint, through :func:`vfm.finetune.vit_classifier.load_encoder_weights`) reads each frame.
Per frame it gives the class token and a ``patch_grid x patch_grid`` average-pooled grid of
patch tokens (``S = 1 + patch_grid**2`` slots); a LayerNorm + Linear projects them to the
decoder's width, and learned frame-position and slot embeddings are added. A small MLP embeds
the ego state as one more token: per frame ``speed / speed_scale``, the change from the frame
before ``/ speed_change_scale`` and whether the speed is known (NaN: unknown), and the driver's
settings (set speed ``/ speed_scale``, set time gap ``/ time_gap_scale``) with whether each is
known; a learned token when nothing is known. The frames show where the other cars are; the
trace shows how our own speed is changing; the settings say what the driver wants (how fast,
how far behind the car ahead), which the frames cannot show. The prefix is ``P = k * S + 1``
embeddings::

    [frame 0 slots, ..., frame k-1 slots, ego]  [B, P, D]

Language: any ``transformers`` causal LM (a fresh tiny GPT-2 by default; a text-adapted or
pretrained one through :meth:`CommentaryModel.for_text`) reads ``inputs_embeds`` =
``[prefix; <bos> question <sep> target <eos>]`` (see :mod:`vfm.plugins.driving.tokenizer`) and
is trained on the target tokens only.

Explanations, gradient-free: the encoder's last-block class-token attention over the patches
of each frame (``saliency [B, k, G, G]``, G the patch grid), and the decoder's attention over
the prefix at each generated token (``prefix_attention [B, P]``, layers and heads averaged).
The decoder therefore runs with eager attention (the only kind that returns weights).
"""

from __future__ import annotations

import inspect
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block, VisionTransformer

from vfm.finetune.vit_classifier import build_vit_classifier, load_encoder_weights
from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_bytes, atomic_write_json
from vfm.plugins.driving.decode import SETTINGS_FILE, SETTINGS_FORMAT, WEIGHTS_FILE
from vfm.plugins.driving.tokenizer import TOKENIZER_FILE, DrivingTokenizer
from vfm.pretrain.text_models import FRESH_CONFIGS, load_pretrained, max_positions

MODEL_FORMAT = "vfm-driving-commentary/3"  # 3: the driver's settings, 2: a speed per frame (1: one speed)
CONFIG_FILE = "commentary.json"


def decoder_config(tokenizer: DrivingTokenizer, preset: str = "gpt2-mini", n_positions: int = 256) -> dict:
    """A fresh GPT-2 config (as a dict) sized to ``tokenizer``; ``preset`` names a GPT-2 entry of
    :data:`vfm.pretrain.text_models.FRESH_CONFIGS` (``gpt2-tiny``: 64 wide, 2 layers;
    ``gpt2-mini``: 256 wide, 4 layers)."""
    from transformers import GPT2Config

    spec = FRESH_CONFIGS.get(preset, {})
    if spec.get("family") != "gpt2":
        names = [name for name, s in FRESH_CONFIGS.items() if s["family"] == "gpt2"]
        raise VfmError(f"unknown decoder preset {preset!r}", where="decoder", fix=f"use one of {names}")
    sizes = {k: v for k, v in spec.items() if k != "family"}
    return GPT2Config(
        vocab_size=tokenizer.vocab_size,
        n_positions=n_positions,
        bos_token_id=tokenizer.bos_id,
        eos_token_id=tokenizer.eos_id,
        pad_token_id=tokenizer.pad_id,
        **sizes,
    ).to_dict()


@dataclass
class CommentaryConfig:
    """The model's shape (written to ``commentary.json``).

    Attributes:
        encoder: ViT keyword arguments (``MaeConfig.encoder_config()``, the ``"encoder"`` entry of
            ``encoder.json``); ``img_size`` is the frame size the model reads.
        decoder: the causal LM's ``transformers`` config as a dict (``config.to_dict()``, with
            ``model_type``); see :func:`decoder_config`.
        frames: k, the frames of a clip (oldest first).
        patch_grid: side of the pooled patch-token grid per frame (0: class token only); must
            divide the encoder's patch grid.
        speed_scale: m/s that map to 1.0 at the speed embedding's input.
        speed_change_scale: a speed change between frames (m/s) that maps to 1.0 there.
        time_gap_scale: a set time gap (s) that maps to 1.0 there.
        mean, std: per-channel normalisation of frames in [0, 1] (as at MAE pretraining).
        max_question_tokens: longest question, in tokens.
        max_new_tokens: longest generated text, in tokens (``<eos>`` included).
        extra: provenance (``pretrained_encoder``, ``text_model``), not read by the model.
    """

    encoder: dict
    decoder: dict
    frames: int = 4
    patch_grid: int = 2
    speed_scale: float = 30.0
    speed_change_scale: float = 2.0
    time_gap_scale: float = 2.0
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    max_question_tokens: int = 24
    max_new_tokens: int = 40
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.mean, self.std = tuple(self.mean), tuple(self.std)
        if self.frames < 1:
            raise VfmError(f"frames {self.frames} < 1", where="CommentaryConfig.frames", fix="use e.g. 4")
        grid = self.grid
        if self.patch_grid < 0 or (self.patch_grid and grid % self.patch_grid):
            raise VfmError(
                f"patch_grid {self.patch_grid} does not divide the encoder's {grid}x{grid} patch grid",
                where="CommentaryConfig.patch_grid",
                fix=f"use 0 or a divisor of {grid}",
            )
        if "model_type" not in self.decoder:
            raise VfmError(
                "the decoder config has no model_type",
                where="CommentaryConfig.decoder",
                fix="pass a transformers config's to_dict(), e.g. decoder_config(tokenizer)",
            )

    @property
    def image_size(self) -> int:
        """Frame height = width, in pixels."""
        return int(self.encoder.get("img_size", 224))

    @property
    def grid(self) -> int:
        """G: patches per side of a frame."""
        return self.image_size // int(self.encoder.get("patch_size", 16))

    @property
    def slots(self) -> int:
        """S: prefix tokens per frame (class token + pooled patch cells)."""
        return 1 + self.patch_grid**2

    @property
    def prefix_length(self) -> int:
        """P = k * S + 1 (the ego token)."""
        return self.frames * self.slots + 1

    @property
    def max_length(self) -> int:
        """Longest decoder sequence: prefix, ``<bos>``, question, ``<sep>``, generated text."""
        return self.prefix_length + self.max_question_tokens + 2 + self.max_new_tokens


def _cls_attention(blk: Block, x: torch.Tensor, prefix_tokens: int) -> torch.Tensor:
    """The class token's attention over the patches in ``blk``, heads averaged, summing to 1.

    x: [N, T, D], the block's input, T = prefix_tokens + L -> [N, L].
    """
    a = blk.attn
    n, t, _ = x.shape
    qkv = a.qkv(blk.norm1(x)).reshape(n, t, 3, a.num_heads, a.head_dim).permute(2, 0, 3, 1, 4)  # [3, N, H, T, hd]
    q, k = a.q_norm(qkv[0, :, :, :1]), a.k_norm(qkv[1])  # [N, H, 1, hd], [N, H, T, hd]
    attn = ((q * a.scale) @ k.transpose(-2, -1)).softmax(dim=-1)[:, :, 0]  # [N, H, T]
    patches = attn.mean(dim=1)[:, prefix_tokens:]  # [N, L]
    return patches / patches.sum(dim=-1, keepdim=True)


def _flatten_cache(out) -> tuple[torch.Tensor, ...]:
    """The DynamicCache of a ``transformers`` model output -> (key_0, value_0, key_1, ...), each
    [B, H_kv, T, hd]. The field is ``cache`` from transformers 5.2x, ``past_key_values`` before."""
    cache = out.cache if hasattr(out, "cache") else out.past_key_values
    return tuple(t for layer in cache.layers for t in (layer.keys, layer.values))


def _cache_keyword(decoder: nn.Module) -> str:
    """The name under which ``decoder.forward`` takes a key/value cache: ``cache`` from
    transformers 5.2x, ``past_key_values`` before (and in models not yet renamed)."""
    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"


def _prefix_attention(attentions: tuple[torch.Tensor, ...], prefix_length: int) -> torch.Tensor:
    """Attention of the last position over the prefix, layers and heads averaged.

    attentions: per layer [B, H, T_q, T_k] -> [B, P].
    """
    return torch.stack([a[:, :, -1, :prefix_length] for a in attentions]).mean(dim=(0, 2))


class CommentaryModel(nn.Module):
    """ViT per frame -> visual prefix -> causal LM. See the module docstring for the layout.

    Args:
        config: the shapes.
        decoder: a ``transformers`` causal LM to use (switched to eager attention); default: a
            fresh one from ``config.decoder``.
    """

    def __init__(self, config: CommentaryConfig, decoder: nn.Module | None = None):
        super().__init__()
        from transformers import AutoConfig, AutoModelForCausalLM

        self.config = config
        self.vit: VisionTransformer = build_vit_classifier(config.encoder, num_classes=0, global_pool="token")
        if decoder is None:
            decoder = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config.decoder))
        decoder.set_attn_implementation("eager")  # the only implementation that returns attention weights
        self.decoder = decoder
        self.cache_keyword = _cache_keyword(decoder)  # once: decode_step runs per generated token
        if config.max_length > max_positions(decoder):
            raise VfmError(
                f"sequences reach {config.max_length} tokens, the decoder has {max_positions(decoder)} positions",
                where="CommentaryConfig",
                fix="lower frames, patch_grid, max_question_tokens or max_new_tokens, or use a decoder "
                "with more positions",
            )
        width = decoder.get_input_embeddings().embedding_dim
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)
        self.project = nn.Sequential(nn.LayerNorm(self.vit.embed_dim), nn.Linear(self.vit.embed_dim, width))
        self.frame_embed = nn.Parameter(trunc_normal_(torch.zeros(config.frames, width), std=0.02))
        self.slot_embed = nn.Parameter(trunc_normal_(torch.zeros(config.slots, width), std=0.02))
        self.ego_embed = nn.Sequential(nn.Linear(3 * config.frames + 3, width), nn.GELU(), nn.Linear(width, width))
        self.unknown_ego = nn.Parameter(trunc_normal_(torch.zeros(width), std=0.02))

    @classmethod
    def for_text(cls, base: str | Path, encoder: dict, **options) -> tuple[CommentaryModel, DrivingTokenizer]:
        """A model whose language side is a pretrained causal LM, and its tokenizer.

        Args:
            base: a local ``save_pretrained`` folder, e.g. the ``model/`` folder of
                :func:`vfm.pretrain.text_adaptation.adapt_text_model` (a causal LM), or a Hub id
                already in the local cache. No remote code is run.
            encoder: ViT keyword arguments, as :attr:`CommentaryConfig.encoder`.
            options: the other :class:`CommentaryConfig` fields.

        The LM's own tokenizer gains the missing special tokens and its embeddings grow to match.
        """
        lm, hf_tokenizer, _ = load_pretrained(str(base), objective="clm")
        if getattr(hf_tokenizer, "backend_tokenizer", None) is None:
            raise VfmError(
                "the language model has no fast (tokenizers) tokenizer",
                where=str(base),
                fix="save the model with a fast tokenizer (tokenizer.json)",
            )
        tokenizer = DrivingTokenizer.extend(hf_tokenizer.backend_tokenizer)
        lm.resize_token_embeddings(tokenizer.vocab_size)
        extra = {**options.pop("extra", {}), "text_model": str(base)}
        config = CommentaryConfig(encoder=encoder, decoder=lm.config.to_dict(), extra=extra, **options)
        return cls(config, decoder=lm.train()), tokenizer

    def load_encoder(self, path: str | Path) -> dict:
        """Load a pretrained ViT encoder (``encoder.safetensors``, a RETFound/MAE checkpoint, ...)
        into the frame encoder; returns :func:`load_encoder_weights`' report."""
        report = load_encoder_weights(self.vit, path)
        self.config.extra["pretrained_encoder"] = str(path)
        return report

    def frame_tokens(self, frames: torch.Tensor, with_saliency: bool = False):
        """Per-frame ViT features.

        frames: [B, k, 3, H, W] float in [0, 1] -> (tokens [B, k, S, D_vit], saliency [B, k, G, G]
        or None): the normalised class token and the pooled patch tokens, and the class token's
        last-block attention over each frame's patches (summing to 1 per frame).
        """
        b, k = frames.shape[:2]
        vit = self.vit
        x = vit.patch_embed((frames.flatten(0, 1) - self.mean) / self.std)  # [N, G*G, D], N = B*k
        x = vit.norm_pre(vit._pos_embed(x))  # [N, T, D], T = prefix + G*G
        for blk in vit.blocks[:-1]:
            x = blk(x)
        saliency = _cls_attention(vit.blocks[-1], x, vit.num_prefix_tokens) if with_saliency else None  # [N, G*G]
        x = vit.norm(vit.blocks[-1](x))  # [N, T, D]
        g, grid = self.config.patch_grid, self.config.grid
        tokens = x[:, :1]  # [N, 1, D]
        if g:
            patches = x[:, vit.num_prefix_tokens :].transpose(1, 2).unflatten(2, (grid, grid))  # [N, D, G, G]
            pooled = F.avg_pool2d(patches, grid // g).flatten(2).transpose(1, 2)  # [N, g*g, D]
            tokens = torch.cat([tokens, pooled], dim=1)  # [N, S, D]
        tokens = tokens.unflatten(0, (b, k))  # [B, k, S, D]
        if saliency is not None:
            saliency = saliency.unflatten(0, (b, k)).unflatten(2, (grid, grid))  # [B, k, G, G]
        return tokens, saliency

    def ego_token(self, speed: torch.Tensor, settings: torch.Tensor | None = None) -> torch.Tensor:
        """The ego-state token.

        speed: [B, k] m/s at each frame, NaN when unknown; settings: [B, 2] the driver's set
        speed (m/s) and set time gap (s), NaN when unknown (None: both unknown) -> [B, D].
        """
        if settings is None:
            settings = torch.full((len(speed), 2), float("nan"), dtype=speed.dtype, device=speed.device)
        known = torch.isfinite(speed)  # [B, k]
        value = torch.where(known, speed, torch.zeros_like(speed))  # [B, k]
        both = (known[:, 1:] & known[:, :-1]).to(value.dtype)  # [B, k-1]
        change = (value[:, 1:] - value[:, :-1]) * both / self.config.speed_change_scale  # [B, k-1]
        set_known = torch.isfinite(settings)  # [B, 2]
        scale = torch.tensor(
            [self.config.speed_scale, self.config.time_gap_scale], dtype=value.dtype, device=value.device
        )
        set_value = torch.where(set_known, settings, torch.zeros_like(settings)) / scale  # [B, 2]
        features = torch.cat(
            [value / self.config.speed_scale, change, known.to(value.dtype), set_value, set_known.to(value.dtype)],
            dim=1,
        )  # [B, 3k+3]
        anything = known.any(dim=1, keepdim=True) | set_known.any(dim=1, keepdim=True)  # [B, 1]
        return torch.where(anything, self.ego_embed(features), self.unknown_ego)  # [B, D]

    def prefix(
        self,
        frames: torch.Tensor,
        speed: torch.Tensor,
        settings: torch.Tensor | None = None,
        with_saliency: bool = False,
    ):
        """The visual prefix.

        frames: [B, k, 3, H, W] float in [0, 1]; speed: [B, k] m/s at each frame, NaN when
        unknown; settings: [B, 2] or None (see :meth:`ego_token`) -> (prefix [B, P, D],
        saliency [B, k, G, G] or None).
        """
        tokens, saliency = self.frame_tokens(frames, with_saliency)  # [B, k, S, D_vit]
        tokens = self.project(tokens) + self.frame_embed[None, :, None] + self.slot_embed[None, None]  # [B, k, S, D]
        return torch.cat([tokens.flatten(1, 2), self.ego_token(speed, settings)[:, None]], dim=1), saliency

    def forward(
        self,
        frames: torch.Tensor,
        speed: torch.Tensor,
        tokens: torch.Tensor,
        labels: torch.Tensor,
        settings: torch.Tensor | None = None,
        with_state: bool = False,
    ):
        """Mean cross-entropy of the scored tokens (teacher forcing).

        frames: [B, k, 3, H, W] float in [0, 1]; speed: [B, k]; tokens: [B, T] int64, ``<bos>
        question <sep> target <eos>`` right-padded; labels: [B, T], the token id where the model
        is scored (target and ``<eos>``), -100 elsewhere; settings: [B, 2] or None. Token t is
        predicted from the prefix and tokens < t. With ``with_state``: ``(loss, state [B, D])``,
        ``state`` the decoder's last hidden state at ``<bos>`` (it has read the prefix, no text).
        """
        prefix, _ = self.prefix(frames, speed, settings)  # [B, P, D]
        embeds = torch.cat([prefix, self.decoder.get_input_embeddings()(tokens)], dim=1)  # [B, P+T, D]
        out = self.decoder(inputs_embeds=embeds, use_cache=False, output_hidden_states=with_state)
        scored = out.logits[:, prefix.shape[1] : -1]  # [B, T-1, V]: predictions of tokens 1 .. T-1
        loss = F.cross_entropy(scored.flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100)
        return (loss, out.hidden_states[-1][:, prefix.shape[1]]) if with_state else loss

    def decode_full(self, prefix: torch.Tensor, tokens: torch.Tensor):
        """The whole sequence at once (no cache in; the prefill of cached decoding).

        prefix: [B, P, D]; tokens: [B, T] -> (logits [B, V] at the last position,
        prefix_attention [B, P], present: (key_0, value_0, key_1, ...) each [B, H, P+T, hd]).
        """
        embeds = torch.cat([prefix, self.decoder.get_input_embeddings()(tokens)], dim=1)  # [B, P+T, D]
        out = self.decoder(inputs_embeds=embeds, use_cache=True, output_attentions=True, logits_to_keep=1)
        return out.logits[:, -1], _prefix_attention(out.attentions, prefix.shape[1]), _flatten_cache(out)

    def decode_step(self, tokens: torch.Tensor, past: tuple[torch.Tensor, ...]):
        """One token after a cached sequence.

        tokens: [B, 1]; past: (key_0, value_0, ...) each [B, H, T_past, hd] -> (logits [B, V],
        prefix_attention [B, P], present: each [B, H, T_past+1, hd]).
        """
        from transformers import DynamicCache

        cache = DynamicCache(ddp_cache_data=list(zip(past[0::2], past[1::2], strict=True)), config=self.decoder.config)
        out = self.decoder(input_ids=tokens, use_cache=True, output_attentions=True, **{self.cache_keyword: cache})
        attention = _prefix_attention(out.attentions, self.config.prefix_length)
        return out.logits[:, -1], attention, _flatten_cache(out)

    @torch.no_grad()
    def generate(
        self,
        frames: torch.Tensor,
        speed: torch.Tensor,
        prompt: list[int],
        eos_id: int,
        max_new_tokens: int | None = None,
        settings: torch.Tensor | None = None,
    ) -> list[list[int]]:
        """Greedy decoding in torch with the key/value cache (the reference the ONNX runtime must match).

        frames: [B, k, 3, H, W] float in [0, 1]; speed: [B, k]; prompt: the ids every clip starts
        from (:meth:`DrivingTokenizer.prompt`); settings: [B, 2] or None -> per clip the
        generated ids, ``<eos>`` excluded.
        """
        limit = self.config.max_new_tokens if max_new_tokens is None else max_new_tokens
        prefix, _ = self.prefix(frames, speed, settings)  # [B, P, D]
        tokens = torch.tensor([prompt] * len(prefix), dtype=torch.int64, device=prefix.device)  # [B, T0]
        logits, _, past = self.decode_full(prefix, tokens)
        out: list[list[int]] = [[] for _ in range(len(prefix))]
        done = [False] * len(prefix)
        for step in range(limit):
            chosen = logits.argmax(dim=-1)  # [B]
            for row, token in enumerate(chosen.tolist()):
                if not done[row]:
                    done[row] = token == eos_id
                    if not done[row]:
                        out[row].append(token)
            if all(done) or step == limit - 1:
                break
            logits, _, past = self.decode_step(chosen[:, None], past)
        return out


class TorchBackend:
    """The model as :mod:`vfm.plugins.driving.decode` runs it (its ``Backend``): numpy in, numpy out.

    Decodes a training run before it is exported, and is the reference the ONNX graphs are checked against.
    """

    def __init__(self, model: CommentaryModel):
        self.model = model.eval()

    @staticmethod
    def _tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array))

    @torch.no_grad()
    def encode(self, frames: np.ndarray, speed: np.ndarray, settings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """frames [B, k, 3, H, W], speed [B, k], settings [B, 2] -> (prefix [B, P, D], saliency [B, k, G, G])."""
        prefix, saliency = self.model.prefix(
            self._tensor(frames), self._tensor(speed), self._tensor(settings), with_saliency=True
        )
        return prefix.numpy(), saliency.numpy()

    @torch.no_grad()
    def full(
        self, prefix: np.ndarray, tokens: np.ndarray, with_cache: bool
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray] | None]:
        """prefix [B, P, D], tokens [B, T] -> (logits [B, V], prefix_attention [B, P], cache or None)."""
        logits, attention, present = self.model.decode_full(self._tensor(prefix), self._tensor(tokens))
        return logits.numpy(), attention.numpy(), [p.numpy() for p in present] if with_cache else None

    @torch.no_grad()
    def step(self, tokens: np.ndarray, past: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """tokens [B, 1], past: each [B, H, T, hd] -> (logits, prefix_attention, cache with T+1)."""
        logits, attention, present = self.model.decode_step(self._tensor(tokens), tuple(self._tensor(p) for p in past))
        return logits.numpy(), attention.numpy(), [p.numpy() for p in present]


def write_decoding_settings(model: CommentaryModel, folder: str | Path) -> Path:
    """Write ``driving_model.json``, what :class:`vfm.plugins.driving.decode.CommentaryRuntime` reads
    beside the model (its ONNX graphs or its torch weights)."""
    cfg = model.config
    return atomic_write_json(
        Path(folder) / SETTINGS_FILE,
        {
            "format": SETTINGS_FORMAT,
            "frames": cfg.frames,
            "image_size": cfg.image_size,
            "grid": cfg.grid,
            "slots": cfg.slots,
            "prefix_length": cfg.prefix_length,
            "layers": model.decoder.config.num_hidden_layers,
            "max_question_tokens": cfg.max_question_tokens,
            "max_new_tokens": cfg.max_new_tokens,
        },
    )


def save_commentary_model(model: CommentaryModel, tokenizer: DrivingTokenizer, folder: str | Path) -> list[Path]:
    """Write ``commentary.safetensors`` (tied weights once), ``commentary.json``, ``tokenizer.json`` and the
    decoding settings (``driving_model.json``), so that the folder also decodes through :class:`TorchBackend`."""
    folder = Path(folder)
    tensors, seen = {}, set()
    for name, value in model.state_dict().items():
        key = (value.data_ptr(), tuple(value.shape))
        if key not in seen:  # a tied copy (e.g. lm_head = token embeddings) is restored by the tie
            seen.add(key)
            tensors[name] = value.detach().cpu().contiguous()
    return [
        atomic_write_bytes(folder / WEIGHTS_FILE, save(tensors)),
        atomic_write_json(folder / CONFIG_FILE, {"format": MODEL_FORMAT, "config": asdict(model.config)}),
        tokenizer.save(folder / TOKENIZER_FILE),
        write_decoding_settings(model, folder),
    ]


def _without_motion(config: dict, path: Path) -> dict:
    """A stored config without the removed ``motion`` option: models written before its removal say
    ``"motion": false`` (read as before); one trained with motion is refused."""
    config = dict(config)
    if config.pop("motion", False):
        raise VfmError(
            "the model reads frame differences (motion), an option this version no longer has",
            where=str(path),
            fix="retrain the model with this version of vfm",
        )
    return config


def load_commentary_model(folder: str | Path) -> tuple[CommentaryModel, DrivingTokenizer]:
    """The model (eval mode) and tokenizer that :func:`save_commentary_model` wrote into ``folder``."""
    folder = Path(folder)
    fix = "pass the model/ folder of a driving training run"
    try:
        info = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        state = load_file(folder / WEIGHTS_FILE)
    except (OSError, json.JSONDecodeError, SafetensorError) as err:
        raise VfmError(
            f"cannot read the commentary model: {str(err).splitlines()[0]}", where=str(folder), fix=fix
        ) from None
    if info.get("format") != MODEL_FORMAT:
        raise VfmError(f"not a driving commentary model (format {info.get('format')!r})", where=str(folder), fix=fix)
    model = CommentaryModel(CommentaryConfig(**_without_motion(info["config"], folder / CONFIG_FILE)))
    result = model.load_state_dict(state, strict=False)
    tied = {
        name
        for name, value in model.state_dict().items()
        if any(
            value.data_ptr() == other.data_ptr()
            for key, other in model.state_dict().items()
            if key != name and key in state
        )
    }
    missing = sorted(set(result.missing_keys) - tied)
    if missing or result.unexpected_keys:
        raise VfmError(
            f"weights do not match the config: missing {missing[:3]}, unexpected {result.unexpected_keys[:3]}",
            where=str(folder / WEIGHTS_FILE),
            fix=fix,
        )
    return model.eval(), DrivingTokenizer.load(folder / TOKENIZER_FILE)
