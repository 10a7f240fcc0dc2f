"""Command line: ``python -m dragpd demo`` and ``python -m dragpd bench speed``.

Until the toy world ships trained weights, ``demo`` runs the whole edit path — DDIM
inversion, the drag loop with DWPT, denoising with mutual self-attention — on a tiny
UNet with *random* weights and a synthetic latent. It shows the machinery working end to
end and how the handles travel; it does not show editing quality.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import torch

from . import bench
from .config import DragConfig
from .drag import drag
from .inversion import denoise, invert
from .points import DragPoints
from .tiny import TINY_PRESET, synthetic_latent, tiny_unet

logger = logging.getLogger("dragpd")


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


def run_demo(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    _say(f"DragPD demo (plumbing): tiny random-weight UNet, {args.threads} CPU thread(s)")
    unet = tiny_unet(seed=args.seed)
    latent = synthetic_latent(seed=args.seed)
    conditioning = torch.randn(1, 7, 32, generator=torch.Generator().manual_seed(args.seed))
    image = latent.shape[-1] * 8  # the image a 4-channel SD latent of this size encodes
    handle = (image * 0.3 + 0.5, image * 0.5 + 0.5)
    target = (image * 0.65 + 0.5, image * 0.5 + 0.5)
    points = DragPoints([handle], [target], (image, image))
    config = DragConfig.for_model("sd15", **TINY_PRESET, max_iterations=args.iterations)

    started = time.perf_counter()
    inversion = invert(
        unet, latent, conditioning, config.num_inference_steps, config.inversion_strength
    )
    result = drag(unet, inversion, points, config)
    edited = denoise(unet, result.latent, inversion, config.mutual_attention_start)
    seconds = time.perf_counter() - started

    start = torch.tensor(handle, dtype=torch.float64)
    goal = torch.tensor(target, dtype=torch.float64)
    _say(
        f"handle {tuple(start.tolist())} -> target {tuple(goal.tolist())} "
        f"({float((goal - start).norm()):.1f} px on a {image}x{image} image)"
    )
    for step in result.history[:: max(1, len(result.history) // 8)]:
        remaining = float((goal - step.handles[0]).norm())
        loss = "-" if step.loss is None else f"{step.loss:.3f}"
        _say(
            f"  iteration {step.iteration:3d}: handle at {tuple(step.handles[0].tolist())}, "
            f"{remaining:5.1f} px to go, loss {loss}"
        )
    final = float((goal - result.handles[0]).norm())
    _say(
        f"stopped: {result.stop_reason} after {result.iterations} updates; handle ends "
        f"{final:.1f} px from its target; edited latent {tuple(edited.shape)}, "
        f"{seconds:.1f} s in all"
    )
    _say("random weights: this shows the pipeline running, not the quality of an edit.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dragpd",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run one drag edit end to end and report it")
    demo.add_argument("--seed", type=int, default=0, help="seed of the model and scene")
    demo.add_argument("--iterations", type=int, default=80, help="drag iterations at most")
    demo.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    demo.set_defaults(run=run_demo)
    bench.add_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
