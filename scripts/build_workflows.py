"""Write the shipped workflows: UI format in workflows/, API format in tests/workflows/.

Both come from one description per graph, so they cannot drift apart:
``python scripts/build_workflows.py`` (a test checks the committed files are current).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nodes import NODE_CLASS_MAPPINGS  # noqa: E402

CHECKPOINT = "dragpd_test_sd15.safetensors"
IMAGE = "dragpd_example.png"
CLIP_WEIGHTS = "dragpd_test_clip.safetensors"
EMPTY_POINTS = '{"version": 1, "image_size": [0, 0], "pairs": [], "mask": null}'
# The UI workflows are for users: their files under common names, no points yet (the API
# copies keep the test assets and one pair, so they run unattended).
FOR_USERS = {
    CHECKPOINT: "v1-5-pruned-emaonly-fp16.safetensors",
    IMAGE: "example.png",  # ComfyUI ships input/example.png
    CLIP_WEIGHTS: "open_clip_vit_b32.safetensors",
}
EXAMPLE_POINTS = json.dumps(
    {
        "version": 1,
        "image_size": [64, 64],
        "pairs": [{"handle": [20.0, 32.0], "target": [40.0, 32.0]}],
        "mask": None,
    }
)

# Built-in ComfyUI nodes used here: (inputs, outputs, widgets in order).
BUILTIN = {
    "CheckpointLoaderSimple": (
        [],
        [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")],
        ["ckpt_name"],
    ),
    "LoadImage": ([], [("IMAGE", "IMAGE"), ("MASK", "MASK")], ["image", "upload"]),
    "CLIPTextEncode": ([("clip", "CLIP")], [("CONDITIONING", "CONDITIONING")], ["text"]),
    "VAEEncode": ([("pixels", "IMAGE"), ("vae", "VAE")], [("LATENT", "LATENT")], []),
    "SaveImage": ([("images", "IMAGE")], [], ["filename_prefix"]),
    "PreviewImage": ([("images", "IMAGE")], [], []),
}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
SEED_NAMES = {"seed"}  # the frontend adds a "control after generate" value after these


def describe(class_type: str):
    """(inputs [(name, type)], outputs [(name, type)], widgets [names]) of a node class."""
    if class_type in BUILTIN:
        return BUILTIN[class_type]
    cls = NODE_CLASS_MAPPINGS[class_type]
    spec = cls.INPUT_TYPES()
    inputs, widgets = [], []
    for group in ("required", "optional"):
        for name, (kind, *_) in spec.get(group, {}).items():
            if isinstance(kind, list) or kind in WIDGET_TYPES:
                widgets.append(name)
            else:
                inputs.append((name, kind))
    return inputs, list(zip(cls.RETURN_NAMES, cls.RETURN_TYPES, strict=True)), widgets


def basic(text_guided: bool = False) -> dict:
    """node id → (class_type, {input: value or (node id, output index)})."""
    graph = {
        1: ("CheckpointLoaderSimple", {"ckpt_name": CHECKPOINT}),
        2: ("LoadImage", {"image": IMAGE, "upload": "image"}),
        3: ("DragPDPointPicker", {"image": (2, 0), "points_json": EXAMPLE_POINTS}),
        4: ("CLIPTextEncode", {"clip": (1, 1), "text": "a photo"}),
        5: ("VAEEncode", {"pixels": (3, 0), "vae": (1, 2)}),
        6: (
            "DragPDLoraTrainer",
            {
                "model": (1, 0),
                "latent": (5, 0),
                "conditioning": (4, 0),
                "steps": 80,
                "rank": 16,
                "lr": 5e-4,
                "seed": 0,
                "save_name": "",
            },
        ),
        7: (
            "DragPDInvert",
            {
                "model": (6, 0),
                "latent": (5, 0),
                "conditioning": (4, 0),
                "steps": 50,
                "strength": 0.7,
            },
        ),
        8: (
            "DragPDSampler",
            {
                "model": (6, 0),
                "inversion": (7, 0),
                "points": (3, 1),
                "iterations": 80,
                "lr": 0.01,
                "dwpt_beta": 0.3,
                "seed": 0,
            },
        ),
        9: (
            "DragPDDecode",
            {"vae": (1, 2), "latent": (8, 0), "points": (8, 1), "original": (3, 0)},
        ),
        10: ("SaveImage", {"images": (9, 0), "filename_prefix": "dragpd"}),
        11: ("PreviewImage", {"images": (9, 1)}),
    }
    if text_guided:
        graph[12] = ("DragPDPPRLoss", {"weight": 1.0, "window": "global", "mode": "reference"})
        graph[13] = (
            "DragPDCLIPReward",
            {
                "weights_file": CLIP_WEIGHTS,
                "architecture": "ViT-B-32",
                "edit_text": "a smile",
                "weight": 5.0,
                "every": 1,
                "iterations": 20,
                "source_text": "a photo",
                "guidance": (12, 0),
            },
        )
        graph[8][1].update(guidance=(13, 0), vae=(1, 2))
    return graph


def ablation() -> dict:
    graph = basic()
    graph[12] = (
        "DragPDSettings",
        {
            "feature_block": 2,
            "supervision_scale": 0.5,
            "motion_radius": 1,
            "tracking_radius": 3,
            "background_weight": 0.1,
            "default_region": False,
            "default_region_margin": 0.15,
            "latent_blending": False,
            "anchor_original_features": False,
            "mutual_attention": True,
            "mutual_attention_start": 10,
            "reach_distance": 2.0,
        },
    )
    # the same sampler as DragPD's, with NN tracking and the DragDiffusion settings
    graph[13] = ("DragPDSampler", {**graph[8][1], "dwpt_beta": 0.0, "settings": (12, 0)})
    graph[14] = (
        "DragPDDecode",
        {"vae": (1, 2), "latent": (13, 0), "points": (13, 1), "original": (3, 0)},
    )
    graph[15] = ("SaveImage", {"images": (14, 0), "filename_prefix": "dragdiffusion_baseline"})
    graph[16] = ("DragPDPPRLoss", {"weight": 1.0, "window": "global", "mode": "reference"})
    graph[8][1]["guidance"] = (16, 0)
    graph[10][1]["filename_prefix"] = "dragpd_full"
    return graph


def to_api(graph: dict) -> dict:
    return {
        str(i): {
            "class_type": cls,
            "inputs": {
                k: ([str(v[0]), v[1]] if isinstance(v, tuple) else v) for k, v in values.items()
            },
        }
        for i, (cls, values) in graph.items()
    }


def to_ui(graph: dict) -> dict:
    nodes, links = [], []
    for order, (node_id, (cls, values)) in enumerate(graph.items()):
        inputs, outputs, widgets = describe(cls)
        ui_inputs = []
        for name, kind in inputs:
            link = None
            if name in values:
                src, slot = values[name]
                link = len(links) + 1
                links.append([link, src, slot, node_id, len(ui_inputs), kind])
            ui_inputs.append({"name": name, "type": kind, "link": link})
        widget_values = []
        for name in widgets:
            value = values.get(name, "")
            if name == "points_json":
                value = EMPTY_POINTS
            widget_values.append(FOR_USERS.get(value, value) if isinstance(value, str) else value)
            if name in SEED_NAMES:
                widget_values.append("fixed")
        nodes.append(
            {
                "id": node_id,
                "type": cls,
                "pos": [80 + 330 * (order % 4), 80 + 380 * (order // 4)],
                "size": [300, 200],
                "flags": {},
                "order": order,
                "mode": 0,
                "inputs": ui_inputs,
                "outputs": [
                    {"name": name, "type": kind, "links": [], "slot_index": i}
                    for i, (name, kind) in enumerate(outputs)
                ],
                "properties": {"Node name for S&R": cls},
                "widgets_values": widget_values,
            }
        )
    by_id = {n["id"]: n for n in nodes}
    for link_id, src, slot, _, _, _ in links:
        by_id[src]["outputs"][slot]["links"].append(link_id)
    return {
        "last_node_id": max(graph),
        "last_link_id": len(links),
        "nodes": nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {},
        "version": 0.4,
    }


WORKFLOWS = {
    "dragpd_basic_drag": basic(),
    "dragpd_text_guided_drag": basic(text_guided=True),
    "dragpd_ablation": ablation(),
}


def render() -> dict[Path, str]:
    files = {}
    for name, graph in WORKFLOWS.items():
        files[ROOT / "workflows" / f"{name}.json"] = json.dumps(to_ui(graph), indent=1) + "\n"
        files[ROOT / "tests" / "workflows" / f"{name}_api.json"] = (
            json.dumps(to_api(graph), indent=1) + "\n"
        )
    return files


if __name__ == "__main__":
    for path, text in render().items():
        path.write_text(text)
        sys.stdout.write(f"wrote {path.relative_to(ROOT)}\n")
