"""Shared fixtures. Tests run offline, on the CPU, with tiny seeded models."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may download, even by accident

from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"


def pytest_configure(config: pytest.Config) -> None:
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def points_fixture_text() -> str:
    return (FIXTURES / "points_v1.json").read_text()


@pytest.fixture(scope="session")
def unet():
    from dragpd.tiny import tiny_unet

    return tiny_unet(seed=0)
