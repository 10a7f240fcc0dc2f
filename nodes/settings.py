"""DragPD Settings: the expert knobs, in one optional node."""

from __future__ import annotations

from dragpd import DragConfig

_DEFAULTS = DragConfig.for_model("sd15")


class DragPDSettings:
    DESCRIPTION = (
        "Expert knobs of the drag loop for the DWPT Drag Sampler: feature block, supervision "
        "resolution, the default editable region, latent blending, mutual self-attention, "
        "GoodDrag's feature anchoring, tracking radii. Defaults are DragPD's for SD1.5; "
        "leave this node out to use them."
    )
    CATEGORY = "DragPD"
    FUNCTION = "build"
    RETURN_TYPES = ("DRAGPD_SETTINGS",)
    RETURN_NAMES = ("settings",)
    OUTPUT_TOOLTIPS = ("Settings for the DWPT Drag Sampler.",)

    @classmethod
    def INPUT_TYPES(cls):
        d = _DEFAULTS
        return {
            "required": {
                "feature_block": (
                    "INT",
                    {
                        "default": d.feature_block,
                        "min": 0,
                        "max": 3,
                        "tooltip": "UNet up-block whose output is the feature map (SD1.5: 2).",
                    },
                ),
                "supervision_scale": (
                    "FLOAT",
                    {
                        "default": d.supervision_scale,
                        "min": 0.125,
                        "max": 1.0,
                        "step": 0.125,
                        "tooltip": "Feature-map size as a fraction of the image size.",
                    },
                ),
                "motion_radius": (
                    "INT",
                    {
                        "default": d.motion_radius,
                        "min": 0,
                        "max": 8,
                        "tooltip": "Motion-supervision patch radius r_m.",
                    },
                ),
                "tracking_radius": (
                    "INT",
                    {
                        "default": d.tracking_radius,
                        "min": 1,
                        "max": 16,
                        "tooltip": "Point-tracking window radius r_p.",
                    },
                ),
                "background_weight": (
                    "FLOAT",
                    {
                        "default": d.background_weight,
                        "min": 0.0,
                        "max": 10.0,
                        "step": 0.01,
                        "tooltip": "Weight keeping the image outside the region (λ).",
                    },
                ),
                "default_region": (
                    "BOOLEAN",
                    {
                        "default": d.default_region,
                        "tooltip": "With no painted mask, edit only around the drag paths.",
                    },
                ),
                "default_region_margin": (
                    "FLOAT",
                    {
                        "default": d.default_region_margin,
                        "min": 0.01,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "Width of that region, as a fraction of the short side.",
                    },
                ),
                "latent_blending": (
                    "BOOLEAN",
                    {
                        "default": d.latent_blending,
                        "tooltip": "Reset the latent outside the region after each step.",
                    },
                ),
                "anchor_original_features": (
                    "BOOLEAN",
                    {
                        "default": d.anchor_original_features,
                        "tooltip": "GoodDrag: pull toward the original features at the "
                        "original handles.",
                    },
                ),
                "mutual_attention": (
                    "BOOLEAN",
                    {
                        "default": d.mutual_attention,
                        "tooltip": "Final denoise reads the original image's keys and values.",
                    },
                ),
                "mutual_attention_start": (
                    "INT",
                    {
                        "default": d.mutual_attention_start,
                        "min": 0,
                        "max": 16,
                        "tooltip": "First self-attention layer that shares (SD1.5: 10).",
                    },
                ),
                "reach_distance": (
                    "FLOAT",
                    {
                        "default": d.reach_distance,
                        "min": 0.0,
                        "max": 16.0,
                        "step": 0.5,
                        "tooltip": "A handle this close (feature cells) to its target has arrived.",
                    },
                ),
            }
        }

    def build(self, **knobs):
        DragConfig(**knobs)  # validate now, with DragConfig's messages
        return (dict(knobs),)
