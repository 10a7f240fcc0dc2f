"""DragPD: point-drag image editing within the diffusion prior.

DragDiffusion-style latent optimisation on Stable Diffusion 1.5 with
directionally-weighted point tracking (DWPT). The public API::

    from dragpd import DragConfig, DragPoints, drag, invert, denoise

    inversion = invert(unet, latent, conditioning)            # DDIM to t* = 681
    result = drag(unet, inversion, points, DragConfig())       # optimise z*
    edited = denoise(unet, result.latent, inversion)           # back to a clean latent

This package never imports ComfyUI; the node pack around it does.
"""

from .config import MODEL_PRESETS, DragConfig
from .drag import DragResult, DragStep, drag, editable_region
from .inversion import Inversion, denoise, invert, predict_clean
from .points import BrushStroke, DragPoints, rasterize_strokes
from .tracking import track_points

__version__ = "0.1.0"

__all__ = [
    "MODEL_PRESETS",
    "BrushStroke",
    "DragConfig",
    "DragPoints",
    "DragResult",
    "DragStep",
    "Inversion",
    "denoise",
    "drag",
    "editable_region",
    "invert",
    "predict_clean",
    "rasterize_strokes",
    "track_points",
]
