"""Handle → target point pairs, the editable mask, and the version-1 points JSON.

Coordinates are ``(x, y) = (column, row)`` in image pixels everywhere, the centre of
pixel ``(c, r)`` being ``(c, r)``; an image of size ``(H, W)`` spans
``[-0.5, W - 0.5] × [-0.5, H - 0.5]``.

The JSON format (version 1) is what the Point Picker widget writes::

    {"version": 1, "image_size": [H, W],
     "pairs": [{"handle": [x, y], "target": [x, y]}],
     "mask": {"strokes": [{"points": [[x, y], ...], "radius": r, "erase": false}]}}

The mask is a list of brush strokes; :func:`rasterize_strokes` turns them into pixels
(its JavaScript twin in ``js/`` must agree with it on ``tests/fixtures/points_v1.json``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = [
    "POINTS_FORMAT_VERSION",
    "BrushStroke",
    "DragPoints",
    "mask_to_strokes",
    "parse_points_document",
    "rasterize_strokes",
    "scale_points",
]

POINTS_FORMAT_VERSION = 1


@dataclass(frozen=True)
class BrushStroke:
    """One brush stroke: the capsule of ``radius`` px around each segment of ``points``.

    A stroke of one point is a disc. ``erase=True`` removes pixels instead of adding them.
    """

    points: tuple[tuple[float, float], ...]
    radius: float
    erase: bool = False

    def to_dict(self) -> dict:
        return {
            "points": [[float(x), float(y)] for x, y in self.points],
            "radius": float(self.radius),
            "erase": bool(self.erase),
        }


def rasterize_strokes(strokes: Sequence[BrushStroke], image_size: tuple[int, int]) -> Tensor:
    """Paint brush strokes, in order, into a boolean mask.

    A pixel centre ``p`` is covered by a segment ``a → b`` when its squared distance to
    the segment is ``<= radius²`` (computed in float64, as the JS twin does).

    Args:
        strokes: the strokes, applied first to last; erasing strokes clear pixels.
        image_size: ``(H, W)``.

    Returns:
        ``(H, W)`` bool tensor, True where editable.
    """
    height, width = image_size
    mask = torch.zeros(height, width, dtype=torch.bool)
    if not strokes:
        return mask
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64),
        torch.arange(width, dtype=torch.float64),
        indexing="ij",
    )
    for stroke in strokes:
        pts = torch.tensor(stroke.points, dtype=torch.float64).reshape(-1, 2)
        ends = pts[1:] if len(pts) > 1 else pts
        starts = pts[:-1] if len(pts) > 1 else pts
        covered = torch.zeros_like(mask)
        for (ax, ay), (bx, by) in zip(starts.tolist(), ends.tolist(), strict=True):
            dx, dy = bx - ax, by - ay
            length2 = dx * dx + dy * dy
            if length2 > 0.0:
                t = (((xs - ax) * dx + (ys - ay) * dy) / length2).clamp(0.0, 1.0)
            else:
                t = torch.zeros_like(xs)
            ex = xs - (ax + t * dx)
            ey = ys - (ay + t * dy)
            covered |= ex * ex + ey * ey <= stroke.radius * stroke.radius
        mask = mask & ~covered if stroke.erase else mask | covered
    return mask


def mask_to_strokes(mask: Tensor) -> tuple[BrushStroke, ...]:
    """Encode a boolean mask exactly as strokes: one radius-0.5 segment per run of a row.

    ``rasterize_strokes(mask_to_strokes(m), m.shape)`` equals ``m`` bit for bit: a capsule
    of radius 0.5 around ``(c0, r) → (c1, r)`` covers exactly pixels ``c0..c1`` of row ``r``.
    """
    strokes = []
    rows = mask.bool().cpu()
    for r in range(rows.shape[0]):
        row = rows[r].tolist()
        c = 0
        while c < len(row):
            if not row[c]:
                c += 1
                continue
            start = c
            while c < len(row) and row[c]:
                c += 1
            strokes.append(BrushStroke(((float(start), float(r)), (float(c - 1), float(r))), 0.5))
    return tuple(strokes)


def scale_points(points: Tensor, from_size: tuple[int, int], to_size: tuple[int, int]) -> Tensor:
    """Map ``(N, 2)`` (x, y) pixel coordinates between two grids covering the same image.

    Pixel centres map to pixel centres: ``x' = (x + 0.5) · W'/W − 0.5`` (and alike for y),
    the convention of ``F.interpolate(..., align_corners=False)``.
    """
    (h0, w0), (h1, w1) = from_size, to_size
    scale = points.new_tensor([w1 / w0, h1 / h0])
    return (points + 0.5) * scale - 0.5


def _as_points(name: str, value) -> Tensor:
    points = torch.as_tensor(value, dtype=torch.float64).detach().clone().cpu()
    if points.numel() == 0:
        points = points.reshape(0, 2)
    elif points.ndim == 1 and points.numel() == 2:
        points = points[None]
    if points.ndim != 2 or points.shape[-1] != 2:
        raise ValueError(
            f"{name} must be an (N, 2) array of (x, y) pixel coordinates; got shape "
            f"{tuple(points.shape)}."
        )
    return points


@dataclass(frozen=True, eq=False)
class DragPoints:
    """Handle → target pairs on one image, with an optional editable mask.

    Args:
        handles: ``(N, 2)`` float, (x, y) image pixels of the content to move.
        targets: ``(N, 2)`` float, (x, y) image pixels where each handle should end up.
        image_size: ``(H, W)`` of the image the points refer to.
        mask: optional ``(H, W)`` bool, True where the image may change.
        strokes: the brush strokes the mask was painted with, kept so that
            :meth:`to_json` writes them back unchanged (derived from ``mask`` when absent).

    The constructor copies every tensor it is given; inputs are never modified.
    """

    handles: Tensor
    targets: Tensor
    image_size: tuple[int, int]
    mask: Tensor | None = None
    strokes: tuple[BrushStroke, ...] = field(default=())

    def __post_init__(self) -> None:
        handles = _as_points("handles", self.handles)
        targets = _as_points("targets", self.targets)
        try:
            height, width = (int(v) for v in self.image_size)
        except (TypeError, ValueError):
            raise ValueError(
                f"image_size must be (H, W), two positive integers; got {self.image_size!r}."
            ) from None
        if height <= 0 or width <= 0:
            raise ValueError(f"image_size must be positive; got (H, W) = ({height}, {width}).")
        if len(handles) == 0:
            raise ValueError("no handle → target pairs: place at least one pair.")
        if len(handles) != len(targets):
            raise ValueError(
                f"{len(handles)} handles but {len(targets)} targets: every handle needs "
                "exactly one target."
            )
        for kind, pts in (("handle", handles), ("target", targets)):
            for i, (x, y) in enumerate(pts.tolist()):
                if not (math.isfinite(x) and math.isfinite(y)):
                    raise ValueError(f"pair {i}: {kind} ({x}, {y}) is not a finite number.")
                if not (-0.5 <= x <= width - 0.5 and -0.5 <= y <= height - 0.5):
                    raise ValueError(
                        f"pair {i}: {kind} ({x:g}, {y:g}) lies outside the {height}×{width} "
                        f"image; x must be in [-0.5, {width - 0.5}] and y in "
                        f"[-0.5, {height - 0.5}]."
                    )
        mask = self.mask
        if mask is not None:
            mask = torch.as_tensor(mask).detach().clone().cpu()
            if mask.ndim == 3 and mask.shape[0] == 1:
                mask = mask[0]
            if tuple(mask.shape) != (height, width):
                raise ValueError(
                    f"mask has shape {tuple(mask.shape)} but the image is (H, W) = "
                    f"({height}, {width}); pass a mask of the image's size."
                )
            mask = mask.bool()
        strokes = tuple(self.strokes)
        if strokes and mask is None:
            mask = rasterize_strokes(strokes, (height, width))
        object.__setattr__(self, "handles", handles)
        object.__setattr__(self, "targets", targets)
        object.__setattr__(self, "image_size", (height, width))
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "strokes", strokes)

    def __len__(self) -> int:
        return len(self.handles)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DragPoints):
            return NotImplemented
        same_mask = (self.mask is None and other.mask is None) or (
            self.mask is not None and other.mask is not None and torch.equal(self.mask, other.mask)
        )
        return (
            self.image_size == other.image_size
            and torch.equal(self.handles, other.handles)
            and torch.equal(self.targets, other.targets)
            and same_mask
        )

    __hash__ = None  # mutable-looking tensors inside: not hashable

    # -- grids ---------------------------------------------------------------------------

    def to_grid(self, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """Handles and targets on a ``(h, w)`` grid over the same image (e.g. the latent).

        Returns:
            ``(handles, targets)``, each ``(N, 2)`` float64 (x, y) in grid cells.
        """
        return (
            scale_points(self.handles, self.image_size, size),
            scale_points(self.targets, self.image_size, size),
        )

    def cropped(self, top: int, left: int, height: int, width: int) -> DragPoints:
        """The same pairs and mask in the frame of a ``height`` × ``width`` crop at (top, left)."""
        shift = torch.tensor([left, top], dtype=torch.float64)
        mask = None if self.mask is None else self.mask[top : top + height, left : left + width]
        return DragPoints(self.handles - shift, self.targets - shift, (height, width), mask=mask)

    # -- JSON ----------------------------------------------------------------------------

    def to_json(self) -> str:
        """Serialise to the version-1 points JSON (see the module docstring)."""
        strokes = self.strokes
        if self.mask is not None and not strokes:
            strokes = mask_to_strokes(self.mask)
        document = {
            "version": POINTS_FORMAT_VERSION,
            "image_size": list(self.image_size),
            "pairs": [
                {"handle": [float(hx), float(hy)], "target": [float(tx), float(ty)]}
                for (hx, hy), (tx, ty) in zip(
                    self.handles.tolist(), self.targets.tolist(), strict=True
                )
            ],
            "mask": {"strokes": [s.to_dict() for s in strokes]},
        }
        return json.dumps(document)

    @classmethod
    def from_json(cls, text: str | dict) -> DragPoints:
        """Parse the version-1 points JSON; errors name the field and what to change."""
        document = parse_points_document(text)
        if not document["pairs"]:
            raise ValueError("no handle → target pairs: place at least one pair.")
        handles = [p["handle"] for p in document["pairs"]]
        targets = [p["target"] for p in document["pairs"]]
        return cls(handles, targets, document["image_size"], strokes=document["strokes"])


def _number_pair(value, where: str) -> list[float]:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise ValueError(f"{where} must be a list of two numbers [x, y]; got {value!r}.")
    return [float(v) for v in value]


def parse_points_document(text: str | dict) -> dict:
    """Validate the structure of a version-1 points document.

    Unlike :meth:`DragPoints.from_json` an empty ``pairs`` list is accepted (the picker
    must run once to show the image before points can be placed).

    Returns:
        ``{"image_size": (H, W), "pairs": [{"handle": [x, y], "target": [x, y]}, ...],
        "strokes": tuple[BrushStroke, ...]}``.
    """
    if isinstance(text, str):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"points JSON is not valid JSON: {error}.") from None
    else:
        document = text
    if not isinstance(document, dict):
        raise ValueError("points JSON must be an object with version, image_size and pairs.")
    version = document.get("version")
    if version != POINTS_FORMAT_VERSION:
        raise ValueError(
            f"points JSON has version {version!r}; this DragPD reads version "
            f"{POINTS_FORMAT_VERSION}."
        )
    size = document.get("image_size")
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise ValueError(f"image_size must be [H, W], two positive integers; got {size!r}.")
    pairs = document.get("pairs")
    if not isinstance(pairs, list):
        raise ValueError(f"pairs must be a list of {{handle, target}} objects; got {pairs!r}.")
    clean_pairs = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, dict) or "handle" not in pair or "target" not in pair:
            raise ValueError(f"pair {i} must be an object with 'handle' and 'target'.")
        clean_pairs.append(
            {
                "handle": _number_pair(pair["handle"], f"pair {i} handle"),
                "target": _number_pair(pair["target"], f"pair {i} target"),
            }
        )
    strokes = []
    mask = document.get("mask")
    if mask is not None:
        if not isinstance(mask, dict) or not isinstance(mask.get("strokes", []), list):
            raise ValueError("mask must be an object {'strokes': [...]} or null.")
        for i, stroke in enumerate(mask.get("strokes", [])):
            if not isinstance(stroke, dict) or not isinstance(stroke.get("points"), list):
                raise ValueError(f"mask stroke {i} must be an object with a 'points' list.")
            if not stroke["points"]:
                raise ValueError(f"mask stroke {i} has no points.")
            points = tuple(
                tuple(_number_pair(p, f"mask stroke {i} point {j}"))
                for j, p in enumerate(stroke["points"])
            )
            radius = stroke.get("radius")
            if not isinstance(radius, (int, float)) or isinstance(radius, bool) or radius <= 0:
                raise ValueError(
                    f"mask stroke {i} radius must be a positive number; got {radius!r}."
                )
            erase = stroke.get("erase", False)
            if not isinstance(erase, bool):
                raise ValueError(f"mask stroke {i} erase must be true or false; got {erase!r}.")
            strokes.append(BrushStroke(points, float(radius), erase))
    return {"image_size": tuple(size), "pairs": clean_pairs, "strokes": tuple(strokes)}
