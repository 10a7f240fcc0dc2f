"""The Point Picker's JS logic, run by node's test runner from the one test command."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from dragpd import DragPoints

ROOT = Path(__file__).resolve().parents[1]


def test_mask_fixture_is_pythons_raster(points_fixture_text):
    expected = json.loads((ROOT / "tests" / "fixtures" / "points_v1_mask.json").read_text())
    mask = DragPoints.from_json(points_fixture_text).mask
    assert torch.equal(mask.int(), torch.tensor(expected))


def test_node_test_runner_passes():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the JS tests need Node.js >= 18")
    run = subprocess.run(
        [node, "--test", "tests/js/"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "# fail 0" in run.stdout
