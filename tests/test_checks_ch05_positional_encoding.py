"""The ch05_positional_encoding checks pass on right answers and fail, with the right hint, on planted mistakes."""

import math

import numpy as np
import pytest
import torch

from course_lib.checks.ch05_positional_encoding import (
    PLANTED_MISTAKE,
    check_bug_diagnosis,
    check_fixed_encoding,
    check_rotation_matrix,
    check_rotation_matrix_other_cases,
    check_sinusoidal_table,
    check_sinusoidal_table_other_sizes,
)
from course_lib.positional import MISTAKES, faulty_sinusoidal_encoding, relative_rotation, sinusoidal_encoding

from check_cases import fails_with


def numpy_table(n, d):
    """An independent right answer, in NumPy (the check accepts arrays)."""
    table = np.zeros((n, d))
    for pos in range(n):
        for j in range(d):
            angle = pos / 10000 ** (2 * (j // 2) / d)
            table[pos, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    return table


def test_table_passes():
    for check in (check_sinusoidal_table, check_sinusoidal_table_other_sizes, check_fixed_encoding):
        check(lambda n, d: sinusoidal_encoding(n, d, dtype=torch.float64))
        check(numpy_table)


@pytest.mark.parametrize(
    "mistake, words",
    [
        ("i_instead_of_2i", ["2i / d_model with i the pair index"]),
        ("column_as_2i", ["every cosine column is off"]),
        ("column_as_i", ["*pair* index"]),
        ("sin_cos_swapped", ["row 0 (position 0)", "swapped"]),
        ("degrees", ["radians"]),
        ("concatenated", ["interleaved"]),
        ("positions_from_1", ["positions start at 0"]),
    ],
)
def test_table_fails_with_mistake_hint(mistake, words):
    fails_with(check_sinusoidal_table, lambda n, d: faulty_sinusoidal_encoding(n, d, mistake), *words)


def test_table_fails_on_float32_and_transpose():
    fails_with(check_sinusoidal_table, lambda n, d: sinusoidal_encoding(n, d), "float64")
    fails_with(check_sinusoidal_table, lambda n, d: sinusoidal_encoding(n, d, dtype=torch.float64).T, "another order")


def test_fixed_encoding_fails_when_still_faulty():
    fails_with(check_fixed_encoding, lambda n, d: faulty_sinusoidal_encoding(n, d, PLANTED_MISTAKE), "still returns the faulty table")
    fails_with(check_fixed_encoding, lambda n, d: faulty_sinusoidal_encoding(n, d, "sin_cos_swapped"), "swapped")


def test_diagnosis():
    check_bug_diagnosis(PLANTED_MISTAKE)
    check_bug_diagnosis(f"  '{PLANTED_MISTAKE.upper()}' ")  # forgiving about case, quotes, spaces
    fails_with(check_bug_diagnosis, "i_instead_of_2i", "not this one", "sine* columns")
    fails_with(check_bug_diagnosis, "sin_cos_swapped", "not this one", "row 0")
    fails_with(check_bug_diagnosis, "the exponent", "not one of the choices")
    fails_with(check_bug_diagnosis, 3, "should be a string")
    assert PLANTED_MISTAKE in MISTAKES


def rotation(k, d):
    M = torch.zeros(d, d, dtype=torch.float64)
    for i in range(d // 2):
        w = k / 10000 ** (2 * i / d)
        M[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor([[math.cos(w), math.sin(w)], [-math.sin(w), math.cos(w)]])
    return M


def test_rotation_passes():
    for check in (check_rotation_matrix, check_rotation_matrix_other_cases):
        check(rotation)
        check(relative_rotation)


def test_rotation_fails():
    fails_with(check_rotation_matrix, lambda k, d: rotation(k, d).T, "PE(pos - k)", "transpose")
    fails_with(check_rotation_matrix, lambda k, d: rotation(k, d) + 0.1, "outside the 2x2 diagonal blocks")
    fails_with(check_rotation_matrix, lambda k, d: rotation(2 * k, d), "k * omega_i")
    fails_with(check_rotation_matrix, lambda k, d: rotation(k, d).abs(), "orthogonal")
    fails_with(check_rotation_matrix, lambda k, d: torch.eye(d + 1), "expected shape (8, 8)")
