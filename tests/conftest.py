import pathlib

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Deliberately different sizes so that swapped axes fail (STYLE.md).
B, T, S, C, H = 3, 5, 7, 12, 3


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def root() -> pathlib.Path:
    return ROOT
