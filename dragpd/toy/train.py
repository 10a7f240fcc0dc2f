"""Train the toy world: ``python -m dragpd.toy.train [--out DIR]``.

Renders procedural scenes (seeds from ``TRAIN_SEED_START`` on, never used by tests or
benchmarks), then trains in turn, on the CPU:

1. the VAE (L1 reconstruction + a small KL), then its latent scaling factor;
2. the UNet (ε-prediction on SD1.5's noise schedule, captions through a frozen random
   text encoder, 10 % caption dropout, EMA weights);
3. a tiny open_clip model, contrastively on scene/caption pairs (for the CLIP reward).

Weights are written as float16 safetensors with ``toy.json`` (configuration, seed,
steps, measured figures). Every phase is seeded; ``--steps-scale`` shortens a run.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from ..schedule import stable_diffusion_alphas
from .models import CLIP_CONFIG, UNET_CONFIG, VAE_CONFIG, WEIGHTS_DIR, build_models
from .scenes import make_scene

logger = logging.getLogger("dragpd.toy.train")

TRAIN_SEED_START = 1_000_000
DEFAULTS = {
    "seed": 0,
    "scenes": 20000,
    "vae_steps": 1200,
    "vae_batch": 32,
    "vae_lr": 1e-3,
    "vae_kl": 1e-6,
    "unet_steps": 2400,
    "unet_batch": 64,
    "unet_lr": 1e-3,
    "unet_ema": 0.999,
    "caption_dropout": 0.1,
    "clip_steps": 800,
    "clip_batch": 128,
    "clip_lr": 1e-3,
}


def render_dataset(count: int) -> tuple[torch.Tensor, list[str]]:
    """``(count, 3, 64, 64)`` float images in [0, 1] and their captions."""
    images = np.empty((count, 64, 64, 3), dtype=np.uint8)
    captions = []
    for i in range(count):
        scene = make_scene(TRAIN_SEED_START + i)
        images[i] = np.asarray(scene.image)
        captions.append(scene.caption)
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0, captions


def cosine_lr(step: int, total: int, peak: float, warmup: int = 100) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(F.mse_loss(a.clamp(0, 1), b)))


def train_vae(models, images, cfg, generator) -> dict:
    vae = models.vae.train()
    optimizer = torch.optim.Adam(vae.parameters(), lr=cfg["vae_lr"])
    started = time.time()
    for step in range(cfg["vae_steps"]):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, cfg["vae_steps"], cfg["vae_lr"])
        index = torch.randint(0, len(images) - 512, (cfg["vae_batch"],), generator=generator)
        x = images[index] * 2 - 1
        posterior = vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
        recon = vae.decode(z).sample
        loss = F.l1_loss(recon, x) + cfg["vae_kl"] * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            logger.info(
                "vae %d/%d loss %.4f (%.0f s)",
                step,
                cfg["vae_steps"],
                loss.item(),
                time.time() - started,
            )
    vae.eval()
    held_out = images[-512:]
    with torch.no_grad():
        recon = vae.decode(vae.encode(held_out * 2 - 1).latent_dist.mean).sample
    figure = psnr(recon / 2 + 0.5, held_out)
    logger.info("vae held-out PSNR %.2f dB", figure)
    return {"vae_psnr_db": round(figure, 2), "vae_seconds": round(time.time() - started)}


@torch.no_grad()
def encode_all(vae, images: torch.Tensor) -> torch.Tensor:
    return torch.cat(
        [
            vae.encode(images[i : i + 256] * 2 - 1).latent_dist.mean
            for i in range(0, len(images), 256)
        ]
    )


def train_unet(models, latents, captions, cfg, generator) -> dict:
    unet = models.unet.train()
    tokenizer = models.tokenizer
    with torch.no_grad():
        unique = sorted(set(captions) | {""})
        table = models.text_encoder(tokenizer(unique)).last_hidden_state
    row = {c: i for i, c in enumerate(unique)}
    caption_ids = torch.tensor([row[c] for c in captions])
    empty = row[""]
    alphas = stable_diffusion_alphas().float()
    ema = {k: v.detach().clone() for k, v in unet.state_dict().items()}
    optimizer = torch.optim.AdamW(unet.parameters(), lr=cfg["unet_lr"], weight_decay=0.01)
    started = time.time()
    for step in range(cfg["unet_steps"]):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, cfg["unet_steps"], cfg["unet_lr"])
        index = torch.randint(0, len(latents), (cfg["unet_batch"],), generator=generator)
        z0 = latents[index]
        ids = caption_ids[index].clone()
        drop = torch.rand(len(ids), generator=generator) < cfg["caption_dropout"]
        ids[drop] = empty
        noise = torch.randn(z0.shape, generator=generator)
        t = torch.randint(0, 1000, (len(z0),), generator=generator)
        a = alphas[t].view(-1, 1, 1, 1)
        eps = unet(
            a.sqrt() * z0 + (1 - a).sqrt() * noise, t, encoder_hidden_states=table[ids]
        ).sample
        loss = F.mse_loss(eps, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        decay = min(cfg["unet_ema"], (step + 1) / (step + 10))
        with torch.no_grad():
            for k, v in unet.state_dict().items():
                if v.dtype.is_floating_point:
                    ema[k].mul_(decay).add_(v.detach(), alpha=1 - decay)
        if step % 100 == 0:
            logger.info(
                "unet %d/%d loss %.4f (%.0f s)",
                step,
                cfg["unet_steps"],
                loss.item(),
                time.time() - started,
            )
    unet.load_state_dict(ema)
    unet.eval()
    return {"unet_final_loss": round(loss.item(), 4), "unet_seconds": round(time.time() - started)}


def train_clip(models, images, captions, cfg, generator) -> dict:
    clip = models.clip.train()
    tokens = models.tokenizer(captions)
    mean = torch.tensor((0.48145466, 0.4578275, 0.40821073)).view(1, 3, 1, 1)
    std = torch.tensor((0.26862954, 0.26130258, 0.27577711)).view(1, 3, 1, 1)
    optimizer = torch.optim.AdamW(clip.parameters(), lr=cfg["clip_lr"], weight_decay=0.1)
    started = time.time()
    for step in range(cfg["clip_steps"]):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, cfg["clip_steps"], cfg["clip_lr"])
        index = torch.randint(0, len(images) - 512, (cfg["clip_batch"],), generator=generator)
        image_features = F.normalize(clip.encode_image((images[index] - mean) / std), dim=-1)
        text_features = F.normalize(clip.encode_text(tokens[index]), dim=-1)
        logits = clip.logit_scale.exp() * image_features @ text_features.T
        # Duplicate captions in a batch are not negatives of each other.
        same = (tokens[index][:, None, :] == tokens[index][None, :, :]).all(-1).float()
        target = same / same.sum(1, keepdim=True)
        loss = 0.5 * (
            torch.sum(-target * logits.log_softmax(1), 1).mean()
            + torch.sum(-target * logits.log_softmax(0).T, 1).mean()
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            clip.logit_scale.clamp_(0, math.log(100))
        if step % 100 == 0:
            logger.info(
                "clip %d/%d loss %.4f (%.0f s)",
                step,
                cfg["clip_steps"],
                loss.item(),
                time.time() - started,
            )
    clip.eval()
    with torch.no_grad():  # held-out retrieval: does each image pick its own caption?
        held = slice(len(images) - 512, len(images))
        img = F.normalize(clip.encode_image((images[held] - mean) / std), dim=-1)
        txt = F.normalize(clip.encode_text(tokens[held]), dim=-1)
        best = (img @ txt.T).argmax(1)
        hits = (tokens[held][best] == tokens[held]).all(-1).float().mean()
    logger.info("clip held-out caption retrieval %.3f", float(hits))
    return {"clip_retrieval": round(float(hits), 3), "clip_seconds": round(time.time() - started)}


def save(models, out: Path, meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in ("vae", "unet", "text_encoder", "clip"):
        state = {
            k: v.detach().half().contiguous()
            for k, v in getattr(models, name).state_dict().items()
            if v.dtype.is_floating_point
        }
        save_file(state, str(out / f"{name}.safetensors"))
    (out / "toy.json").write_text(json.dumps(meta, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dragpd.toy.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="where to write weights")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    parser.add_argument(
        "--steps-scale",
        type=float,
        default=1.0,
        help="multiply every phase's steps (e.g. 0.05 for a smoke run)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    cfg = dict(DEFAULTS)
    for key in ("vae_steps", "unet_steps", "clip_steps"):
        cfg[key] = max(1, round(cfg[key] * args.steps_scale))
    cfg["scenes"] = max(1024, round(cfg["scenes"] * min(1.0, args.steps_scale * 4)))
    torch.manual_seed(cfg["seed"])
    generator = torch.Generator().manual_seed(cfg["seed"])
    started = time.time()
    images, captions = render_dataset(cfg["scenes"])
    logger.info("rendered %d scenes (%.0f s)", len(images), time.time() - started)
    models = build_models(seed=cfg["seed"])
    meta = {
        "training": cfg,
        "train_seed_start": TRAIN_SEED_START,
        "threads": args.threads,
        "configs": {"vae": VAE_CONFIG, "unet": UNET_CONFIG, "clip": CLIP_CONFIG},
        "license": "MIT, as the project; trained from scratch on procedural scenes",
    }
    meta |= train_vae(models, images, cfg, generator)
    latents = encode_all(models.vae, images)
    meta["scaling_factor"] = round(1.0 / float(latents.std()), 5)
    models.vae.register_to_config(scaling_factor=meta["scaling_factor"])
    save(models, args.out, meta)  # a checkpoint after each phase
    meta |= train_unet(models, latents * meta["scaling_factor"], captions, cfg, generator)
    save(models, args.out, meta)
    meta |= train_clip(models, images, captions, cfg, generator)
    meta["total_seconds"] = round(time.time() - started)
    save(models, args.out, meta)
    logger.info("done in %.0f s: %s", time.time() - started, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
