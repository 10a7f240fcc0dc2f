"""Drag tasks on toy scenes, and running a pipeline on them with scores."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np

from ..config import DragConfig
from ..points import DragPoints
from .metrics import EditScore, score_drag
from .scenes import COLORS, Scene, caption_for, make_scene

__all__ = ["DragTask", "make_task", "run_task", "summarise"]

TEST_SEEDS = range(100, 200)  # behaviour tests
BENCH_SEEDS = range(5000, 6000)  # the benchmark; training uses seeds from 1_000_000


@dataclass(frozen=True)
class DragTask:
    """Drag ``scene.shapes[index]`` by ``offset`` px; optionally recolour it by text."""

    scene: Scene
    index: int
    offset: tuple[float, float]
    new_color: str | None = None

    @property
    def shape(self) -> dict:
        return self.scene.shapes[self.index]

    @property
    def points(self) -> DragPoints:
        cx, cy = self.shape["center"]
        target = (cx + self.offset[0], cy + self.offset[1])
        size = self.scene.image.size[::-1]
        return DragPoints([[cx, cy]], [list(target)], size)

    @property
    def edit_text(self) -> str | None:
        if self.new_color is None:
            return None
        shapes = [dict(s) for s in self.scene.shapes]
        shapes[self.index]["color"] = self.new_color
        return caption_for(shapes)


def make_task(seed: int, distance: float = 10.0, recolor: bool = False) -> DragTask | None:
    """A task on ``make_scene(seed)``: a direction that keeps the shape inside the image
    and clear of the other shapes, or ``None`` when there is none."""
    scene = make_scene(seed)
    rng = np.random.default_rng(seed + 17)
    size = scene.image.size[0]
    shape = scene.shapes[0]
    center = np.asarray(shape["center"])
    for angle in rng.permutation(16) * (2 * math.pi / 16):
        target = center + distance * np.array([math.cos(angle), math.sin(angle)])
        margin = shape["size"] / 2 + 1
        if not (
            margin <= target[0] <= size - 1 - margin and margin <= target[1] <= size - 1 - margin
        ):
            continue
        clear = all(
            np.linalg.norm(target - np.asarray(other["center"]))
            > (shape["size"] + other["size"]) / 2 + 3
            for other in scene.shapes[1:]
        )
        if clear:
            new_color = None
            if recolor:
                options = [c for c in COLORS if c not in {s["color"] for s in scene.shapes}]
                new_color = options[int(rng.integers(len(options)))]
            offset = (float(target[0] - center[0]), float(target[1] - center[1]))
            return DragTask(scene, 0, offset, new_color)
    return None


def tasks(seeds, count: int, distance: float, recolor: bool = False) -> list[DragTask]:
    found = []
    for seed in seeds:
        task = make_task(seed, distance, recolor)
        if task is not None:
            found.append(task)
        if len(found) == count:
            break
    return found


def run_task(pipe, task: DragTask, config: DragConfig) -> dict:
    """Edit with ``pipe`` and score it; returns the score fields plus run facts."""
    scene = task.scene
    text = task.edit_text if config.clip_weight > 0 else None  # else measured without it
    result = pipe.edit(
        scene.image,
        task.points,
        scene.caption,
        edit_text=text,
        config=config,
        source_text=scene.caption if text else None,
    )
    target = np.asarray(task.shape["center"]) + np.asarray(task.offset)
    new_rgb = None if task.new_color is None else COLORS[task.new_color]
    score: EditScore = score_drag(scene.image, result.image, task.shape, target, new_rgb)
    row = dict(score.__dict__)
    row["iterations"] = result.drag.iterations
    lora = result.history.get("lora", {}).get("seconds", 0.0)
    row["seconds"] = result.seconds - lora  # the scene's LoRA is trained once and cached
    row["lora_seconds"] = lora
    row["tracked_error"] = float(np.linalg.norm(result.handles[0].numpy() - target))
    if task.new_color is not None:  # a recolour that loses the shape is no success
        kept = 0.5 <= score.area_ratio <= 2.0
        row["recolored"] = kept and _recolored(result.image, task, target)
    return row


def _recolored(image, task: DragTask, target) -> bool:
    """True when the shape's region is nearer the new colour than the old one."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    ys, xs = np.mgrid[0 : pixels.shape[0], 0 : pixels.shape[1]]
    inside = (xs - target[0]) ** 2 + (ys - target[1]) ** 2 <= (task.shape["size"] / 3) ** 2
    mean = pixels[inside].mean(0)
    old = np.linalg.norm(mean - np.asarray(COLORS[task.shape["color"]]))
    new = np.linalg.norm(mean - np.asarray(COLORS[task.new_color]))
    return bool(new < old)


def summarise(rows: list[dict]) -> dict:
    """Medians of the scores, means of the costs, the recolour rate where measured."""

    def median(key):
        return statistics.median(r[key] for r in rows)

    summary = {
        "edits": len(rows),
        "error_px": median("error"),
        "moved_px": median("moved"),
        "background_psnr_db": median("background_psnr"),
        "area_ratio": median("area_ratio"),
        "color_shift": median("color_shift"),
        "iterations": statistics.mean(r["iterations"] for r in rows),
        "seconds": statistics.mean(r["seconds"] for r in rows),
    }
    if rows and "recolored" in rows[0]:
        summary["recolor_rate"] = statistics.mean(float(r["recolored"]) for r in rows)
    return summary
