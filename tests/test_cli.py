"""The command line: the README's main job (``demo``) and ``edit`` on the toy model."""

import json

import numpy as np
from PIL import Image

from dragpd.__main__ import main
from dragpd.toy import make_scene
from dragpd.toy.metrics import score_drag


def test_demo_writes_its_pngs_and_reports_the_error(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--iterations", "40"]) == 0
    printed = capsys.readouterr().out
    assert "measured: the shape's centroid ends" in printed
    for name in ("before.png", "after.png", "overlay.png"):
        assert Image.open(tmp_path / name).size[0] >= 64 * 6


def test_edit_drags_a_picked_shape_and_writes_the_result(tmp_path, capsys):
    scene = make_scene(7)
    shape = scene.shapes[0]
    (cx, cy), target = shape["center"], (shape["center"][0] + 8, shape["center"][1])
    scene.image.save(tmp_path / "scene.png")
    points = {  # as the Point Picker writes it: pixel centres, no strokes
        "version": 1,
        "image_size": [64, 64],
        "pairs": [{"handle": [round(cx), round(cy)], "target": [round(cx) + 8, round(cy)]}],
        "mask": {"strokes": []},
    }
    (tmp_path / "points.json").write_text(json.dumps(points))
    args = ["edit", str(tmp_path / "scene.png"), str(tmp_path / "points.json"), "--toy"]
    args += ["--prompt", scene.caption, "--out", str(tmp_path / "out"), "--lora-steps", "20"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "pair 1: handle" in printed and "wrote" in printed
    edited = Image.open(tmp_path / "out" / "edited.png")
    assert edited.size == (64, 64)
    score = score_drag(scene.image, edited, shape, target)
    assert score.moved > 4 and score.error < 4  # measured: moved ~8, error ~1 px
    assert Image.open(tmp_path / "out" / "overlay.png").size[0] > 128
    assert np.asarray(Image.open(tmp_path / "scene.png")).shape == (64, 64, 3)  # untouched
