"""Per-image LoRA (DragDiffusion §3.2): fine-tune attention projections on the one image.

The adapter is a peft LoRA on ``to_q``, ``to_k``, ``to_v`` and ``to_out.0`` of every
attention module, with ``lora_alpha`` = rank (scale 1, as DragDiffusion; peft's default
alpha would halve it). Base weights never change. It can be exported in kohya-style keys
that ComfyUI's LoRA loader maps onto SD1.x UNets, and read back.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import DragConfig
from .inversion import predict_noise
from .schedule import stable_diffusion_alphas

__all__ = [
    "ADAPTER_NAME",
    "LORA_TARGETS",
    "LoraResult",
    "export_comfy_lora",
    "fuse_comfy_lora",
    "import_comfy_lora",
    "load_comfy_lora",
    "lora_cache_key",
    "remove_lora",
    "save_comfy_lora",
    "train_lora",
]

logger = logging.getLogger(__name__)

ADAPTER_NAME = "dragpd"
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
KOHYA_PREFIX = "lora_unet_"

LoraCallback = Callable[[int, int, float], "bool | None"]
"""``callback(step, total, loss)`` after each step; return True to cancel."""


@dataclass(frozen=True)
class LoraResult:
    """Outcome of :func:`train_lora`: per-step losses, and whether it was cancelled."""

    losses: tuple[float, ...]
    cancelled: bool = False


def _lora_config(rank: int, alpha: float, targets) -> object:
    from peft import LoraConfig

    return LoraConfig(
        r=rank, lora_alpha=alpha, target_modules=list(targets), init_lora_weights=True
    )


def remove_lora(unet: nn.Module, adapter_name: str = ADAPTER_NAME) -> None:
    """Delete the adapter (no-op if absent); the UNet is as it was before training."""
    config = getattr(unet, "peft_config", None) or {}
    if adapter_name in config:
        unet.delete_adapters(adapter_name)


@contextmanager
def _trainable_only_lora(unet: nn.Module) -> Iterator[list[nn.Parameter]]:
    params = list(unet.named_parameters())
    flags = [p.requires_grad for _, p in params]
    try:
        trainable = []
        for name, p in params:
            is_lora = f".{ADAPTER_NAME}." in name and "lora_" in name
            p.requires_grad_(is_lora)
            if is_lora:
                trainable.append(p)
        yield trainable
    finally:
        for (name, p), flag in zip(params, flags, strict=True):
            if not (f".{ADAPTER_NAME}." in name and "lora_" in name):
                p.requires_grad_(flag)


def train_lora(
    unet: nn.Module,
    latent: Tensor,
    conditioning: Tensor,
    config: DragConfig | None = None,
    seed: int = 0,
    alphas_cumprod: Tensor | None = None,
    callback: LoraCallback | None = None,
) -> LoraResult:
    """Fit a LoRA adapter named ``"dragpd"`` to one image; it stays active on ``unet``.

    Each step: ``config.lora_batch_size`` copies of the (already encoded) latent, fresh
    Gaussian noise, t ~ U[0, T), MSE between ε̂ and the noise; AdamW at ``config.lora_lr``.
    Runs under ``inference_mode(False)`` / ``enable_grad()``. On cancel or error the
    adapter is removed again; base weights are never modified.

    Args:
        unet: diffusers ``UNet2DConditionModel`` (weights not inference tensors).
        latent: ``(1, C, h, w)`` scaled clean latent of the image.
        conditioning: ``(1, L, D)`` hidden states of its prompt.
        config: rank, steps, lr and batch from :class:`DragConfig`.
        seed: seeds the noise and timesteps (a local generator; global RNG untouched).
        alphas_cumprod: ᾱ table; SD1.x's when ``None``.
        callback: ``callback(step, total, loss)``; return True to cancel.

    Returns:
        :class:`LoraResult`.
    """
    config = config or DragConfig()
    if any(p.is_inference() for p in unet.parameters()):
        raise ValueError(
            "the UNet's weights are inference tensors; build or copy the UNet under "
            "torch.inference_mode(False) before training a LoRA on it."
        )
    remove_lora(unet)
    alphas = (stable_diffusion_alphas() if alphas_cumprod is None else alphas_cumprod).double()
    losses: list[float] = []
    with torch.inference_mode(False), torch.enable_grad():
        latent = latent.detach().clone().float()
        cond = conditioning.detach().clone()
        device = latent.device
        generator = torch.Generator(device="cpu").manual_seed(seed)
        unet.add_adapter(
            _lora_config(config.lora_rank, config.lora_rank, LORA_TARGETS), ADAPTER_NAME
        )
        try:
            with _trainable_only_lora(unet) as params:
                optimizer = torch.optim.AdamW(params, lr=config.lora_lr)
                batch = config.lora_batch_size
                for step in range(config.lora_steps):
                    noise = torch.randn((batch, *latent.shape[1:]), generator=generator)
                    t = torch.randint(0, len(alphas), (batch,), generator=generator)
                    a = alphas[t].float().view(-1, 1, 1, 1)
                    noise, a, t = noise.to(device), a.to(device), t.to(device)
                    noisy = a.sqrt() * latent + (1 - a).sqrt() * noise
                    loss = F.mse_loss(predict_noise(unet, noisy, t, cond), noise)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    losses.append(loss.item())
                    if callback is not None and callback(step + 1, config.lora_steps, losses[-1]):
                        remove_lora(unet)
                        return LoraResult(tuple(losses), cancelled=True)
        except BaseException:
            remove_lora(unet)
            raise
    logger.info(
        "LoRA trained: %d steps, loss %.4f → %.4f",
        len(losses),
        losses[0] if losses else float("nan"),
        losses[-1] if losses else float("nan"),
    )
    return LoraResult(tuple(losses))


# --- export / import in ComfyUI-loadable keys ------------------------------------------


def _lora_modules(unet: nn.Module, adapter_name: str) -> Iterator[tuple[str, nn.Module]]:
    for name, module in unet.named_modules():
        lora_a = getattr(module, "lora_A", None)
        if isinstance(lora_a, nn.ModuleDict) and adapter_name in lora_a:
            yield name, module


def export_comfy_lora(unet: nn.Module, adapter_name: str = ADAPTER_NAME) -> dict[str, Tensor]:
    """The adapter as kohya-style tensors that ComfyUI's LoRA loader reads for SD1.x.

    Keys: ``lora_unet_<diffusers module path, dots as underscores>.lora_down.weight``
    ``(r, in)``, ``.lora_up.weight`` ``(out, r)`` and ``.alpha`` (scalar), for every
    adapted linear. Tensors are contiguous CPU copies.
    """
    state = {}
    for name, module in _lora_modules(unet, adapter_name):
        key = KOHYA_PREFIX + name.replace(".", "_")
        down = module.lora_A[adapter_name].weight
        up = module.lora_B[adapter_name].weight
        rank = down.shape[0]
        scale = module.scaling[adapter_name]
        state[f"{key}.lora_down.weight"] = down.detach().cpu().contiguous().clone()
        state[f"{key}.lora_up.weight"] = up.detach().cpu().contiguous().clone()
        state[f"{key}.alpha"] = torch.tensor(float(scale * rank))
    if not state:
        raise ValueError(f"the UNet carries no LoRA adapter named {adapter_name!r}.")
    return state


def import_comfy_lora(
    unet: nn.Module, state: dict[str, Tensor], adapter_name: str = ADAPTER_NAME
) -> None:
    """Attach a kohya-style LoRA (as written by :func:`export_comfy_lora`) as a peft adapter.

    Raises:
        ValueError: keys that name no module of this UNet, or mixed ranks/alphas.
    """
    by_flat_name = {name.replace(".", "_"): name for name, _ in unet.named_modules()}
    modules: dict[str, dict[str, Tensor]] = {}
    for key, tensor in state.items():
        if not key.startswith(KOHYA_PREFIX):
            raise ValueError(f"{key!r} is not a kohya-style UNet LoRA key (lora_unet_…).")
        flat, _, part = key[len(KOHYA_PREFIX) :].partition(".")
        if flat not in by_flat_name:
            raise ValueError(f"LoRA key {key!r} names no module of this UNet.")
        modules.setdefault(by_flat_name[flat], {})[part] = tensor
    ranks = {m["lora_down.weight"].shape[0] for m in modules.values()}
    alphas = {float(m.get("alpha", torch.tensor(-1.0))) for m in modules.values()}
    if len(ranks) != 1 or len(alphas) != 1:
        raise ValueError(f"mixed LoRA ranks {ranks} or alphas {alphas}; expected one of each.")
    rank, alpha = ranks.pop(), alphas.pop()
    alpha = float(rank) if alpha < 0 else alpha
    remove_lora(unet, adapter_name)
    unet.add_adapter(_lora_config(rank, alpha, sorted(modules)), adapter_name)
    loaded = dict(_lora_modules(unet, adapter_name))
    with torch.no_grad():
        for name, parts in modules.items():
            module = loaded[name]
            module.lora_A[adapter_name].weight.copy_(parts["lora_down.weight"])
            module.lora_B[adapter_name].weight.copy_(parts["lora_up.weight"])


def fuse_comfy_lora(unet: nn.Module, state: dict[str, Tensor], strength: float = 1.0) -> None:
    """Add a kohya-style LoRA's deltas into the UNet's own weights, in place.

    W += strength · (alpha / rank) · up @ down, as ComfyUI's LoRA patches do. Use it on a
    UNet you own (a copy); the adapter does not appear as a peft module.
    """
    modules = {name.replace(".", "_"): module for name, module in unet.named_modules()}
    groups: dict[str, dict[str, Tensor]] = {}
    for key, tensor in state.items():
        flat, _, part = key.removeprefix(KOHYA_PREFIX).partition(".")
        if not key.startswith(KOHYA_PREFIX) or flat not in modules:
            raise ValueError(f"LoRA key {key!r} names no module of this UNet.")
        groups.setdefault(flat, {})[part] = tensor
    with torch.no_grad():
        for flat, parts in groups.items():
            weight = modules[flat].weight
            down, up = parts["lora_down.weight"].float(), parts["lora_up.weight"].float()
            alpha = float(parts.get("alpha", torch.tensor(float(down.shape[0]))))
            delta = strength * alpha / down.shape[0] * (up.flatten(1) @ down.flatten(1))
            weight.add_(delta.reshape(weight.shape).to(weight))


def save_comfy_lora(unet: nn.Module, path: str | Path, metadata: dict | None = None) -> Path:
    """Write :func:`export_comfy_lora` to a ``.safetensors`` file."""
    from safetensors.torch import save_file

    path = Path(path)
    meta = {"dragpd": "per-image LoRA", **{k: str(v) for k, v in (metadata or {}).items()}}
    save_file(export_comfy_lora(unet), str(path), metadata=meta)
    return path


def load_comfy_lora(unet: nn.Module, path: str | Path) -> None:
    """Read a ``.safetensors`` kohya-style LoRA into ``unet`` (see :func:`import_comfy_lora`)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"LoRA file {path} does not exist.")
    import_comfy_lora(unet, load_file(str(path)))


def _tensor_digest(tensor: Tensor) -> str:
    data = tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return hashlib.sha256(data).hexdigest() + str(tuple(tensor.shape))


def lora_cache_key(
    latent: Tensor, prompt: str | Tensor, model_key: str, config: DragConfig, seed: int = 0
) -> str:
    """A key that identifies a trained LoRA: image content, prompt, model, settings, seed."""
    settings = {k: v for k, v in asdict(config).items() if k.startswith("lora_")}
    parts = [
        _tensor_digest(latent),
        prompt if isinstance(prompt, str) else _tensor_digest(prompt),
        model_key,
        json.dumps(settings, sort_keys=True),
        str(seed),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]
