"""Drawing handle → target arrows over images, for previews and comparisons."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image, ImageDraw
from torch import Tensor

__all__ = ["draw_drag", "side_by_side"]

HANDLE = (230, 30, 30)
TARGET = (30, 90, 230)
FINAL = (250, 200, 0)


def _scaled(point: Sequence[float], scale: float) -> tuple[float, float]:
    # (x, y) pixel centres → the centre of that pixel in the scaled image
    return ((point[0] + 0.5) * scale, (point[1] + 0.5) * scale)


def draw_drag(
    image: Image.Image,
    handles: Tensor,
    targets: Tensor,
    final: Tensor | None = None,
    scale: int = 1,
) -> Image.Image:
    """A copy of ``image`` (enlarged ``scale``×) with numbered arrows handle → target.

    Handles are red, targets blue, and where ``final`` is given the handles' end
    positions are yellow rings. Points are ``(N, 2)`` (x, y) image pixels.
    """
    canvas = image.convert("RGB").resize(
        (image.width * scale, image.height * scale), Image.Resampling.NEAREST
    )
    draw = ImageDraw.Draw(canvas)
    radius = max(2.0, 1.5 * scale)
    for i, (h, t) in enumerate(zip(handles.tolist(), targets.tolist(), strict=True)):
        (hx, hy), (tx, ty) = _scaled(h, scale), _scaled(t, scale)
        draw.line([(hx, hy), (tx, ty)], fill=(255, 255, 255), width=max(1, scale // 2))
        angle = math.atan2(ty - hy, tx - hx)
        head = 3 * radius
        for side in (-0.5, 0.5):
            draw.line(
                [
                    (tx, ty),
                    (tx - head * math.cos(angle + side), ty - head * math.sin(angle + side)),
                ],
                fill=(255, 255, 255),
                width=max(1, scale // 2),
            )
        draw.ellipse([hx - radius, hy - radius, hx + radius, hy + radius], fill=HANDLE)
        draw.ellipse([tx - radius, ty - radius, tx + radius, ty + radius], fill=TARGET)
        draw.text((hx + radius + 1, hy - 3 * radius), str(i + 1), fill=(255, 255, 255))
    if final is not None:
        for point in final.tolist():
            fx, fy = _scaled(point, scale)
            r = radius * 1.8
            draw.ellipse([fx - r, fy - r, fx + r, fy + r], outline=FINAL, width=2)
    return canvas


def side_by_side(*images: Image.Image, gap: int = 4) -> Image.Image:
    """Images in a row on a dark background, top-aligned."""
    width = sum(im.width for im in images) + gap * (len(images) - 1)
    height = max(im.height for im in images)
    canvas = Image.new("RGB", (width, height), (24, 24, 24))
    x = 0
    for im in images:
        canvas.paste(im.convert("RGB"), (x, 0))
        x += im.width + gap
    return canvas
