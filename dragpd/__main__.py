"""Command line: ``python -m dragpd demo``, ``edit`` and ``bench``.

``demo`` runs one whole edit — per-image LoRA, DDIM inversion, the drag loop with DWPT,
denoising with mutual self-attention, decoding — on the built-in toy world (a small
latent diffusion model trained on scenes of coloured shapes, weights in the package),
measures where the dragged shape landed, and writes before / after / overlay PNGs.

``edit`` drags your image with your SD1.5 checkpoint (or the toy model): the points come
as the version-1 JSON the ComfyUI Point Picker writes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch
from PIL import Image

from . import bench
from .bench import say as _say

logger = logging.getLogger("dragpd")


def run_demo(args: argparse.Namespace) -> int:
    from .overlay import draw_drag, side_by_side
    from .pipeline import DragPDPipeline
    from .toy.metrics import score_drag
    from .toy.tasks import make_task

    torch.set_num_threads(args.threads)
    task = make_task(args.seed, distance=args.distance)
    if task is None:
        _say(f"scene {args.seed} has no room for a {args.distance:g} px drag; try another --seed")
        return 1
    _say(
        f"DragPD demo on the toy world ({args.threads} CPU thread(s)), scene {args.seed}: "
        f"{task.scene.caption!r}"
    )
    pipe = DragPDPipeline.from_toy()
    config = pipe.default_config()
    if args.iterations is not None:
        config = config.replace(max_iterations=args.iterations)
    points = task.points
    (hx, hy), (tx, ty) = points.handles[0].tolist(), points.targets[0].tolist()
    _say(
        f"dragging the {task.shape['color']} {task.shape['kind']} from ({hx:.1f}, {hy:.1f}) "
        f"to ({tx:.1f}, {ty:.1f}), {float((points.targets - points.handles).norm()):.1f} px"
    )
    result = pipe.edit(task.scene.image, points, task.scene.caption, config=config)
    for stage, info in result.history.items():
        extra = ""
        if stage == "drag":
            extra = f": {info['iterations']} iterations, stopped: {info['stop_reason']}"
        if stage == "lora" and info.get("losses"):
            extra = (
                f": {len(info['losses'])} steps, loss {info['losses'][0]:.3f} → "
                f"{info['losses'][-1]:.3f}"
            )
        _say(f"  {stage:9s} {info['seconds']:6.2f} s{extra}")
    target = (tx, ty)
    score = score_drag(task.scene.image, result.image, task.shape, target)
    _say(
        f"measured: the shape's centroid ends {score.error:.2f} px from the target, moved "
        f"{score.moved:.2f} of {float((points.targets - points.handles).norm()):.1f} px; "
        f"area kept {score.area_ratio:.2f}×, background PSNR {score.background_psnr:.1f} dB"
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scale = 6
    before = task.scene.image.resize((64 * scale, 64 * scale), Image.Resampling.NEAREST)
    after = result.image.resize((64 * scale, 64 * scale), Image.Resampling.NEAREST)
    overlay = side_by_side(
        draw_drag(task.scene.image, points.handles, points.targets, scale=scale),
        draw_drag(result.image, points.handles, points.targets, result.handles, scale=scale),
    )
    before.save(out / "before.png")
    after.save(out / "after.png")
    overlay.save(out / "overlay.png")
    _say(
        f"wrote {out / 'before.png'}, {out / 'after.png'} and {out / 'overlay.png'} "
        "(arrows: red handle → blue target; yellow ring: where the handle ended)"
    )
    return 0


def run_edit(args: argparse.Namespace) -> int:
    from .overlay import draw_drag, side_by_side
    from .pipeline import DragPDPipeline
    from .points import DragPoints
    from .reward import load_open_clip

    torch.set_num_threads(args.threads)
    image = Image.open(args.image).convert("RGB")
    points = DragPoints.from_json(Path(args.points).read_text())
    clip = None
    if args.clip_weights:
        clip = load_open_clip(args.clip_weights, args.clip_architecture, args.device)
    if args.toy:
        pipe = DragPDPipeline.from_toy()
    else:
        pipe = DragPDPipeline.from_single_file(args.checkpoint, clip=clip, device=args.device)
    if clip is not None:
        pipe.clip = clip
    if args.edit_text and pipe.clip is None:
        _say("--edit-text needs --clip-weights (an open_clip weights file)")
        return 2
    overrides = {
        k: v
        for k, v in {"max_iterations": args.iterations, "lora_steps": args.lora_steps}.items()
        if v is not None
    }
    config = pipe.config_for(None, args.edit_text).replace(**overrides)
    cropped, points = pipe.prepare(image, points)
    _say(
        f"dragging {len(points.handles)} point(s) on a {cropped.width}×{cropped.height} image, "
        f"{'toy model' if args.toy else args.checkpoint}, {args.threads} CPU thread(s)"
    )

    def progress(step, _latent) -> bool:
        if step.iteration % 10 == 0:
            logger.info("drag iteration %d, loss %.4f", step.iteration, step.loss)
        return False

    result = pipe.edit(
        cropped,
        points,
        args.prompt,
        edit_text=args.edit_text,
        config=config,
        source_text=args.source_text,
        seed=args.seed,
        callback=progress,
    )
    for stage, info in result.history.items():
        _say(f"  {stage:9s} {info['seconds']:7.2f} s")
    for i, (start, end) in enumerate(zip(points.handles, result.handles, strict=True), 1):
        target = points.targets[i - 1]
        _say(
            f"  pair {i}: handle ({start[0]:.1f}, {start[1]:.1f}) → ended ({end[0]:.1f}, "
            f"{end[1]:.1f}), {float((target - end).norm()):.1f} px from its target"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result.image.save(out / "edited.png")
    side_by_side(
        draw_drag(cropped, points.handles, points.targets),
        draw_drag(result.image, points.handles, points.targets, result.handles),
    ).save(out / "overlay.png")
    _say(f"wrote {out / 'edited.png'} and {out / 'overlay.png'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dragpd",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="drag a shape in a toy scene end to end and measure it")
    demo.add_argument("--out", default="dragpd_demo", help="folder for the PNGs")
    demo.add_argument("--seed", type=int, default=7, help="scene seed")
    demo.add_argument("--distance", type=float, default=10.0, help="drag length in px")
    demo.add_argument("--iterations", type=int, default=None, help="drag iterations at most")
    demo.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    demo.set_defaults(run=run_demo)
    edit = sub.add_parser("edit", help="drag your image with an SD1.5 checkpoint")
    edit.add_argument("image", help="the image to edit (any format PIL reads)")
    edit.add_argument("points", help="points JSON (version 1, as the Point Picker writes)")
    model = edit.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="SD1.x single-file checkpoint (.safetensors)")
    model.add_argument("--toy", action="store_true", help="the built-in toy model instead")
    edit.add_argument("--prompt", required=True, help="what the image shows")
    edit.add_argument("--edit-text", help="what it should show (turns the CLIP reward on)")
    edit.add_argument("--source-text", help="with --edit-text: the directional CLIP reward")
    edit.add_argument("--clip-weights", help="open_clip weights file for the CLIP reward")
    edit.add_argument("--clip-architecture", default="ViT-B-32", help="open_clip architecture")
    edit.add_argument("--iterations", type=int, help="drag iterations at most")
    edit.add_argument("--lora-steps", type=int, help="LoRA steps (0 skips the LoRA)")
    edit.add_argument("--seed", type=int, default=0, help="seeds the LoRA's noise")
    edit.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    edit.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    edit.add_argument("--out", default="dragpd_edit", help="folder for the PNGs")
    edit.set_defaults(run=run_edit)
    bench.add_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
