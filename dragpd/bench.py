"""``python -m dragpd bench speed | toy``: cost and quality of each variant, side by side.

Speed and memory are measured here, never asserted in tests. Every variant runs in the
same process, one after another, after a warm-up; figures are printed as seconds and as
ratios to the DragDiffusion baseline, because these machines are noisy.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .config import TEXT_EDIT_CLIP_WEIGHT, DragConfig
from .drag import drag
from .inversion import invert
from .lora import remove_lora, train_lora
from .points import DragPoints
from .reward import ClipReward
from .tiny import TINY_PRESET, tiny_open_clip, tiny_unet, tiny_vae
from .vae import latent_decoder

logger = logging.getLogger(__name__)


def say(text: str) -> None:
    """Write a line of the command's report to stdout (the CLI's output, not a log)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _models(name: str, device: torch.device, dtype: torch.dtype):
    """(unet, vae, clip model, tokenizer, preset, context dim) with random weights."""
    if name == "tiny":
        model, tokenizer = tiny_open_clip()
        return tiny_unet(), tiny_vae(), model, tokenizer, TINY_PRESET, 32
    import open_clip
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from .unet_configs import SD15_UNET, SD15_VAE

    torch.manual_seed(0)
    unet, vae = UNet2DConditionModel(**SD15_UNET), AutoencoderKL(**SD15_VAE)
    model = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None)
    return unet, vae, model, open_clip.get_tokenizer("ViT-B-32"), {}, 768


