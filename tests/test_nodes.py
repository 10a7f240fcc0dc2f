"""Every node function on tiny models through the bridge's plain-torch fallback."""

import json

import pytest
import torch
from PIL import Image

import nodes
from dragpd import DragConfig, DragPoints
from dragpd.guidance import ClipTerm, PriorTerm, apply_guidance
from dragpd.inversion import Inversion
from dragpd.tiny import TINY_PRESET, tiny_unet, tiny_vae
from nodes import comfy_bridge as bridge
from nodes.decode import DragPDDecode
from nodes.guidance_nodes import DragPDCLIPReward, DragPDPPRLoss
from nodes.invert import DragPDInvert
from nodes.lora_trainer import DragPDLoraTrainer
from nodes.point_picker import DragPDPointPicker
from nodes.sampler import DragPDSampler
from nodes.settings import DragPDSettings

COND = [[torch.randn(1, 7, 32, generator=torch.Generator().manual_seed(0)), {}]]
POINTS_JSON = json.dumps(
    {
        "version": 1,
        "image_size": [130, 133],
        "pairs": [{"handle": [42.0, 65.0], "target": [82.0, 65.0]}],
        "mask": None,
    }
)


@pytest.fixture(scope="module")
def graph():
    """Run the basic workflow once: picker → LoRA → invert → sampler → decode."""
    base = tiny_unet(seed=0)
    weights = {k: v.clone() for k, v in base.state_dict().items()}
    model = bridge.PlainModel(base)
    vae = tiny_vae()
    image = torch.rand(1, 130, 133, 3, generator=torch.Generator().manual_seed(1))
    picked = DragPDPointPicker().pick(image, POINTS_JSON)["result"]
    cropped, points, mask = picked
    with torch.no_grad():
        samples = vae.encode(cropped.permute(0, 3, 1, 2) * 2 - 1).latent_dist.mean
    latent = {"samples": samples}
    (lora_model,) = DragPDLoraTrainer().train(model, latent, COND, 2, 4, 1e-3, 0)
    (inversion,) = DragPDInvert().invert(lora_model, latent, COND, 10, 0.7)
    (settings,) = DragPDSettings().build(**{**_settings_defaults(), **TINY_PRESET})
    (guidance,) = DragPDPPRLoss().build(1.0, "global", "reference")
    edited, moved = DragPDSampler().sample(
        lora_model, inversion, points, 3, 0.01, 0.3, 0, guidance=guidance, settings=settings
    )
    decoded, comparison = DragPDDecode().decode(vae, edited, moved, cropped)
    return locals()


def _settings_defaults():
    required = DragPDSettings.INPUT_TYPES()["required"]
    return {name: spec[1]["default"] for name, spec in required.items()}


def test_the_basic_graph_runs_and_returns_comfyui_types(graph):
    assert graph["cropped"].shape == (1, 128, 128, 3)  # centre-cropped to multiples of 8
    assert graph["mask"].shape == (1, 128, 128) and float(graph["mask"].sum()) == 0
    assert graph["points"].handles.tolist() == [[40.0, 64.0]]  # shifted by the crop (2, 1)
    assert isinstance(graph["inversion"], Inversion)
    assert graph["edited"]["samples"].shape == (1, 4, 16, 16)
    assert isinstance(graph["moved"], DragPoints)
    assert graph["decoded"].shape == (1, 128, 128, 3)
    assert graph["comparison"].shape[0] == 1 and graph["comparison"].shape[-1] == 3
    assert graph["guidance"] == (PriorTerm(1.0, "reference", "global"),)


def test_the_model_is_never_mutated(graph):
    base, weights = graph["base"], graph["weights"]
    assert all(torch.equal(v, weights[k]) for k, v in base.state_dict().items())
    assert graph["model"].lora is None and graph["lora_model"].lora is not None
    assert not getattr(base, "peft_config", {})


def test_sampler_sends_a_preview_of_the_edit_every_few_iterations(graph):
    sampler = DragPDSampler()
    sampler.sample(
        graph["lora_model"],
        graph["inversion"],
        graph["points"],
        6,
        0.01,
        0.3,
        0,
        vae=graph["vae"],
        settings=graph["settings"],
    )
    assert sampler.progress.previews == 2  # iterations 0 and 5


def test_sampler_refuses_an_inversion_of_another_model(graph):
    other = bridge.PlainModel(tiny_unet(seed=3))
    with pytest.raises(ValueError, match="made with a different MODEL"):
        DragPDSampler().sample(other, graph["inversion"], graph["points"], 1, 0.01, 0.3, 0)


def test_picker_without_pairs_blocks_instead_of_failing():
    image = torch.rand(1, 64, 64, 3)
    out = DragPDPointPicker().pick(image, '{"version": 1, "image_size": [64, 64], "pairs": []}')
    assert "ui" in out and out["result"] == (None, None, None)  # ExecutionBlocker in ComfyUI


