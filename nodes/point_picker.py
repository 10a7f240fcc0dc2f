"""DragPD Point Picker: the image, handle → target pairs and the editable mask."""

from __future__ import annotations

import torch

from dragpd.points import DragPoints, parse_points_document, rasterize_strokes, scale_points

from . import comfy_bridge as bridge

EMPTY_POINTS = '{"version": 1, "image_size": [0, 0], "pairs": [], "mask": null}'
BLOCK_MESSAGE = "DragPD Point Picker: place handle → target pairs on the image, then queue again."


def crop_to_multiple(height: int, width: int, multiple: int = 8) -> tuple[int, int, int, int]:
    """(top, left, new_h, new_w) of the centred crop to multiples of ``multiple``."""
    new_h, new_w = height // multiple * multiple, width // multiple * multiple
    if new_h == 0 or new_w == 0:
        raise ValueError(f"the image is {height}×{width}; it must be at least 8×8 pixels.")
    return (height - new_h) // 2, (width - new_w) // 2, new_h, new_w


class DragPDPointPicker:
    DESCRIPTION = (
        "Pick what to move on the image (connected, or uploaded in the node): click a handle, "
        "then its target (pairs are numbered), drag points to adjust, right-click to delete, "
        "and paint the region that may change with the brush. Outputs the image "
        "centre-cropped to multiples of 8 and the points in that frame. With no pairs yet it "
        "shows the image and stops the graph there."
    )
    CATEGORY = "DragPD"
    FUNCTION = "pick"
    RETURN_TYPES = ("IMAGE", "DRAGPD_POINTS", "MASK")
    RETURN_NAMES = ("image", "points", "mask")
    OUTPUT_TOOLTIPS = (
        "The image cropped to multiples of 8 (encode this one).",
        "Handle → target pairs in the cropped image's pixels.",
        "The painted editable region (all zeros when none was painted).",
    )
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "points_json": (
                    "STRING",
                    {
                        "default": EMPTY_POINTS,
                        "multiline": True,
                        "tooltip": "Pairs and mask strokes in DragPD's points format "
                        "(version 1); the editor fills this in.",
                    },
                ),
            },
            "optional": {
                "image": (
                    "IMAGE",
                    {"tooltip": "The photo to edit (one image). Takes precedence over an upload."},
                ),
                "upload": (
                    "STRING",
                    {
                        "default": "",
                        "tooltip": "An image uploaded with the editor's Upload button (a file "
                        "in ComfyUI's input folder), used when no IMAGE is connected.",
                    },
                ),
            },
        }

    @classmethod
    def IS_CHANGED(cls, points_json="", upload="", **_):
        return bridge.uploaded_image_hash(upload) if upload else ""

    def pick(self, image=None, points_json=EMPTY_POINTS, upload=""):
        if image is None:
            if not upload:
                raise ValueError(
                    "DragPD Point Picker: connect an IMAGE (e.g. from Load Image) or upload "
                    "one with the Upload button in the node."
                )
            image = bridge.load_uploaded_image(upload)
        if image.shape[0] != 1:
            raise ValueError(
                f"the Point Picker takes one image; got a batch of {image.shape[0]}. "
                "Split it first (e.g. 'Image From Batch')."
            )
        height, width = image.shape[1:3]
        document = parse_points_document(points_json or EMPTY_POINTS)
        ui = {"images": bridge.preview_images(image)}
        if not document["pairs"]:
            blocked = bridge.blocker(BLOCK_MESSAGE)
            return {"ui": ui, "result": (blocked, blocked, blocked)}
        points = _points_for(document, (height, width))
        top, left, new_h, new_w = crop_to_multiple(height, width)
        cropped = points.cropped(top, left, new_h, new_w)
        mask = cropped.mask
        out_mask = torch.zeros(1, new_h, new_w) if mask is None else mask[None].float()
        ui["dragpd_points"] = [_summary(cropped)]
        return {
            "ui": ui,
            "result": (image[:, top : top + new_h, left : left + new_w], cropped, out_mask),
        }


def _summary(points: DragPoints) -> dict:
    """What the node sends on, for the UI and the history: the pairs in the output frame."""
    return {
        "image_size": list(points.image_size),
        "pairs": [
            {"handle": h.tolist(), "target": t.tolist()}
            for h, t in zip(points.handles, points.targets, strict=True)
        ],
        "masked": points.mask is not None,
    }


def _points_for(document: dict, size: tuple[int, int]) -> DragPoints:
    """Points of the document on an image of ``size``, rescaled if placed at another size."""
    handles = torch.tensor([p["handle"] for p in document["pairs"]], dtype=torch.float64)
    targets = torch.tensor([p["target"] for p in document["pairs"]], dtype=torch.float64)
    placed = document["image_size"]
    if tuple(placed) != tuple(size):
        ratio_h, ratio_w = size[0] / placed[0], size[1] / placed[1]
        if abs(ratio_h - ratio_w) > 0.01 * max(ratio_h, ratio_w):
            raise ValueError(
                f"the points were placed on a {placed[0]}×{placed[1]} image but this IMAGE is "
                f"{size[0]}×{size[1]}; place them again on this image."
            )
        handles, targets = (scale_points(p, placed, size) for p in (handles, targets))
        strokes = document["strokes"]
        mask = rasterize_strokes(strokes, placed) if strokes else None
        if mask is not None:
            mask = torch.nn.functional.interpolate(
                mask[None, None].float(), size=size, mode="nearest"
            )[0, 0].bool()
        return DragPoints(handles, targets, size, mask=mask)
    return DragPoints(handles, targets, size, strokes=document["strokes"])
