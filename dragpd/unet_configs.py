"""Architectures of the backbones DragPD knows, shipped so nothing is fetched from a hub."""

from __future__ import annotations

__all__ = ["SD15_TEXT_ENCODER", "SD15_UNET", "SD15_VAE"]

# Stable Diffusion 1.x UNet2DConditionModel (860 M parameters).
SD15_UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": (
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ),
    "up_block_types": (
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ),
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
}

# Stable Diffusion 1.x AutoencoderKL (84 M parameters), scaling factor 0.18215.
SD15_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}

# Stable Diffusion 1.x text encoder: the text tower of OpenAI's CLIP ViT-L/14 (123 M
# parameters), keyword arguments of transformers' CLIPTextConfig. The UNet reads its
# final layer's hidden states (after the final layer norm), (1, 77, 768).
SD15_TEXT_ENCODER = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "projection_dim": 768,
    "bos_token_id": 49406,  # <|startoftext|>
    "eos_token_id": 49407,  # <|endoftext|>, also the padding
    "pad_token_id": 49407,
}
