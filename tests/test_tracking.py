import itertools

import pytest
import torch

from dragpd.tracking import track_points


def brute_force_nearest(features, reference, handle, radius):
    _, height, width = features.shape
    best, best_d = None, None
    hx, hy = handle
    for y, x in itertools.product(
        range(hy - radius, hy + radius + 1), range(hx - radius, hx + radius + 1)
    ):
        if 0 <= x < width and 0 <= y < height:
            d = float((features[:, y, x] - reference).abs().sum())
            if best_d is None or d < best_d:
                best, best_d = (x, y), d
    return best


def test_beta_zero_is_exact_l1_nearest_neighbour_with_border_clipping():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(6, 12, 15, generator=generator)
    handles = torch.tensor([[0, 0], [14, 11], [7, 5], [2, 10], [13, 1]], dtype=torch.float64)
    targets = torch.tensor([[14, 11], [0, 0], [7, 0], [9, 10], [0, 1]], dtype=torch.float64)
    reference = torch.randn(5, 6, generator=generator)
    tracked = track_points(features, reference, handles, targets, radius=3, beta=0.0)
    for i in range(5):
        expected = brute_force_nearest(features, reference[i], handles[i].long().tolist(), 3)
        assert tuple(tracked[i].long().tolist()) == expected


@pytest.mark.parametrize("offset", [(2, -1), (-3, 3), (0, 2)])
@pytest.mark.parametrize("beta", [0.0, 0.3])
def test_a_shifted_feature_map_is_tracked_exactly(offset, beta):
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(8, 20, 20, generator=generator)
    handles = torch.tensor([[6.0, 7.0], [12.0, 13.0]])
    targets = torch.tensor([[16.0, 7.0], [2.0, 13.0]])
    reference = features[:, handles[:, 1].long(), handles[:, 0].long()].T
    shifted = torch.roll(features, shifts=(offset[1], offset[0]), dims=(1, 2))
    tracked = track_points(shifted, reference, handles, targets, radius=3, beta=beta)
    assert torch.equal(tracked, handles + torch.tensor(offset, dtype=torch.float32))


def test_dwpt_moves_toward_the_target_on_exact_ties():
    # A texture repeating along x: every cell of a row carries the same feature.
    generator = torch.Generator().manual_seed(2)
    rows = torch.randn(4, 16, 1, generator=generator)
    features = rows.expand(4, 16, 16).clone()
    handles = torch.tensor([[8.0, 8.0]])
    reference = features[:, 8, 8][None]
    right = torch.tensor([[15.0, 8.0]])
    left = torch.tensor([[0.0, 8.0]])
    nearest = track_points(features, reference, handles, right, radius=3, beta=0.0)
    assert nearest.tolist() == [[5.0, 8.0]]  # first tie in row-major order: backwards
    assert track_points(features, reference, handles, right, radius=3, beta=0.3).tolist() == [
        [11.0, 8.0]
    ]
    assert track_points(features, reference, handles, left, radius=3, beta=0.3).tolist() == [
        [5.0, 8.0]
    ]
    # Progress is capped at the target: no gain from overshooting it.
    near = torch.tensor([[10.0, 8.0]])
    assert track_points(features, reference, handles, near, radius=3, beta=0.3).tolist() == [
        [10.0, 8.0]
    ]


def test_dwpt_prefers_progress_among_near_equal_but_not_against_a_clear_match():
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(16, 15, 15, generator=generator)
    handle = torch.tensor([[7.0, 7.0]])
    target = torch.tensor([[14.0, 7.0]])
    reference = torch.randn(1, 16, generator=generator)
    # A uniquely exact match two cells behind the handle; the rest are dissimilar.
    features[:, 7, 5] = reference[0]
    assert track_points(features, reference, handle, target, 3, beta=0.3).tolist() == [[5.0, 7.0]]
    assert track_points(features, reference, handle, target, 3, beta=1.0).tolist() == [[5.0, 7.0]]
    # A near-equal match (1 % worse) two cells ahead wins under DWPT, not under NN.
    features[:, 7, 9] = reference[0] + 0.01 * torch.sign(torch.randn(16, generator=generator))
    assert track_points(features, reference, handle, target, 3, beta=0.0).tolist() == [[5.0, 7.0]]
    assert track_points(features, reference, handle, target, 3, beta=0.3).tolist() == [[9.0, 7.0]]


def test_dwpt_is_scale_free():
    generator = torch.Generator().manual_seed(4)
    features = torch.randn(8, 12, 12, generator=generator)
    handles = torch.tensor([[5.0, 5.0], [2.0, 9.0]])
    targets = torch.tensor([[11.0, 0.0], [9.0, 9.0]])
    reference = torch.randn(2, 8, generator=generator)
    a = track_points(features, reference, handles, targets, 3, beta=0.5)
    b = track_points(features * 37.0, reference * 37.0, handles, targets, 3, beta=0.5)
    assert torch.equal(a, b)


def test_inputs_are_not_modified():
    generator = torch.Generator().manual_seed(5)
    tensors = [
        torch.randn(4, 10, 10, generator=generator),
        torch.randn(1, 4, generator=generator),
        torch.tensor([[3.0, 4.0]]),
        torch.tensor([[9.0, 4.0]]),
    ]
    copies = [t.clone() for t in tensors]
    track_points(*tensors, radius=2, beta=0.5)
    assert all(torch.equal(t, c) for t, c in zip(tensors, copies, strict=True))


def test_negative_beta_is_refused():
    with pytest.raises(ValueError, match="beta must be >= 0"):
        track_points(
            torch.zeros(1, 4, 4), torch.zeros(1, 1), torch.zeros(1, 2), torch.ones(1, 2), beta=-0.1
        )
