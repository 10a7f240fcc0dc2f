"""DragPD DWPT Drag Sampler: optimise the inverted latent, then denoise it."""

from __future__ import annotations

import dataclasses

import torch
from PIL import Image

import dragpd
from dragpd.guidance import apply_guidance
from dragpd.overlay import draw_drag
from dragpd.points import DragPoints, scale_points
from dragpd.reward import ClipReward

from . import comfy_bridge as bridge

PREVIEW_EVERY = 5


class DragPDSampler:
    DESCRIPTION = (
        "The drag: moves the content at each handle to its target by optimising the inverted "
        "latent (motion supervision + DWPT point tracking, plus PPR and CLIP terms when "
        "guidance is connected), then denoises with mutual self-attention. Returns a plain "
        "LATENT for VAE Decode and where the handles ended."
    )
    CATEGORY = "DragPD"
    FUNCTION = "sample"
    RETURN_TYPES = ("LATENT", "DRAGPD_POINTS")
    RETURN_NAMES = ("latent", "points")
    OUTPUT_TOOLTIPS = (
        "The edited image's latent (decode with VAE Decode).",
        "The pairs with each handle at the position it ended.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        d = dragpd.DragConfig.for_model("sd15")
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The same MODEL the inversion was made with."}),
                "inversion": ("DRAGPD_INVERSION", {"tooltip": "From DragPD DDIM Invert."}),
                "points": ("DRAGPD_POINTS", {"tooltip": "From DragPD Point Picker."}),
                "iterations": (
                    "INT",
                    {
                        "default": d.max_iterations,
                        "min": 0,
                        "max": 1000,
                        "tooltip": "Optimisation iterations at most (it stops "
                        "early when every handle arrives).",
                    },
                ),
                "lr": (
                    "FLOAT",
                    {
                        "default": d.lr,
                        "min": 1e-4,
                        "max": 1.0,
                        "step": 0.001,
                        "tooltip": "Adam learning rate on the latent.",
                    },
                ),
                "dwpt_beta": (
                    "FLOAT",
                    {
                        "default": d.dwpt_beta,
                        "min": 0.0,
                        "max": 10.0,
                        "step": 0.05,
                        "tooltip": "Direction weight of point tracking; 0 is "
                        "nearest-neighbour (DragDiffusion).",
                    },
                ),
                "seed": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 2**31 - 1,
                        "tooltip": "The drag is deterministic; change this to run the "
                        "node again with the same inputs.",
                    },
                ),
            },
            "optional": {
                "guidance": ("DRAGPD_GUIDANCE", {"tooltip": "PPR Loss / CLIP Reward terms."}),
                "mask": (
                    "MASK",
                    {
                        "tooltip": "Editable region; overrides the picker's strokes "
                        "(e.g. from SAM or the mask editor)."
                    },
                ),
                "vae": ("VAE", {"tooltip": "Needed by the CLIP Reward (to see the image)."}),
                "settings": ("DRAGPD_SETTINGS", {"tooltip": "From DragPD Settings."}),
            },
        }

    def sample(
        self,
        model,
        inversion,
        points,
        iterations,
        lr,
        dwpt_beta,
        seed,
        guidance=None,
        mask=None,
        vae=None,
        settings=None,
    ):
        key = bridge.model_key(model)
        if inversion.model_key != key:
            raise ValueError(
                "this inversion was made with a different MODEL; connect the same "
                "MODEL (with the same LoRA) to DDIM Invert and to the sampler."
            )
        config = dragpd.DragConfig.for_model("sd15", **(settings or {}))
        config = config.replace(max_iterations=iterations, lr=lr, dwpt_beta=dwpt_beta)
        config, clip_term = apply_guidance(config, guidance)
        if config.autocast_dtype is None:
            config = config.replace(autocast_dtype=bridge.autocast_dtype(model))
        unet = bridge.unet_for(model)
        device = next(unet.parameters()).device
        reward = decoder = None
        if clip_term is not None and config.clip_weight > 0:
            if vae is None:
                raise ValueError("the CLIP Reward needs the sampler's vae input connected.")
            clip_model, tokenizer = bridge.load_clip(clip_term.weights_file, clip_term.architecture)
            reward = ClipReward.from_open_clip(
                clip_model, tokenizer, clip_term.text, clip_term.source_text
            )
            decoder = bridge.vae_decoder(vae, model)
        user_mask = _user_mask(mask, points)
        on_device = dataclasses.replace(
            inversion,
            latent=inversion.latent.to(device),
            trajectory=inversion.trajectory.to(device),
            conditioning=inversion.conditioning.to(device),
        )
        total = max(1, iterations) + len(inversion.timesteps)
        progress = bridge.Progress(total)

        def on_step(step, latent):
            preview = None
            if vae is not None and step.iteration % PREVIEW_EVERY == 0:
                clean = dragpd.predict_clean(unet, latent, on_device)
                with torch.no_grad():
                    image = bridge.decode_images(vae, bridge.latent_out(model, clean)["samples"])
                frame = Image.fromarray((image[0].clamp(0, 1).cpu().numpy() * 255).astype("uint8"))
                size = frame.size[::-1]
                preview = draw_drag(
                    frame,
                    scale_points(step.handles, points.image_size, size),
                    scale_points(points.targets, points.image_size, size),
                )
            progress.update(step.iteration + 1, preview)

        self.progress = progress  # lets tests see what was reported

        result = dragpd.drag(
            unet,
            on_device,
            points,
            config,
            mask=user_mask,
            callback=on_step,
            reward=reward,
            decoder=decoder,
        )
        start = config.mutual_attention_start if config.mutual_attention else None
        edited = dragpd.denoise(
            unet,
            result.latent,
            on_device,
            start,
            callback=lambda step, n: progress.update(max(1, iterations) + step),
        )
        moved = DragPoints(result.handles, points.targets, points.image_size, mask=points.mask)
        return (bridge.latent_out(model, edited), moved)


def _user_mask(mask, points: DragPoints):
    """A MASK input as an (H, W) bool region; None when absent or empty."""
    if mask is None:
        return None
    mask = mask.reshape(-1, mask.shape[-2], mask.shape[-1])[0]
    if float(mask.max()) <= 0:
        return None
    if tuple(mask.shape) != points.image_size:
        mask = torch.nn.functional.interpolate(
            mask[None, None].float(), size=points.image_size, mode="nearest"
        )[0, 0]
    return mask > 0.5
