import numpy as np
import pytest

from dragpd.toy import COLORS, KINDS, ToyTokenizer, make_scene
from dragpd.toy.metrics import score_drag, shape_pixels
from dragpd.toy.scenes import render_scene
from dragpd.toy.tasks import make_task


def test_scenes_are_deterministic_and_well_formed():
    a, b = make_scene(3), make_scene(3)
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert a.caption == b.caption and a.shapes == b.shapes
    for seed in range(40):
        scene = make_scene(seed)
        assert scene.image.size == (64, 64) and scene.image.mode == "RGB"
        colors = [s["color"] for s in scene.shapes]
        assert len(set(colors)) == len(colors) and 1 <= len(colors) <= 2
        for shape in scene.shapes:
            assert shape["kind"] in KINDS and tuple(shape["rgb"]) == COLORS[shape["color"]]
            half = shape["size"] / 2
            assert half <= shape["center"][0] <= 63 - half
            assert f"{shape['color']} {shape['kind']}" in scene.caption
            # the shape is really there, in its colour, about where it should be
            ys, xs = np.mgrid[0:64, 0:64]
            near = np.hypot(xs - shape["center"][0], ys - shape["center"][1]) < shape["size"]
            ys, xs = np.nonzero(shape_pixels(scene.image, shape["rgb"]) & near)
            assert (
                abs(xs.mean() - shape["center"][0]) < 3 and abs(ys.mean() - shape["center"][1]) < 3
            )
    backgrounds = np.stack([np.asarray(make_scene(s).image)[0, 0] for s in range(10)])
    assert backgrounds.std(0).mean() > 10  # backgrounds vary between scenes


def test_tokenizer_is_word_level_with_eos_last():
    tokenizer = ToyTokenizer()
    ids = tokenizer(["a red circle and an orange square", "make it purple!"])
    assert ids.shape == (2, 16)
    assert int(ids[0].argmax()) == 8  # <eos> (the largest id) right after 7 words + <bos>
    assert ids[0, 8] == tokenizer.vocab_size - 1
    assert ids[1, 3] == tokenizer.ids["<unk>"]  # "purple!" is not a word it knows


def test_drag_score_on_a_known_move():
    scene = make_scene(11)
    shape = scene.shapes[0]
    offset = np.array([6.0, -4.0])
    moved_shapes = [dict(s) for s in scene.shapes]
    moved_shapes[0]["center"] = tuple(np.asarray(shape["center"]) + offset)
    moved = render_scene(moved_shapes, scene.background)
    target = np.asarray(shape["center"]) + offset
    good = score_drag(scene.image, moved, shape, target)
    assert good.error < 0.3 and good.moved == pytest.approx(np.linalg.norm(offset), abs=0.3)
    assert good.area_ratio == pytest.approx(1.0, abs=0.05) and good.color_shift < 3
    assert good.background_psnr > 40  # only the shape moved
    still = score_drag(scene.image, scene.image, shape, target)
    assert still.error == pytest.approx(np.linalg.norm(offset), abs=0.3) and still.moved < 0.3


def test_a_recoloured_shape_is_found_by_its_new_colour():
    scene = make_scene(11)
    shape = scene.shapes[0]
    new = next(c for c in COLORS if c not in {s["color"] for s in scene.shapes})
    shapes = [dict(s) for s in scene.shapes]
    shapes[0].update(color=new, rgb=COLORS[new])
    recoloured = render_scene(shapes, scene.background)
    lost = score_drag(scene.image, recoloured, shape, shape["center"])
    found = score_drag(scene.image, recoloured, shape, shape["center"], COLORS[new])
    assert lost.area_ratio == 0.0 or lost.error == np.inf
    assert found.error < 0.3 and found.area_ratio == pytest.approx(1.0, abs=0.05)
    assert found.color_shift > 50


def test_tasks_keep_shapes_inside_and_apart():
    found = [make_task(seed, 16.0, recolor=True) for seed in range(5000, 5030)]
    found = [t for t in found if t is not None]
    assert len(found) >= 20
    for task in found:
        (tx, ty) = task.points.targets[0].tolist()
        half = task.shape["size"] / 2
        assert half < tx < 63 - half and half < ty < 63 - half
        assert np.hypot(*task.offset) == pytest.approx(16.0)
        assert task.new_color not in {s["color"] for s in task.scene.shapes}
        assert task.new_color in task.edit_text
