import itertools
import json
import math

import pytest
import torch

from dragpd.points import (
    BrushStroke,
    DragPoints,
    mask_to_strokes,
    parse_points_document,
    rasterize_strokes,
    scale_points,
)


def brute_force_raster(strokes, size):
    """Independent pure-Python rasteriser: squared distance to each segment <= r²."""
    height, width = size
    mask = [[False] * width for _ in range(height)]
    for stroke in strokes:
        pts = list(stroke.points)
        segments = list(itertools.pairwise(pts)) or [(pts[0], pts[0])]
        for r in range(height):
            for c in range(width):
                hit = False
                for (ax, ay), (bx, by) in segments:
                    dx, dy = bx - ax, by - ay
                    l2 = dx * dx + dy * dy
                    t = 0.0 if l2 == 0 else min(1.0, max(0.0, ((c - ax) * dx + (r - ay) * dy) / l2))
                    ex, ey = c - (ax + t * dx), r - (ay + t * dy)
                    hit = hit or ex * ex + ey * ey <= stroke.radius * stroke.radius
                if hit:
                    mask[r][c] = not stroke.erase
    return torch.tensor(mask)


def test_fixture_round_trips_exactly(points_fixture_text):
    points = DragPoints.from_json(points_fixture_text)
    assert points.image_size == (48, 64)
    assert points.handles.tolist() == [[12.0, 30.0], [50.0, 10.0]]
    assert points.targets.tolist() == [[40.0, 28.0], [50.0, 20.0]]
    assert json.loads(points.to_json()) == json.loads(points_fixture_text)
    assert DragPoints.from_json(points.to_json()) == points


def test_fixture_mask_matches_independent_rasteriser(points_fixture_text):
    points = DragPoints.from_json(points_fixture_text)
    expected = brute_force_raster(points.strokes, points.image_size)
    assert torch.equal(points.mask, expected)
    assert 300 < int(points.mask.sum()) < 900  # the strokes paint a real region
    assert not points.mask[30, 30]  # erased by the third stroke
    assert points.mask[28, 20]  # inside the first capsule


def test_disc_radius_semantics():
    one = rasterize_strokes([BrushStroke(((2.0, 2.0),), 1.0)], (5, 5))
    assert int(one.sum()) == 5  # centre and its 4 neighbours at distance 1
    wider = rasterize_strokes([BrushStroke(((2.0, 2.0),), 1.5)], (5, 5))
    assert int(wider.sum()) == 9  # diagonals at √2 join


def test_any_mask_survives_json_exactly():
    generator = torch.Generator().manual_seed(3)
    mask = torch.rand(17, 23, generator=generator) > 0.6
    points = DragPoints([[1.0, 2.0]], [[5.5, 7.25]], (17, 23), mask=mask)
    back = DragPoints.from_json(points.to_json())
    assert torch.equal(back.mask, mask)
    assert torch.equal(rasterize_strokes(mask_to_strokes(mask), (17, 23)), mask)
    assert back.targets.tolist() == [[5.5, 7.25]]


def test_inputs_are_copied_not_modified():
    handles = torch.tensor([[3.0, 4.0]])
    targets = [[10.0, 4.0]]
    mask = torch.zeros(8, 16, dtype=torch.bool)
    points = DragPoints(handles, targets, (8, 16), mask=mask)
    handles[0, 0] = 7.0
    mask[0, 0] = True
    assert points.handles.tolist() == [[3.0, 4.0]]
    assert not points.mask[0, 0]
    assert targets == [[10.0, 4.0]]


@pytest.mark.parametrize(
    ("handles", "targets", "size", "mask", "message"),
    [
        ([], [], (8, 8), None, "no handle → target pairs"),
        ([[1, 1], [2, 2]], [[3, 3]], (8, 8), None, "2 handles but 1 targets"),
        ([[1, 1]], [[9, 3]], (8, 8), None, r"pair 0: target \(9, 3\) lies outside the 8×8"),
        ([[1, 1], [2, -1]], [[3, 3], [4, 4]], (8, 8), None, "pair 1: handle"),
        ([[math.nan, 1]], [[3, 3]], (8, 8), None, "pair 0: handle .* not a finite number"),
        ([[1, 1]], [[math.inf, 3]], (8, 8), None, "pair 0: target .* not a finite number"),
        ([[1, 1]], [[3, 3]], (8, 8), torch.ones(8, 9), r"mask has shape \(8, 9\)"),
        ([[1, 1, 1]], [[3, 3, 3]], (8, 8), None, r"\(N, 2\)"),
        ([[1, 1]], [[3, 3]], (0, 8), None, "image_size must be positive"),
    ],
)
def test_bad_points_are_refused_with_a_reason(handles, targets, size, mask, message):
    with pytest.raises(ValueError, match=message):
        DragPoints(handles, targets, size, mask=mask)


def test_border_pixels_are_inside():
    points = DragPoints([[-0.5, -0.5]], [[7.5, 5.5]], (6, 8))
    assert len(points) == 1


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"version": 2, "image_size": [8, 8], "pairs": []}', "version 2"),
        ('{"version": 1, "image_size": [8], "pairs": []}', "image_size must be"),
        ('{"version": 1, "image_size": [8, 8]}', "pairs must be a list"),
        ('{"version": 1, "image_size": [8, 8], "pairs": [{"handle": [1, 1]}]}', "pair 0 must"),
        (
            '{"version": 1, "image_size": [8, 8], "pairs": [{"handle": [1, "a"], '
            '"target": [1, 1]}]}',
            "pair 0 handle must be a list of two numbers",
        ),
        (
            '{"version": 1, "image_size": [8, 8], "pairs": [], "mask": {"strokes": '
            '[{"points": [[1, 1]], "radius": -2}]}}',
            "mask stroke 0 radius must be a positive number",
        ),
        (
            '{"version": 1, "image_size": [8, 8], "pairs": [], "mask": {"strokes": '
            '[{"points": [], "radius": 2}]}}',
            "mask stroke 0 has no points",
        ),
    ],
)
def test_bad_json_is_refused_with_a_reason(document, message):
    with pytest.raises(ValueError, match=message):
        DragPoints.from_json(document)


def test_empty_pairs_parse_for_the_picker_but_make_no_points():
    text = '{"version": 1, "image_size": [8, 8], "pairs": [], "mask": null}'
    assert parse_points_document(text)["pairs"] == []
    with pytest.raises(ValueError, match="place at least one pair"):
        DragPoints.from_json(text)


def test_rescaling_keeps_pixel_centres():
    # Pixels 0 and 1 of a 64-wide image share cell 0 of a 32-wide grid: their
    # midpoint 0.5 is that cell's centre; the image edge stays the grid edge.
    xy = torch.tensor([[0.5, 0.5], [-0.5, -0.5], [63.5, 47.5]], dtype=torch.float64)
    grid = scale_points(xy, (48, 64), (24, 32))
    assert grid.tolist() == [[0.0, 0.0], [-0.5, -0.5], [31.5, 23.5]]
    assert torch.allclose(scale_points(grid, (24, 32), (48, 64)), xy)
    points = DragPoints(xy[:1], xy[2:], (48, 64))
    handles, targets = points.to_grid((6, 8))
    assert handles.tolist() == [[-0.375, -0.375]]
    assert targets.tolist() == [[7.5, 5.5]]  # the image edge is the grid edge
