import math

import numpy as np
import pytest
import torch

from course_lib.positional import (
    LearnedPositionalEmbedding,
    PositionalEncoding,
    pair_frequencies,
    relative_rotation,
    sinusoidal_encoding,
)


def numpy_table(n_positions, d_model):
    """The paper's formula, written independently, one entry at a time."""
    table = np.zeros((n_positions, d_model))
    for pos in range(n_positions):
        for dim in range(d_model):
            i = dim // 2  # i indexes dimension pairs
            angle = pos / 10000 ** (2 * i / d_model)
            table[pos, dim] = math.sin(angle) if dim % 2 == 0 else math.cos(angle)
    return table


@pytest.mark.parametrize("n, d", [(11, 10), (50, 12), (7, 5), (3, 1)])
def test_table_matches_formula(n, d):
    np.testing.assert_allclose(sinusoidal_encoding(n, d, dtype=torch.float64).numpy(), numpy_table(n, d), atol=1e-12)


def test_d_model_4_row_is_sin_cos_of_pos_and_pos_over_100():
    pos = 3
    row = sinusoidal_encoding(10, 4, dtype=torch.float64)[pos]
    np.testing.assert_allclose(row.numpy(), [math.sin(3), math.cos(3), math.sin(3 / 100), math.cos(3 / 100)])


def test_concatenated_layout_is_a_column_permutation():
    inter = sinusoidal_encoding(20, 8)
    concat = sinusoidal_encoding(20, 8, layout="concatenated")
    torch.testing.assert_close(concat, inter[:, [0, 2, 4, 6, 1, 3, 5, 7]])


def test_wavelengths_span_2pi_to_almost_10000_2pi():
    wavelengths = 2 * math.pi / pair_frequencies(512)
    assert math.isclose(float(wavelengths[0]), 2 * math.pi)
    assert 2 * math.pi * 9000 < float(wavelengths[-1]) < 2 * math.pi * 10000


@pytest.mark.parametrize("k", [1, 3, 17])
def test_relative_position_is_a_fixed_linear_map(k):
    pe = sinusoidal_encoding(100, 16, dtype=torch.float64)
    M = relative_rotation(k, 16)
    torch.testing.assert_close(pe[k:] , pe[:-k] @ M.T)
    # the dot product of two encodings depends on the offset only
    dots = (pe[:-k] * pe[k:]).sum(-1)
    torch.testing.assert_close(dots, dots[0].expand_as(dots))


def test_modules():
    x = torch.zeros(2, 6, 10)
    torch.testing.assert_close(PositionalEncoding(10, max_len=20)(x)[0], sinusoidal_encoding(6, 10))
    learned = LearnedPositionalEmbedding(8, 10)
    torch.testing.assert_close(learned(x)[1], learned.embedding.weight[:6])
    with pytest.raises(ValueError, match="exceeds max_len"):
        learned(torch.zeros(1, 9, 10))
    with pytest.raises(ValueError, match="exceeds max_len"):
        PositionalEncoding(10, max_len=4)(x)
    with pytest.raises(ValueError, match="d_model=10"):
        PositionalEncoding(10)(torch.zeros(2, 6, 11))


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: sinusoidal_encoding(0, 4), "n_positions"),
        (lambda: sinusoidal_encoding(4, 0), "d_model"),
        (lambda: sinusoidal_encoding(4, 4.0), "d_model"),
        (lambda: sinusoidal_encoding(4, 4, layout="blocks"), "layout"),
        (lambda: relative_rotation(1, 5), "even d_model"),
    ],
)
def test_bad_input(call, words):
    with pytest.raises(ValueError, match=words):
        call()
