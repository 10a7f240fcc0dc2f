import torch

from dragpd.motion import (
    background_loss,
    default_editable_region,
    mask_to_grid,
    motion_supervision_loss,
    sample_patches,
)
from dragpd.points import DragPoints


def test_patches_at_integer_centres_equal_slices():
    features = torch.randn(5, 12, 10, generator=torch.Generator().manual_seed(0))
    centers = torch.tensor([[4.0, 6.0], [1.0, 1.0]])
    patches = sample_patches(features, centers, radius=1)
    assert patches.shape == (2, 5, 3, 3)
    assert torch.allclose(patches[0], features[:, 5:8, 3:6], atol=1e-6)
    assert torch.allclose(patches[1], features[:, 0:3, 0:3], atol=1e-6)


def test_patches_between_cells_interpolate_bilinearly():
    features = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(1))
    patch = sample_patches(features, torch.tensor([[3.5, 2.25]]), radius=0)[0, :, 0, 0]
    row2 = 0.5 * (features[:, 2, 3] + features[:, 2, 4])
    row3 = 0.5 * (features[:, 3, 3] + features[:, 3, 4])
    assert torch.allclose(patch, 0.75 * row2 + 0.25 * row3, atol=1e-6)


def test_motion_loss_scale_direction_and_arrival():
    generator = torch.Generator().manual_seed(2)
    features = torch.randn(4, 10, 10, generator=generator, requires_grad=True)
    handles = torch.tensor([[3.0, 4.0], [8.0, 8.0]])
    targets = torch.tensor([[7.0, 4.0], [8.0, 9.0]])  # the second is within 2 cells: done
    loss = motion_supervision_loss(features, handles, targets, radius=1, reach_distance=2.0)
    f = features.detach()
    expected = 9 * (f[:, 3:6, 3:6] - f[:, 3:6, 2:5]).abs().mean()
    assert torch.allclose(loss, expected, atol=1e-6)
    loss.backward()
    # Only the patch one cell ahead receives gradient (the handle's patch is detached).
    touched = features.grad.abs().sum(0) > 0
    assert touched[3:6, 3:6].all() and int(touched.sum()) == 9
    arrived = motion_supervision_loss(f, targets, targets, 1, 2.0)
    assert float(arrived) == 0.0


def test_anchor_patches_replace_the_current_handle_patch():
    features = torch.randn(4, 10, 10, generator=torch.Generator().manual_seed(3))
    handles, targets = torch.tensor([[3.0, 4.0]]), torch.tensor([[9.0, 4.0]])
    anchor = torch.zeros(1, 4, 3, 3)
    loss = motion_supervision_loss(features, handles, targets, 1, 2.0, anchor_patches=anchor)
    assert torch.allclose(loss, 9 * features[:, 3:6, 3:6].abs().mean(), atol=1e-6)


def test_background_loss_ignores_the_editable_region():
    prediction = torch.ones(1, 4, 4, 4)
    reference = torch.zeros(1, 4, 4, 4)
    editable = torch.zeros(4, 4)
    editable[:2] = 1
    assert float(background_loss(prediction, reference, editable)) == 4 * 2 * 4


def test_default_region_covers_the_paths_and_nothing_far():
    points = DragPoints([[10.0, 10.0]], [[40.0, 10.0]], (64, 64))
    region = default_editable_region(points, margin=0.1)  # 6.4 px capsule
    assert region[10, 10] and region[10, 40] and region[15, 25]
    assert not region[20, 25] and not region[60, 60] and not region[10, 50]


def test_mask_to_grid_keeps_any_touched_cell():
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[5, 9] = True  # one pixel in cell (row 1, col 2) of a 4×4 grid
    grid = mask_to_grid(mask, (4, 4))
    assert grid.tolist()[1] == [0.0, 0.0, 1.0, 0.0] and float(grid.sum()) == 1.0
