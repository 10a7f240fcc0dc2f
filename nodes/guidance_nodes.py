"""DragPD PPR Loss and DragPD CLIP Reward: guidance terms for the DWPT Drag Sampler."""

from __future__ import annotations

from dragpd.guidance import ClipTerm, PriorTerm

from . import comfy_bridge as bridge

GUIDANCE_IN = ("DRAGPD_GUIDANCE", {"tooltip": "Terms from another guidance node to add to."})


class DragPDPPRLoss:
    DESCRIPTION = (
        "Prior-preservation regularisation: keeps the dragged latent's statistics near the "
        "inverted latent's, so long drags stay inside what the model can draw. Moving "
        "content costs nothing; drifting brighter, flatter or noisier does."
    )
    CATEGORY = "DragPD"
    FUNCTION = "build"
    RETURN_TYPES = ("DRAGPD_GUIDANCE",)
    RETURN_NAMES = ("guidance",)
    OUTPUT_TOOLTIPS = ("Guidance terms for the DWPT Drag Sampler (chainable).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "weight": (
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": 0.0,
                        "max": 1000.0,
                        "step": 0.1,
                        "tooltip": "Strength of the term; 0 turns it off.",
                    },
                ),
                "window": (
                    ["global", "region"],
                    {
                        "tooltip": "Pool statistics over the whole "
                        "latent, or over the editable region."
                    },
                ),
                "mode": (
                    ["reference", "noise"],
                    {
                        "tooltip": "Compare with the inverted "
                        "latent, or the implied noise with N(0, 1)."
                    },
                ),
            },
            "optional": {"guidance": GUIDANCE_IN},
        }

    def build(self, weight, window, mode, guidance=None):
        return ((*(guidance or ()), PriorTerm(weight, mode, window)),)


class DragPDCLIPReward:
    DESCRIPTION = (
        "Text-conditioned drags: rewards the predicted image for matching an edit text under "
        "an open_clip model (directional from a source text when given). Needs open_clip "
        f"weights in models/{bridge.CLIP_FOLDER}/ and a VAE on the sampler."
    )
    CATEGORY = "DragPD"
    FUNCTION = "build"
    RETURN_TYPES = ("DRAGPD_GUIDANCE",)
    RETURN_NAMES = ("guidance",)
    OUTPUT_TOOLTIPS = ("Guidance terms for the DWPT Drag Sampler (chainable).",)

    @classmethod
    def INPUT_TYPES(cls):
        files = bridge.clip_files() or [f"(put open_clip weights in models/{bridge.CLIP_FOLDER})"]
        return {
            "required": {
                "weights_file": (
                    files,
                    {"tooltip": f"open_clip checkpoint from models/{bridge.CLIP_FOLDER}/."},
                ),
                "architecture": (
                    "STRING",
                    {
                        "default": "ViT-B-32",
                        "tooltip": "Its open_clip architecture, e.g. "
                        "ViT-B-32, or ViT-B-32-quickgelu for OpenAI's "
                        "original weights.",
                    },
                ),
                "edit_text": (
                    "STRING",
                    {
                        "default": "",
                        "multiline": True,
                        "tooltip": "What the result should look like.",
                    },
                ),
                "weight": (
                    "FLOAT",
                    {
                        "default": ClipTerm.weight,
                        "min": 0.0,
                        "max": 1000.0,
                        "step": 0.1,
                        "tooltip": "Strength of the reward; 0 turns it off.",
                    },
                ),
                "every": (
                    "INT",
                    {
                        "default": ClipTerm.every,
                        "min": 1,
                        "max": 100,
                        "tooltip": "Apply it every k-th iteration (each costs a "
                        "decode and its backward).",
                    },
                ),
                "iterations": (
                    "INT",
                    {
                        "default": ClipTerm.iterations,
                        "min": 0,
                        "max": 500,
                        "tooltip": "Iterations of text edit after the drag, holding what "
                        "moved in place; 0 applies the reward during the drag instead.",
                    },
                ),
            },
            "optional": {
                "source_text": (
                    "STRING",
                    {
                        "default": "",
                        "multiline": True,
                        "tooltip": "What the image shows now; makes the reward directional.",
                    },
                ),
                "guidance": GUIDANCE_IN,
            },
        }

    def build(
        self,
        weights_file,
        architecture,
        edit_text,
        weight,
        every,
        iterations=ClipTerm.iterations,
        source_text="",
        guidance=None,
    ):
        if not edit_text.strip():
            raise ValueError("the CLIP Reward needs an edit text describing the result.")
        bridge.clip_path(weights_file)  # fail here, naming the folder, if it is missing
        term = ClipTerm(
            weights_file,
            architecture.strip(),
            edit_text.strip(),
            source_text.strip() or None,
            weight,
            every,
            iterations,
        )
        return ((*(guidance or ()), term),)