def test_picker_reads_an_uploaded_image_and_reports_the_points_it_sends(tmp_path):
    pixels = (torch.rand(1, 67, 70, 3, generator=torch.Generator().manual_seed(2)) * 255).round()
    path = tmp_path / "photo.png"
    Image.fromarray(pixels[0].byte().numpy()).save(path)
    text = json.dumps(
        {"version": 1, "image_size": [67, 70], "pairs": [{"handle": [10, 20], "target": [30, 21]}]}
    )
    out = DragPDPointPicker().pick(points_json=text, upload=str(path))
    image, points, _ = out["result"]
    assert image.shape == (1, 64, 64, 3)  # centre crop: 1 row off the top, 3 columns off the left
    assert torch.equal(image[0] * 255, pixels[0, 1:65, 3:67])
    assert out["ui"]["dragpd_points"] == [
        {
            "image_size": [64, 64],
            "pairs": [{"handle": [7.0, 19.0], "target": [27.0, 20.0]}],
            "masked": False,
        }
    ]
    assert torch.equal(points.handles, torch.tensor([[7.0, 19.0]], dtype=torch.float64))
    first = DragPDPointPicker.IS_CHANGED(points_json=text, upload=str(path))
    Image.fromarray(pixels[0].byte().numpy()[::-1].copy()).save(path)
    assert DragPDPointPicker.IS_CHANGED(points_json=text, upload=str(path)) != first
    with pytest.raises(ValueError, match="connect an IMAGE"):
        DragPDPointPicker().pick(points_json=text)
    with pytest.raises(ValueError, match="upload it again"):
        DragPDPointPicker().pick(points_json=text, upload=str(tmp_path / "gone.png"))


@pytest.mark.parametrize(
    ("image", "text", "message"),
    [
        (torch.rand(2, 64, 64, 3), POINTS_JSON, "takes one image; got a batch of 2"),
        (torch.rand(1, 64, 64, 3), "{oops", "not valid JSON"),
        (torch.rand(1, 64, 32, 3), POINTS_JSON, "placed on a 130×133 image"),
    ],
)
def test_picker_errors_say_what_to_fix(image, text, message):
    with pytest.raises(ValueError, match=message):
        DragPDPointPicker().pick(image, text)


def test_guidance_chains_and_clip_without_weights_names_the_folder(tmp_path):
    (ppr,) = DragPDPPRLoss().build(2.0, "region", "noise")
    weights = tmp_path / "clip.safetensors"
    weights.write_bytes(b"")
    (both,) = DragPDCLIPReward().build(
        str(weights), "ViT-B-32", "a smile", 1.5, 4, 12, "a face", guidance=ppr
    )
    assert both == (
        PriorTerm(2.0, "noise", "region"),
        ClipTerm(str(weights), "ViT-B-32", "a smile", "a face", 1.5, 4, 12),
    )
    with pytest.raises(ValueError, match=r"no open_clip weights 'missing\.bin'"):
        DragPDCLIPReward().build("missing.bin", "ViT-B-32", "a smile", 1.0, 1)
    config, clip = apply_guidance(DragConfig(), both)
    assert (config.clip_weight, config.clip_every, config.clip_iterations) == (1.5, 4, 12)
    assert (config.ppr_weight, config.ppr_mode, config.ppr_window) == (2.0, "noise", "region")
    assert clip == both[1]


def test_lora_save_names_cannot_escape_the_folder(tmp_path):
    assert bridge.sanitise_name("../../etc/passwd") == "passwd.safetensors"
    assert bridge.sanitise_name("my lora v2") == "my_lora_v2.safetensors"
    with pytest.raises(ValueError, match="not a usable file name"):
        bridge.sanitise_name("../..")
    path = bridge.save_lora({"x": torch.zeros(2)}, "../evil", folder=tmp_path)
    assert path.parent == tmp_path and path.name == "evil.safetensors"


def test_every_node_follows_the_pack_conventions():
    for node_id, cls in nodes.NODE_CLASS_MAPPINGS.items():
        assert node_id.startswith("DragPD") and cls.CATEGORY == "DragPD"
        assert len(cls.DESCRIPTION) > 40 and callable(getattr(cls, cls.FUNCTION))
        assert node_id in nodes.NODE_DISPLAY_NAME_MAPPINGS
        spec = cls.INPUT_TYPES()
        for group in ("required", "optional"):
            for name, (_, options) in spec.get(group, {}).items():
                assert options.get("tooltip"), f"{node_id}.{name} has no tooltip"
        assert len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES) == len(cls.OUTPUT_TOOLTIPS)


def test_shipped_workflows_are_current_and_complete():
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location(
        "build_workflows", root / "scripts" / "build_workflows.py"
    )
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    for path, text in builder.render().items():
        assert path.read_text() == text, f"{path.name} is stale: run scripts/build_workflows.py"
    for path in (root / "tests" / "workflows").glob("*_api.json"):
        graph = json.loads(path.read_text())
        for node_id, node in graph.items():
            cls = nodes.NODE_CLASS_MAPPINGS.get(node["class_type"])
            if cls is None:
                continue  # a built-in ComfyUI node
            required = cls.INPUT_TYPES()["required"]
            missing = set(required) - set(node["inputs"])
            assert not missing, f"{path.name} node {node_id} lacks {missing}"
