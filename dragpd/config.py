"""`DragConfig`: every knob of a drag edit, with its default and where it comes from."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["MODEL_PRESETS", "TEXT_EDIT_CLIP_WEIGHT", "DragConfig"]

# Knobs that depend on the backbone. SD1.5's values are DragDiffusion's.
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "sd15": {
        "feature_block": 2,  # up_blocks[2]: 640 channels at H/8
        "mutual_attention_start": 10,  # of 16 self-attention layers: the finest two up-blocks
        "lr": 0.01,
    },
    # The toy world's 16×16-latent UNet (dragpd.toy), chosen by `python -m dragpd bench toy`.
    "toy": {
        "feature_block": 1,  # up_blocks[1]: 64 channels at 16×16 (up_blocks[2] moved nothing)
        "supervision_scale": 1.0,  # 16² features → 64², the 4× DragDiffusion uses on SD1.5
        "mutual_attention_start": 3,  # of 7 self-attention layers: the up-blocks'
        "lr": 0.04,  # toy bench: 1.21 px vs 1.88 at 0.02 (10 px drags), 3.5 vs 6.4 (16 px)
        "reach_distance": 1.0,  # cells = px here: 2 stopped 2 px short of 10 px drags
    },
}


# The CLIP reward's weight for an edit text when the caller sets none (the pipeline, the
# CLIP Reward node): the toy bench's choice (README, "The toy world"); not measured on SD1.5.
TEXT_EDIT_CLIP_WEIGHT = 5.0


@dataclass(frozen=True)
class DragConfig:
    """Hyper-parameters of a drag edit. Defaults are DragPD's on SD1.5.

    Every addition to DragDiffusion has an "off" value; :meth:`dragdiffusion` sets them
    all off and reproduces DragDiffusion's loop. Model-dependent knobs come from
    :data:`MODEL_PRESETS` through :meth:`for_model`.
    """

    # --- DDIM inversion (DragDiffusion) ---
    num_inference_steps: int = 50  # DDIM steps over the whole schedule
    inversion_strength: float = 0.7  # invert the last round(0.7·50) = 35 steps, edit at t=681

    # --- features (model preset) ---
    feature_block: int = 2  # index into unet.up_blocks whose output is the feature map F
    supervision_scale: float = 0.5  # F is resized to (H, W)·scale of the image (256² for 512²)

    # --- latent optimisation (DragDiffusion) ---
    lr: float = 0.01  # Adam learning rate on the latent
    max_iterations: int = 80  # optimisation iterations at most
    motion_radius: int = 1  # r_m: motion-supervision patch radius, in supervision cells
    tracking_radius: int = 3  # r_p: point-tracking window radius, in supervision cells
    reach_distance: float = 2.0  # a handle within this many supervision cells has arrived
    background_weight: float = 0.1  # λ of the masked background term (0 = off)

    # --- DragPD additions (each has an "off" value) ---
    dwpt_beta: float = 0.3  # DWPT direction weight β (0 = nearest-neighbour tracking)
    default_region: bool = True  # without a user mask, edit only capsules around the paths
    default_region_margin: float = 0.15  # capsule radius as a fraction of min(H, W)
    latent_blending: bool = True  # reset the latent outside the region after each step
    anchor_original_features: bool = True  # GoodDrag: supervise toward original features

    # --- per-image LoRA (DragDiffusion) ---
    lora_rank: int = 16  # rank on to_q / to_k / to_v / to_out.0, lora_alpha = rank (scale 1)
    lora_steps: int = 80  # AdamW steps
    lora_lr: float = 5e-4  # AdamW learning rate
    lora_batch_size: int = 4  # copies of the image per step, each with fresh noise and t

    # --- PPR (DragPD; weight 0 = off) ---
    ppr_weight: float = 1.0  # w_ppr; toy bench: kept shapes' size on 16 px drags (0 = off)
    ppr_mode: str = "reference"  # "reference": stats of z vs z*; "noise": implied noise vs N(0,1)
    ppr_window: str = "global"  # pool statistics over "global" latent or the editable "region"

    # --- CLIP reward (DragPD; weight 0 = off; needs an edit text) ---
    clip_weight: float = 0.0  # w_clip: L_clip = -w_clip · R
    clip_every: int = 1  # apply the reward every k-th iteration (it costs a decoder backward)
    # iterations of text edit after the drag: the reward with background, PPR and a hold on
    # the moved content; 0 applies the reward during the drag instead
    clip_iterations: int = 20
    hold_weight: float = 1.0  # text phase: weight of the hold on the moved content's features

    # --- final denoise (DragDiffusion) ---
    mutual_attention: bool = True  # edited branch reads the reference branch's keys/values
    mutual_attention_start: int = 10  # first self-attention layer that shares (model preset)

    # --- numerics ---
    autocast_dtype: str | None = None  # e.g. "float16" or "bfloat16"; None = caller's dtype

    def __post_init__(self) -> None:
        checks = [
            (self.num_inference_steps >= 1, "num_inference_steps must be at least 1"),
            (0.0 < self.inversion_strength <= 1.0, "inversion_strength must be in (0, 1]"),
            (0.0 < self.supervision_scale <= 8.0, "supervision_scale must be in (0, 8]"),
            (self.lr > 0.0, "lr must be positive"),
            (self.max_iterations >= 0, "max_iterations must be >= 0"),
            (self.motion_radius >= 0, "motion_radius must be >= 0"),
            (self.tracking_radius >= 1, "tracking_radius must be >= 1"),
            (self.reach_distance >= 0.0, "reach_distance must be >= 0"),
            (self.background_weight >= 0.0, "background_weight must be >= 0 (0 is off)"),
            (self.dwpt_beta >= 0.0, "dwpt_beta must be >= 0 (0 is nearest neighbour)"),
            (self.default_region_margin > 0.0, "default_region_margin must be positive"),
            (self.mutual_attention_start >= 0, "mutual_attention_start must be >= 0"),
            (self.lora_rank >= 1, "lora_rank must be >= 1"),
            (self.lora_steps >= 0, "lora_steps must be >= 0"),
            (self.lora_lr > 0.0, "lora_lr must be positive"),
            (self.lora_batch_size >= 1, "lora_batch_size must be >= 1"),
            (self.ppr_weight >= 0.0, "ppr_weight must be >= 0 (0 is off)"),
            (self.ppr_mode in ("reference", "noise"), "ppr_mode must be 'reference' or 'noise'"),
            (self.ppr_window in ("global", "region"), "ppr_window must be 'global' or 'region'"),
            (self.clip_weight >= 0.0, "clip_weight must be >= 0 (0 is off)"),
            (self.clip_every >= 1, "clip_every must be >= 1"),
            (self.clip_iterations >= 0, "clip_iterations must be >= 0"),
            (self.hold_weight >= 0.0, "hold_weight must be >= 0"),
            (
                self.autocast_dtype in (None, "float16", "bfloat16"),
                "autocast_dtype must be None, 'float16' or 'bfloat16'",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"DragConfig: {message}.")

    @classmethod
    def for_model(cls, model: str = "sd15", **overrides: Any) -> DragConfig:
        """DragPD's defaults with a backbone's preset (see :data:`MODEL_PRESETS`) applied."""
        if model not in MODEL_PRESETS:
            raise ValueError(
                f"no preset for model {model!r}; known presets: {sorted(MODEL_PRESETS)}."
            )
        return cls(**{**MODEL_PRESETS[model], **overrides})

    @classmethod
    def dragdiffusion(cls, model: str = "sd15", **overrides: Any) -> DragConfig:
        """DragDiffusion's loop: NN tracking, no default region, no blending, no PPR, no CLIP."""
        baseline = {
            "dwpt_beta": 0.0,
            "default_region": False,
            "latent_blending": False,
            "anchor_original_features": False,
            "ppr_weight": 0.0,
            "clip_weight": 0.0,
        }
        return cls.for_model(model, **{**baseline, **overrides})

    def replace(self, **changes: Any) -> DragConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)
