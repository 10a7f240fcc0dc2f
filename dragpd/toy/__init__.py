"""The toy world: procedural scenes with ground truth and a tiny trained latent diffusion model.

``make_scene(seed)`` gives an image of coloured shapes, its caption and where every shape
is; ``load_toy_models()`` the shipped VAE, UNet, text encoder and CLIP trained on such
scenes by ``python -m dragpd.toy.train``.
"""

from .models import TOY_PRESET, ToyModels, load_toy_models
from .scenes import COLORS, KINDS, Scene, make_scene
from .tokenizer import ToyTokenizer

__all__ = [
    "COLORS",
    "KINDS",
    "TOY_PRESET",
    "Scene",
    "ToyModels",
    "ToyTokenizer",
    "load_toy_models",
    "make_scene",
]
