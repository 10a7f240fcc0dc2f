"""DragPD DDIM Invert: the image's latent, deterministically noised to the edit timestep."""

from __future__ import annotations

import dataclasses

import dragpd

from . import comfy_bridge as bridge


class DragPDInvert:
    DESCRIPTION = (
        "DDIM-inverts the image's latent to the timestep where the drag happens (50 steps "
        "at strength 0.7 invert to t = 681), keeping the path for the final denoise. Use "
        "the same MODEL (with its LoRA) here and in the DWPT Drag Sampler."
    )
    CATEGORY = "DragPD"
    FUNCTION = "invert"
    RETURN_TYPES = ("DRAGPD_INVERSION",)
    RETURN_NAMES = ("inversion",)
    OUTPUT_TOOLTIPS = ("The inverted latent and its trajectory, for the DWPT Drag Sampler.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The MODEL, usually with the per-image LoRA."}),
                "latent": ("LATENT", {"tooltip": "The image to edit, from VAE Encode."}),
                "conditioning": ("CONDITIONING", {"tooltip": "The prompt describing the image."}),
                "steps": (
                    "INT",
                    {
                        "default": 50,
                        "min": 2,
                        "max": 1000,
                        "tooltip": "DDIM steps over the whole schedule.",
                    },
                ),
                "strength": (
                    "FLOAT",
                    {
                        "default": 0.7,
                        "min": 0.01,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "How far to invert: the last strength × "
                        "steps steps. Higher allows bigger changes.",
                    },
                ),
            }
        }

    def invert(self, model, latent, conditioning, steps, strength):
        unet = bridge.unet_for(model)
        device = next(unet.parameters()).device
        z = bridge.latent_in(model, latent["samples"]).to(device)
        cond = bridge.conditioning_tensor(conditioning).to(device)
        progress = bridge.Progress(round(steps * strength))
        inversion = dragpd.invert(
            unet,
            z,
            cond,
            steps,
            strength,
            model_key=bridge.model_key(model),
            callback=lambda step, total: progress.update(step),
        )
        store = bridge.storage_device()
        return (
            dataclasses.replace(
                inversion,
                latent=inversion.latent.to(store),
                trajectory=inversion.trajectory.to(store),
                conditioning=inversion.conditioning.to(store),
            ),
        )