def _peak_memory(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB VRAM"
    return (
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB RSS (process peak)"
    )


def _timed(device: torch.device, run: Callable[[], object]) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def run_speed(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model_name = args.model or ("sd15" if device.type == "cuda" else "tiny")
    dtype = torch.float16 if args.fp16 else torch.float32
    size = args.size or (512 if model_name == "sd15" else 128)
    say(
        f"bench speed: model {model_name}, {size}x{size}, device {device}, "
        f"{args.threads} CPU thread(s), torch {torch.__version__}, "
        f"{args.iterations} iterations per variant"
    )
    unet, vae, clip_model, tokenizer, preset, context = _models(model_name, device, dtype)
    cast = {} if dtype == torch.float32 else {"dtype": dtype}  # diffusers warns on any cast
    unet, vae, clip_model = (m.to(device=device, **cast).eval() for m in (unet, vae, clip_model))
    generator = torch.Generator().manual_seed(0)
    latent = torch.randn(1, 4, size // 8, size // 8, generator=generator).to(device)
    cond = torch.randn(1, 77, context, generator=generator).to(device, dtype)
    inversion = invert(unet, latent, cond, num_inference_steps=10, strength=0.7)
    points = DragPoints([[size * 0.2, size * 0.5]], [[size * 0.8, size * 0.5]], (size, size))
    reward = ClipReward.from_open_clip(clip_model, tokenizer, "a red circle")
    decoder = latent_decoder(vae)
    base = DragConfig.dragdiffusion(**preset, max_iterations=args.iterations, reach_distance=0.0)
    variants = {
        "baseline (DragDiffusion)": base,
        "+DWPT": base.replace(dwpt_beta=0.3),
        "+default region+blending": base.replace(default_region=True, latent_blending=True),
        "+PPR": base.replace(ppr_weight=1.0),
        # the reward's cost per iteration: in the loop (clip_iterations=0), not after it
        "+CLIP (every iteration)": base.replace(clip_weight=1.0, clip_iterations=0),
        "+CLIP (every 4th)": base.replace(clip_weight=1.0, clip_every=4, clip_iterations=0),
        "full DragPD": DragConfig.for_model(
            "sd15",
            **preset,
            max_iterations=args.iterations,
            reach_distance=0.0,
            ppr_weight=1.0,
            clip_weight=1.0,
            clip_every=4,
            clip_iterations=0,
        ),
    }
    drag(unet, inversion, points, base.replace(max_iterations=2))  # warm-up
    rows = []
    for name, config in variants.items():
        seconds = _timed(
            device,
            lambda c=config: drag(unet, inversion, points, c, reward=reward, decoder=decoder),
        )
        rows.append((name, seconds / args.iterations, _peak_memory(device)))
    reference = rows[0][1]
    say(f"{'variant':28s} {'s/iteration':>12s} {'ratio':>7s}  peak memory")
    for name, per_iteration, memory in rows:
        say(f"{name:28s} {per_iteration:12.4f} {per_iteration / reference:7.2f}  {memory}")
    lora = DragConfig(lora_steps=args.iterations)
    seconds = _timed(device, lambda: train_lora(unet, latent, cond, lora))
    remove_lora(unet)
    say(
        f"{'LoRA step (rank 16, batch 4)':28s} {seconds / args.iterations:12.4f} "
        f"{seconds / args.iterations / reference:7.2f}  {_peak_memory(device)}"
    )
    return 0


def _extra_variants(specs: list[str] | None, over: DragConfig) -> dict[str, DragConfig]:
    """``NAME:key=value,key=value`` specs, each applied on top of ``over``."""
    variants = {}
    for spec in specs or []:
        name, _, assignments = spec.partition(":")
        changes = {}
        for item in filter(None, assignments.split(",")):
            key, _, value = item.partition("=")
            current = getattr(over, key)
            changes[key] = (
                type(current)(value)
                if not isinstance(current, bool)
                else value.lower() in ("1", "true", "yes")
            )
        variants[name] = over.replace(**changes)
    return variants


def _select(variants: dict[str, DragConfig], args: argparse.Namespace) -> dict[str, DragConfig]:
    if args.only:
        variants = {k: v for k, v in variants.items() if k in args.only}
    return {k: v.replace(lora_steps=0) if args.no_lora else v for k, v in variants.items()}


def _toy_variants(args: argparse.Namespace) -> dict[str, DragConfig]:
    base = DragConfig.dragdiffusion("toy")
    full = DragConfig.for_model("toy", ppr_weight=args.ppr_weight)
    variants = {
        "baseline": base,
        "+DWPT": base.replace(dwpt_beta=full.dwpt_beta),
        "+region+blending": base.replace(default_region=True, latent_blending=True),
        "+PPR": base.replace(ppr_weight=args.ppr_weight),
        "full DragPD": full,
        **_extra_variants(args.variant, full),
    }
    return _select(variants, args)


def _text_variants(args: argparse.Namespace) -> dict[str, DragConfig]:
    """Full DragPD without and with the CLIP reward; ``--variant`` changes the latter."""
    full = DragConfig.for_model("toy", ppr_weight=args.ppr_weight)
    with_clip = full.replace(clip_weight=args.clip_weight, clip_every=args.clip_every)
    variants = {
        "full, no CLIP": full,
        "full + CLIP": with_clip,
        **_extra_variants(args.variant, with_clip),
    }
    return _select(variants, args)


def run_toy(args: argparse.Namespace) -> int:
    import json

    from .pipeline import DragPDPipeline
    from .toy.tasks import BENCH_SEEDS, run_task, summarise, tasks

    torch.set_num_threads(args.threads)
    pipe = DragPDPipeline.from_toy()
    suites = {}
    if not args.text_only:
        suites[f"drag {args.distance:g} px"] = tasks(BENCH_SEEDS, args.scenes, args.distance)
        suites[f"long drag {args.long_distance:g} px"] = tasks(
            BENCH_SEEDS, args.scenes, args.long_distance
        )
    if args.text_edits or args.text_only:
        suites["drag + text recolour"] = tasks(BENCH_SEEDS, args.scenes, args.distance, True)
    say(
        f"bench toy: {args.scenes} held-out scenes per suite (seeds {BENCH_SEEDS.start}+), "
        f"{args.threads} CPU thread(s), LoRA {'off' if args.no_lora else 'on'}"
    )
    report = {}
    columns = (
        "error_px",
        "moved_px",
        "background_psnr_db",
        "area_ratio",
        "color_shift",
        "iterations",
        "seconds",
    )
    for suite, suite_tasks in suites.items():
        text = suite == "drag + text recolour"
        variants = _text_variants(args) if text else _toy_variants(args)
        say(f"\n{suite} ({len(suite_tasks)} edits per variant)")
        header = f"{'variant':22s} " + " ".join(f"{c:>18s}" for c in columns)
        if text:
            header += f" {'recolour_rate':>14s}"
        say(header)
        report[suite] = {}
        rows: dict[str, list[dict]] = {name: [] for name in variants}
        for task in suite_tasks:  # variants inner: the task's LoRA is trained once, cached
            for name, config in variants.items():
                rows[name].append(run_task(pipe, task, config))
        for name, config in variants.items():
            summary = summarise(rows[name])
            report[suite][name] = {"summary": summary, "config": config.__dict__}
            line = f"{name:22s} " + " ".join(f"{summary[c]:18.2f}" for c in columns)
            if "recolor_rate" in summary:
                line += f" {summary['recolor_rate']:14.2f}"
            say(line)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
        say(f"\nwrote {args.json}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="measure speed and memory")
    kinds = bench.add_subparsers(dest="bench", required=True)
    speed = kinds.add_parser("speed", help="cost of one drag iteration per term, one LoRA step")
    speed.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    speed.add_argument(
        "--model",
        choices=("tiny", "sd15"),
        default=None,
        help="tiny random model (CPU default) or the SD1.5 architecture with "
        "random weights (CUDA default)",
    )
    speed.add_argument("--size", type=int, default=None, help="image side in pixels")
    speed.add_argument("--iterations", type=int, default=10, help="iterations per variant")
    speed.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    speed.add_argument("--fp16", action="store_true", help="run the models in float16")
    speed.set_defaults(run=run_speed)

    toy = kinds.add_parser("toy", help="edit quality of each variant on held-out toy scenes")
    toy.add_argument("--scenes", type=int, default=20, help="scenes per suite")
    toy.add_argument("--distance", type=float, default=10.0, help="drag length, px")
    toy.add_argument(
        "--long-distance",
        type=float,
        default=16.0,
        help="long drag length, px (16 = 25 %% of the width)",
    )
    toy.add_argument(
        "--ppr-weight",
        type=float,
        default=DragConfig().ppr_weight or 1.0,
        help="PPR weight of the +PPR and full variants",
    )
    toy.add_argument(
        "--clip-weight", type=float, default=TEXT_EDIT_CLIP_WEIGHT, help="CLIP weight, text edits"
    )
    toy.add_argument("--clip-every", type=int, default=1, help="CLIP every k-th iteration")
    toy.add_argument("--text-edits", action="store_true", help="also the recolour suite")
    toy.add_argument("--text-only", action="store_true", help="only the recolour suite")
    toy.add_argument("--no-lora", action="store_true", help="skip the per-image LoRA")
    toy.add_argument(
        "--variant",
        action="append",
        help="extra variant NAME:key=value,... over full DragPD (over full + CLIP in the "
        "recolour suite; repeatable)",
    )
    toy.add_argument("--only", nargs="*", help="run only these variant names")
    toy.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    toy.add_argument("--json", help="also write the figures to this JSON file")
    toy.set_defaults(run=run_toy)
