"""Procedural scenes of coloured shapes with captions: ground truth for every edit."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["COLORS", "KINDS", "Scene", "caption_for", "make_scene", "render_scene"]

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 30),
    "purple": (140, 50, 180),
    "orange": (240, 130, 20),
}
KINDS = ("circle", "square", "triangle")
SUPERSAMPLE = 4  # render at 4× and downsample: anti-aliased edges


@dataclass(frozen=True)
class Scene:
    """One scene: the image, its caption and where every shape is.

    ``shapes`` holds dicts with ``"kind"``, ``"color"`` (a name of :data:`COLORS`),
    ``"rgb"`` (0–255 triple), ``"center"`` ((x, y) px, pixel centres at integers) and
    ``"size"`` (px: diameter, side, or triangle height).
    """

    image: Image.Image
    caption: str
    shapes: list[dict] = field(default_factory=list)
    background: dict = field(default_factory=dict)


def caption_for(shapes: list[dict]) -> str:
    """ "a red circle and an orange square" """
    return " and ".join(
        f"{'an' if s['color'][0] in 'aeiou' else 'a'} {s['color']} {s['kind']}" for s in shapes
    )


def _background(rng: np.random.Generator, size: int) -> dict:
    hue = rng.uniform(0, 1)
    base = np.array(_hsv_to_rgb(hue, rng.uniform(0.05, 0.25), rng.uniform(0.75, 0.95)))
    return {
        "base": (base * 255).tolist(),
        "gradient": rng.uniform(-25, 25, size=(2, 3)).tolist(),  # per x and y, per channel
        "waves": [
            {
                "freq": rng.uniform(1, 4, size=2).tolist(),
                "phase": float(rng.uniform(0, 2 * math.pi)),
                "amp": rng.uniform(3, 10, size=3).tolist(),
            }
            for _ in range(3)
        ],
    }


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


def _paint_background(spec: dict, size: int) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) / size  # in [0, 1)
    image = np.broadcast_to(np.array(spec["base"]), (size, size, 3)).copy()
    gx, gy = np.array(spec["gradient"])
    image += (xs - 0.5)[..., None] * gx + (ys - 0.5)[..., None] * gy
    for wave in spec["waves"]:
        fx, fy = wave["freq"]
        phase = np.sin(2 * math.pi * (fx * xs + fy * ys) + wave["phase"])
        image += phase[..., None] * np.array(wave["amp"])
    return np.clip(image, 0, 255)


def _shape_polygon(kind: str, cx: float, cy: float, size: float) -> list[tuple[float, float]]:
    half = size / 2
    if kind == "square":
        return [
            (cx - half, cy - half),
            (cx + half, cy - half),
            (cx + half, cy + half),
            (cx - half, cy + half),
        ]
    if kind == "triangle":  # centroid at (cx, cy), height `size`
        top = cy - 2 * size / 3
        bottom = cy + size / 3
        half_base = size / math.sqrt(3)
        return [(cx, top), (cx + half_base, bottom), (cx - half_base, bottom)]
    raise ValueError(f"unknown polygon kind {kind!r}")


def render_scene(shapes: list[dict], background: dict, size: int = 64) -> Image.Image:
    """Paint the background and the shapes (in list order) at ``size`` × ``size``."""
    big = size * SUPERSAMPLE
    canvas = Image.fromarray(_paint_background(background, big).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for shape in shapes:
        # pixel centre (c) of the small image spans [c, c + 1) · S in the big one
        cx, cy = ((np.array(shape["center"]) + 0.5) * SUPERSAMPLE).tolist()
        extent = shape["size"] * SUPERSAMPLE
        color = tuple(shape["rgb"])
        if shape["kind"] == "circle":
            r = extent / 2
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
        else:
            draw.polygon(_shape_polygon(shape["kind"], cx, cy, extent), fill=color)
    return canvas.resize((size, size), Image.Resampling.BOX)


def make_scene(seed: int, size: int = 64, max_shapes: int = 2) -> Scene:
    """A deterministic scene: 1–``max_shapes`` non-overlapping shapes of distinct colours."""
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, max_shapes + 1))
    colors = rng.choice(list(COLORS), size=count, replace=False)
    shapes: list[dict] = []
    for color in colors:
        for _ in range(100):
            extent = float(rng.uniform(0.19, 0.3) * size)
            margin = extent / 2 + 2
            center = rng.uniform(margin, size - 1 - margin, size=2)
            if all(
                np.hypot(*(center - np.array(s["center"]))) > (extent + s["size"]) / 2 + 3
                for s in shapes
            ):
                break
        kind = str(rng.choice(KINDS))
        shapes.append(
            {
                "kind": kind,
                "color": str(color),
                "rgb": COLORS[str(color)],
                "center": (float(center[0]), float(center[1])),
                "size": extent,
            }
        )
    background = _background(rng, size)
    return Scene(render_scene(shapes, background, size), caption_for(shapes), shapes, background)
