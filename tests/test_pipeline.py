import torch
from PIL import Image

from dragpd import DragConfig, DragPoints
from dragpd.pipeline import DragPDPipeline, image_to_tensor, tensor_to_image
from dragpd.tiny import TINY_PRESET, tiny_unet, tiny_vae


def pipeline() -> DragPDPipeline:
    def encode_prompt(text: str) -> torch.Tensor:
        seed = sum(map(ord, text))
        return torch.randn(1, 7, 32, generator=torch.Generator().manual_seed(seed))

    return DragPDPipeline(tiny_unet(), tiny_vae(), encode_prompt, model="sd15")


def test_image_tensor_round_trip():
    image = Image.fromarray(
        (torch.rand(20, 30, 3, generator=torch.Generator().manual_seed(0)) * 255).byte().numpy()
    )
    tensor = image_to_tensor(image)
    assert tensor.shape == (1, 3, 20, 30)
    assert tensor_to_image(tensor).tobytes() == image.tobytes()


def test_edit_runs_end_to_end_with_crop_cache_and_cleanup():
    pipe = pipeline()
    image = Image.new("RGB", (133, 130), (120, 140, 160))  # not a multiple of 8: cropped
    points = DragPoints([[40.0, 60.0]], [[80.0, 60.0]], (130, 133))
    config = DragConfig.for_model(
        "sd15", **TINY_PRESET, max_iterations=3, lora_steps=2, num_inference_steps=10
    )
    first = pipe.edit(image, points, "a photo", config=config)
    assert first.image.size == (128, 128)
    assert list(first.history) == ["lora", "inversion", "drag", "denoise", "decode"]
    assert not first.history["lora"]["cached"] and len(first.history["lora"]["losses"]) == 2
    assert first.drag.iterations == 3 and first.seconds > 0
    # shifted by the crop (2 columns, 1 row) to (38, 59), on the 64² grid cell (19, 29)
    assert first.drag.history[0].handles.tolist() == [[38.5, 58.5]]
    assert not getattr(pipe.unet, "peft_config", {})  # adapter gone after the edit
    again = pipe.edit(image, points, "a photo", config=config)
    assert again.history["lora"]["cached"]
    assert torch.equal(again.drag.latent, first.drag.latent)
    other = pipe.edit(image, points, "another prompt", config=config)
    assert not other.history["lora"]["cached"]


def test_points_for_another_image_size_are_refused():
    import pytest

    with pytest.raises(ValueError, match="points refer to a 64×64 image"):
        pipeline().edit(Image.new("RGB", (128, 128)), DragPoints([[1, 1]], [[9, 9]], (64, 64)), "x")


def test_an_edit_text_turns_the_reward_on_unless_the_config_says_otherwise(caplog):
    from dragpd.config import TEXT_EDIT_CLIP_WEIGHT

    pipe = pipeline()
    assert pipe.config_for(None, None).clip_weight == 0
    assert pipe.config_for(None, "a blue circle").clip_weight == TEXT_EDIT_CLIP_WEIGHT
    mine = DragConfig(clip_weight=2.0)
    assert pipe.config_for(mine, "a blue circle") is mine
    with caplog.at_level("WARNING", logger="dragpd.pipeline"):
        assert pipe.config_for(DragConfig(), "a blue circle").clip_weight == 0
    assert "edit_text 'a blue circle' is not used" in caplog.text
