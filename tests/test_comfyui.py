"""With a real ComfyUI (``COMFYUI_PATH``): the pack in-process and over HTTP.

Scale: an fp16 random-weight SD1.5-architecture checkpoint made at test time (ComfyUI only
recognises SD1.5 at full width), 64×64 images, 2–3 steps everywhere. Not part of CI.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from comfyui_helpers import (
    CHECKPOINT_NAME,
    COMFYUI_PATH,
    ROOT,
    SKIP_REASON,
    comfyui_server,
    install_pack,
    make_sd15_checkpoint,
    wait_for_prompt,
)
from comfyui_helpers import get_json as _get
from comfyui_helpers import post_json as _post
from PIL import Image

pytestmark = pytest.mark.comfyui
if not COMFYUI_PATH:
    pytest.skip(SKIP_REASON, allow_module_level=True)

# ComfyUI's own top-level `nodes` module clashes with this repository's `nodes` package in
# one interpreter, so ComfyUI runs in a child process here.
IN_PROCESS = r"""
import importlib.util, sys, torch
comfy_path, pack, checkpoint = sys.argv[1:4]
sys.path.insert(0, comfy_path)
from comfy.cli_args import args
args.cpu = True
import comfy.sd, nodes as comfy_nodes
name = pack.replace(".", "_x_")
spec = importlib.util.spec_from_file_location(name, pack + "/__init__.py")
module = importlib.util.module_from_spec(spec); sys.modules[name] = module
spec.loader.exec_module(module)
N = module.NODE_CLASS_MAPPINGS
model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(checkpoint, output_vae=True,
                                                            output_clip=True)[:4]
before = {k: v.clone() for k, v in model.model.state_dict().items()}
patches_before = dict(model.patches)
points = '{"version": 1, "image_size": [64, 64], "pairs": [{"handle": [20.0, 32.0], ' \
         '"target": [40.0, 32.0]}], "mask": null}'
with torch.inference_mode():
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    cond = comfy_nodes.CLIPTextEncode().encode(clip, "a photo")[0]
    picked = N["DragPDPointPicker"]().pick(image, points)["result"]
    latent = comfy_nodes.VAEEncode().encode(vae, picked[0])[0]
    lora_model, = N["DragPDLoraTrainer"]().train(model, latent, cond, 2, 4, 5e-4, 0)
    inversion, = N["DragPDInvert"]().invert(lora_model, latent, cond, 3, 0.7)
    edited, moved = N["DragPDSampler"]().sample(lora_model, inversion, picked[1], 2, 0.01, 0.3, 0)
    decoded, comparison = N["DragPDDecode"]().decode(vae, edited, moved, picked[0])
assert decoded.shape == (1, 64, 64, 3), decoded.shape
assert len(lora_model.patches) > 0 and lora_model is not model
after = model.model.state_dict()
assert dict(model.patches) == patches_before, "MODEL patches changed"
changed = [k for k, v in before.items() if not torch.equal(v, after[k])]
assert not changed, f"MODEL weights changed: {changed[:3]}"
print("IN_PROCESS_OK", tuple(edited["samples"].shape), len(lora_model.patches))
"""


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    path = Path(COMFYUI_PATH) / "models" / "checkpoints" / CHECKPOINT_NAME
    sys.path.insert(0, COMFYUI_PATH)
    try:
        return make_sd15_checkpoint(path)
    finally:
        sys.path.remove(COMFYUI_PATH)


def test_nodes_in_process_leave_the_model_untouched(checkpoint, tmp_path):
    pack = install_pack(tmp_path / "custom_nodes")
    run = subprocess.run(
        [sys.executable, "-c", IN_PROCESS, COMFYUI_PATH, str(pack), str(checkpoint)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    assert "IN_PROCESS_OK" in run.stdout


# --- over HTTP ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(checkpoint, tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy_base")
    install_pack(base / "custom_nodes")
    (base / "models" / "checkpoints").mkdir(parents=True)
    (base / "models" / "checkpoints" / CHECKPOINT_NAME).symlink_to(checkpoint)
    (base / "input").mkdir()
    pixels = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(base / "input" / "dragpd_example.png")
    _make_clip_weights(base / "models" / "dragpd_clip" / "dragpd_test_clip.safetensors")
    with comfyui_server(base) as url:
        yield url, base


def _make_clip_weights(path: Path) -> None:
    import open_clip
    import torch
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, str(path))


def _small(graph: dict, iterations: int = 2) -> dict:
    for node in graph.values():
        inputs = node["inputs"]
        if node["class_type"] == "DragPDLoraTrainer":
            inputs.update(steps=2, rank=4)
        elif node["class_type"] == "DragPDInvert":
            inputs.update(steps=3)
        elif node["class_type"] == "DragPDSampler":
            inputs.update(iterations=iterations)
    return graph


def _run(url: str, graph: dict, timeout: float = 1200) -> dict:
    prompt_id = _post(f"{url}/prompt", {"prompt": graph})["prompt_id"]
    return wait_for_prompt(url, prompt_id, timeout)


def test_object_info_lists_every_node(server):
    url, _ = server
    info = _get(f"{url}/object_info")
    for name in (
        "DragPDLoraTrainer",
        "DragPDInvert",
        "DragPDPointPicker",
        "DragPDPPRLoss",
        "DragPDCLIPReward",
        "DragPDSampler",
        "DragPDSettings",
        "DragPDDecode",
    ):
        assert name in info, f"{name} missing from /object_info"
        assert info[name]["category"] == "DragPD" and info[name]["description"]
    assert "dragpd_test_clip.safetensors" in json.dumps(info["DragPDCLIPReward"])


@pytest.mark.parametrize(
    "workflow", ["dragpd_basic_drag", "dragpd_text_guided_drag", "dragpd_ablation"]
)
def test_each_shipped_workflow_runs(server, workflow):
    url, base = server
    graph = json.loads((ROOT / "tests" / "workflows" / f"{workflow}_api.json").read_text())
    result = _run(url, _small(graph))
    assert result["status"]["status_str"] == "success", json.dumps(result["status"])[-3000:]
    saved = [
        image
        for output in result["outputs"].values()
        for image in output.get("images", [])
        if image["type"] == "output"
    ]
    assert saved, result["outputs"]
    assert (base / "output" / saved[0]["subfolder"] / saved[0]["filename"]).is_file()


def test_an_interrupted_drag_leaves_comfyui_able_to_run_again(server):
    url, _ = server
    graph = json.loads((ROOT / "tests" / "workflows" / "dragpd_basic_drag_api.json").read_text())
    long = _small(json.loads(json.dumps(graph)), iterations=400)
    for node in long.values():
        if node["class_type"] == "DragPDSampler":
            node["inputs"]["seed"] = 1  # a new input, not a cache hit
    prompt_id = _post(f"{url}/prompt", {"prompt": long})["prompt_id"]
    time.sleep(20)
    _post(f"{url}/interrupt", {})
    deadline = time.time() + 600
    while time.time() < deadline:
        history = _get(f"{url}/history/{prompt_id}")
        if prompt_id in history:
            break
        time.sleep(2)
    messages = json.dumps(history[prompt_id]["status"]["messages"])
    assert "execution_interrupted" in messages, messages[-2000:]
    again = _run(url, _small(graph))
    assert again["status"]["status_str"] == "success"
