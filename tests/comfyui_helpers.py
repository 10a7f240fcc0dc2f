"""Shared by the tests that need a real ComfyUI (``COMFYUI_PATH``): test-time assets."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
COMFYUI_PATH = os.environ.get("COMFYUI_PATH", "")
SKIP_REASON = (
    "COMFYUI_PATH is not set: point it at a ComfyUI checkout to run the ComfyUI "
    "integration tests (they are not part of CI)"
)
CHECKPOINT_NAME = "dragpd_test_sd15.safetensors"
SD15_UNET_LDM = {  # what ComfyUI detects for SD1.5; drives its diffusers ↔ LDM key map
    "num_res_blocks": [2, 2, 2, 2],
    "channel_mult": [1, 2, 4, 4],
    "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
    "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],  # popped from the end
    "transformer_depth_middle": 1,
}


def make_sd15_checkpoint(path: Path) -> Path:
    """An fp16 SD1.5-architecture checkpoint with seeded random weights, in LDM keys."""
    if path.is_file():
        return path
    import comfy.diffusers_convert
    import comfy.utils
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    from dragpd.unet_configs import SD15_UNET, SD15_VAE

    torch.manual_seed(0)
    state = {}
    unet = UNet2DConditionModel(**SD15_UNET).state_dict()
    mapping = comfy.utils.unet_to_diffusers(SD15_UNET_LDM)
    for key, value in unet.items():
        state[f"model.diffusion_model.{mapping[key]}"] = value.half()
    del unet
    vae = {k: v for k, v in AutoencoderKL(**SD15_VAE).state_dict().items()}
    for key, value in comfy.diffusers_convert.convert_vae_state_dict(vae).items():
        state[f"first_stage_model.{key}"] = value.half()
    text = CLIPTextModel(
        CLIPTextConfig(  # CLIP ViT-L/14 text tower, as SD1.5
            hidden_size=768,
            intermediate_size=3072,
            num_attention_heads=12,
            num_hidden_layers=12,
            hidden_act="quick_gelu",
            projection_dim=768,
        )
    )
    for key, value in text.state_dict().items():
        state[f"cond_stage_model.transformer.{key}"] = value.half()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def install_pack(custom_nodes: Path, name: str = "ComfyUI-DragPD-main") -> Path:
    """Copy the pack into a custom_nodes folder under a user's clone name."""
    target = custom_nodes / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(
        ROOT,
        target,
        ignore=shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", ".pytest_cache"),
    )
    return target


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def post_json(url: str, payload: dict):
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    return json.loads(body) if body.strip() else {}


@contextlib.contextmanager
def comfyui_server(base: Path, startup_s: float = 300) -> Iterator[str]:
    """Run ``main.py --cpu`` on a free 127.0.0.1 port over ``base``; yields its URL."""
    port = _free_port()
    log_path = base / "comfyui.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "main.py",
                "--cpu",
                "--listen",
                "127.0.0.1",
                "--port",
                str(port),
                "--base-directory",
                str(base),
                "--disable-auto-launch",
            ],
            cwd=COMFYUI_PATH,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + startup_s
            while True:
                try:
                    get_json(f"{url}/system_stats")
                    break
                except OSError:
                    if process.poll() is not None or time.time() > deadline:
                        raise RuntimeError(
                            "ComfyUI did not start:\n" + log_path.read_text()[-4000:]
                        ) from None
                    time.sleep(1)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_for_prompt(url: str, prompt_id: str, timeout: float = 1200) -> dict:
    """The history entry of a queued prompt once it has finished (TimeoutError otherwise)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        history = get_json(f"{url}/history/{prompt_id}")
        status = history.get(prompt_id, {}).get("status", {})
        if status.get("completed") is not None and status.get("status_str") != "running":
            return history[prompt_id]
        time.sleep(2)
    raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout} s")
