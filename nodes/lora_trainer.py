"""DragPD LoRA Trainer: fit a per-image LoRA and return it as ordinary MODEL patches."""

from __future__ import annotations

import logging

import dragpd
from dragpd.lora import export_comfy_lora, lora_cache_key, remove_lora, train_lora

from . import comfy_bridge as bridge

logger = logging.getLogger("dragpd.nodes")

_trained: dict[str, dict] = {}  # cache key → LoRA state (a few recent images)
CACHE_SIZE = 4


class DragPDLoraTrainer:
    DESCRIPTION = (
        "Fine-tunes a small LoRA on this one image (DragDiffusion's recipe) so the drag keeps "
        "its identity, and returns the MODEL with that LoRA applied like any LoRA loader "
        "would (a KSampler can use it too). The same image, prompt, model and settings are "
        "never trained twice. Optionally saves the LoRA into ComfyUI's loras folder."
    )
    CATEGORY = "DragPD"
    FUNCTION = "train"
    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The input MODEL with the per-image LoRA applied as patches.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "An SD1.5-family model. It is not modified."}),
                "latent": (
                    "LATENT",
                    {"tooltip": "The image to edit, from VAE Encode (one image)."},
                ),
                "conditioning": (
                    "CONDITIONING",
                    {"tooltip": "The prompt describing the image, from CLIP Text Encode."},
                ),
                "steps": (
                    "INT",
                    {
                        "default": 80,
                        "min": 0,
                        "max": 1000,
                        "tooltip": "Training steps (DragDiffusion: 80). 0 skips the LoRA.",
                    },
                ),
                "rank": (
                    "INT",
                    {
                        "default": 16,
                        "min": 1,
                        "max": 128,
                        "tooltip": "LoRA rank on the attention projections.",
                    },
                ),
                "lr": (
                    "FLOAT",
                    {
                        "default": 5e-4,
                        "min": 1e-6,
                        "max": 1e-2,
                        "step": 1e-5,
                        "tooltip": "AdamW learning rate.",
                    },
                ),
                "seed": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 2**31 - 1,
                        "tooltip": "Seeds the training noise.",
                    },
                ),
            },
            "optional": {
                "save_name": (
                    "STRING",
                    {
                        "default": "",
                        "tooltip": "If set, also save the "
                        "LoRA as <name>.safetensors in the loras folder.",
                    },
                ),
            },
        }

    def train(self, model, latent, conditioning, steps, rank, lr, seed, save_name=""):
        if steps == 0:
            return (model,)
        config = dragpd.DragConfig(lora_steps=steps, lora_rank=rank, lora_lr=lr)
        z = bridge.latent_in(model, latent["samples"])
        cond = bridge.conditioning_tensor(conditioning)
        key = lora_cache_key(z, cond, bridge.model_key(model), config, seed)
        if key not in _trained:
            unet = bridge.unet_for(model)
            device = next(unet.parameters()).device
            progress = bridge.Progress(steps)
            try:
                train_lora(
                    unet,
                    z.to(device),
                    cond.to(device),
                    config,
                    seed=seed,
                    callback=lambda step, total, loss: progress.update(step),
                )
                _trained[key] = export_comfy_lora(unet)
            finally:
                remove_lora(unet)
            while len(_trained) > CACHE_SIZE:
                _trained.pop(next(iter(_trained)))
        else:
            logger.info("DragPD LoRA Trainer: this image was trained already; reusing it.")
        state = _trained[key]
        if save_name.strip():
            path = bridge.save_lora(state, save_name)
            logger.info("DragPD: saved the LoRA to %s", path)
        return (bridge.model_with_lora(model, state),)
