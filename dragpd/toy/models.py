"""The toy world's models: the same classes as SD1.5's, at a size a CPU trains in minutes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from torch import nn

from ..config import MODEL_PRESETS
from .tokenizer import ToyTokenizer

__all__ = ["TOY_PRESET", "WEIGHTS_DIR", "ToyModels", "build_models", "load_toy_models"]

WEIGHTS_DIR = Path(__file__).parent / "weights"
IMAGE_SIZE = 64  # 64×64 images → 16×16×4 latents

VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": (16, 32, 64),
    "down_block_types": ("DownEncoderBlock2D",) * 3,
    "up_block_types": ("UpDecoderBlock2D",) * 3,
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "sample_size": IMAGE_SIZE,
}
UNET_CONFIG = {
    "sample_size": IMAGE_SIZE // 4,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 1,
    "block_out_channels": (32, 64, 128),
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 64,
    "attention_head_dim": 8,
    "norm_num_groups": 16,
}
TEXT_CONFIG = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "max_position_embeddings": 16,
}
CLIP_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {
        "image_size": IMAGE_SIZE,
        "layers": 3,
        "width": 96,
        "patch_size": 8,
        "head_width": 32,
    },
    "text_cfg": {"context_length": 16, "width": 64, "heads": 2, "layers": 2},
}

TOY_PRESET = MODEL_PRESETS["toy"]  # model-dependent DragConfig knobs of the toy UNet


@dataclass
class ToyModels:
    """The toy world: VAE, UNet, text encoder + tokenizer, and a CLIP for the reward."""

    vae: AutoencoderKL
    unet: UNet2DConditionModel
    text_encoder: nn.Module
    tokenizer: ToyTokenizer
    clip: nn.Module

    @torch.no_grad()
    def encode_prompt(self, text: str) -> torch.Tensor:
        """``(1, 16, 64)`` hidden states of the toy text encoder."""
        return self.text_encoder(self.tokenizer([text])).last_hidden_state


def build_models(seed: int = 0, scaling_factor: float = 1.0) -> ToyModels:
    """Fresh toy models with seeded random weights (the training script's start)."""
    import open_clip
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = ToyTokenizer()
    torch.manual_seed(seed)
    vae = AutoencoderKL(**VAE_CONFIG, scaling_factor=scaling_factor)
    unet = UNet2DConditionModel(**UNET_CONFIG)
    text_config = CLIPTextConfig(
        vocab_size=tokenizer.vocab_size,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=tokenizer.vocab_size - 1,
        **TEXT_CONFIG,
    )
    text_encoder = CLIPTextModel(text_config)
    clip_config = json.loads(json.dumps(CLIP_CONFIG))
    clip_config["text_cfg"]["vocab_size"] = tokenizer.vocab_size
    clip = open_clip.CLIP(**clip_config)
    return ToyModels(vae, unet, text_encoder.eval(), tokenizer, clip)


def load_toy_models(weights_dir: str | Path = WEIGHTS_DIR) -> ToyModels:
    """The shipped, trained toy models (float32, CPU, eval mode)."""
    from safetensors.torch import load_file

    weights_dir = Path(weights_dir)
    meta_path = weights_dir / "toy.json"
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"no toy weights in {weights_dir}; train them with `python -m dragpd.toy.train`."
        )
    meta = json.loads(meta_path.read_text())
    models = build_models(seed=0, scaling_factor=meta["scaling_factor"])
    for name in ("vae", "unet", "text_encoder", "clip"):
        state = {
            k: v.float() for k, v in load_file(str(weights_dir / f"{name}.safetensors")).items()
        }
        getattr(models, name).load_state_dict(state)
        getattr(models, name).eval().requires_grad_(False)
    return models
