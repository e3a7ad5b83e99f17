"""The ch05_positional_encoding checks pass on right answers and fail, with the right hint, on planted mistakes."""

import math

import numpy as np
import torch

from course_lib.checks.ch05_positional_encoding import (
    check_bug_diagnosis,
    check_fixed_encoding,
    check_rotation_matrix,
    check_rotation_matrix_other_cases,
    check_sinusoidal_table,
    check_sinusoidal_table_other_sizes,
)
from course_lib.positional import MISTAKES, faulty_sinusoidal_encoding, relative_rotation, sinusoidal_encoding

from check_cases import fails_with, planted_mistake_tests

# The answer of the bug-diagnosis exercise lives here, in the tests (not shipped to learners), never
# in course_lib.checks, which learners import (issue 13).
PLANTED_MISTAKE = "column_as_2i"


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
        check(numpy_table)


def table_ok(n, d):
    return sinusoidal_encoding(n, d, dtype=torch.float64)


def faulty(mistake):
    return lambda n, d: faulty_sinusoidal_encoding(n, d, mistake)


def table_float32(n, d):
    return sinusoidal_encoding(n, d)


def table_transposed(n, d):
    return sinusoidal_encoding(n, d, dtype=torch.float64).T


def table_loop_column_index(n, d):  # a learner's loop that uses the column j where the formula has 2i
    pe = torch.zeros(n, d, dtype=torch.float64)
    for pos in range(n):
        for j in range(d):
            angle = pos / 10000 ** (j / d)
            pe[pos, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    return pe


def table_loop_double_2i(n, d):  # for i in range(0, d, 2): i is already 2i, and 2 * i doubles it
    pe = torch.zeros(n, d, dtype=torch.float64)
    for pos in range(n):
        for i in range(0, d, 2):
            angle = pos / 10000 ** (2 * i / d)
            pe[pos, i] = math.sin(angle)
            if i + 1 < d:
                pe[pos, i + 1] = math.cos(angle)
    return pe


def table_even_d_only(n, d):  # the vectorised version that breaks on an odd d_model
    pe = torch.zeros(n, d, dtype=torch.float64)
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    div = 10000 ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    pe[:, 0::2] = torch.sin(pos / div)
    pe[:, 1::2] = torch.cos(pos / div)
    return pe


def table_sin_only(n, d):
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    i2 = 2 * (torch.arange(d) // 2)  # 2i of each column's pair
    return torch.sin(pos / 10000 ** (i2 / d))


TABLE_MISTAKES = [
    (table_sin_only, "you used sin for every column"),
    (faulty("i_instead_of_2i"), "2i / d_model with i the pair index"),
    (faulty("column_as_2i"), "every cosine column is off"),
    (faulty("column_as_i"), "*pair* index"),
    (faulty("sin_cos_swapped"), "swapped"),
    (faulty("degrees"), "radians"),
    (faulty("concatenated"), "interleaved"),
    (faulty("positions_from_1"), "positions start at 0"),
    (faulty("base_1000"), "base of the exponent is 10000"),
    (table_float32, "float64"),
    (table_transposed, "another order"),
    (table_loop_column_index, "every cosine column is off"),
    (table_loop_double_2i, "already 2i"),
]

CASES = [
    (check_sinusoidal_table, table_ok, TABLE_MISTAKES),
    (check_sinusoidal_table_other_sizes, table_ok, TABLE_MISTAKES[:-4] + [
        (table_float32, "float64"),
        (table_even_d_only, "raised RuntimeError"),
    ]),
    (check_fixed_encoding, table_ok, [
        (faulty(PLANTED_MISTAKE), "still returns the faulty table"),
        (table_loop_column_index, "still returns the faulty table"),
        (faulty("sin_cos_swapped"), "swapped"),
        (faulty("column_as_i"), "*pair* index"),
        (faulty("i_instead_of_2i"), "2i / d_model with i the pair index"),
        (faulty("degrees"), "radians"),
        (table_float32, "float64"),
    ]),
]


def test_diagnosis():
    check_bug_diagnosis(PLANTED_MISTAKE)
    check_bug_diagnosis(f"  '{PLANTED_MISTAKE.upper()}' ")  # forgiving about case, quotes, spaces
    fails_with(check_bug_diagnosis, "i_instead_of_2i", "not this one", "sine* columns")
    fails_with(check_bug_diagnosis, "sin_cos_swapped", "not this one", "row 0")
    fails_with(check_bug_diagnosis, "the exponent", "not one of the choices")
    fails_with(check_bug_diagnosis, 3, "should be a string")
    assert PLANTED_MISTAKE in MISTAKES


def test_no_answer_key_in_clear():
    """The graded answer cannot be imported from course_lib.checks (issue 13): no module-level value equals it."""
    import course_lib.checks as checks

    for module in [checks, *(getattr(checks, n) for n in dir(checks) if n.startswith("ch0"))]:
        for name, value in vars(module).items():
            assert value != PLANTED_MISTAKE, f"{module.__name__}.{name} holds the answer in clear"
    import course_lib.checks.ch05_positional_encoding as ch05

    for name, value in vars(ch05).items():
        assert value != PLANTED_MISTAKE, f"ch05.{name} holds the answer in clear"


DIAGNOSIS_MISTAKES = [
    ("i_instead_of_2i", "sine* columns"),
    ("sin_cos_swapped", "row 0"),
    ("column_as_i", "sine columns (2, 4, ...) would be wrong too"),
    ("degrees", "sin(1 radian)"),
    ("base_1000", "the code uses 10000"),
    ("positions_from_1", "row 0 of the faulty table is position 0"),
    ("concatenated", "alternates sin and cos columns"),
    ("the exponent", "not one of the choices"),
    (3, "should be a string"),
]
CASES.append((check_bug_diagnosis, PLANTED_MISTAKE, DIAGNOSIS_MISTAKES))


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


def rotation_float32(k, d):
    return rotation(k, d).float()


def rotation_loop_double_2i(k, d):
    M = torch.zeros(d, d, dtype=torch.float64)
    for i in range(0, d, 2):  # i is already 2i here
        w = k / 10000 ** (2 * i / d)
        M[i : i + 2, i : i + 2] = torch.tensor([[math.cos(w), math.sin(w)], [-math.sin(w), math.cos(w)]])
    return M


def rotation_degrees(k, d):
    M = torch.zeros(d, d, dtype=torch.float64)
    for i in range(d // 2):
        w = math.radians(k / 10000 ** (2 * i / d))
        M[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor([[math.cos(w), math.sin(w)], [-math.sin(w), math.cos(w)]])
    return M


def rotation_sin_sign(k, d):  # [[cos, sin], [sin, cos]]: not a rotation
    return rotation(k, d).abs() * torch.sign(rotation(k, d) + 1e-30).abs()


ROTATION_MISTAKES = [
    (lambda k, d: rotation(k, d).T, "PE(pos - k)"),
    (lambda k, d: rotation(k, d) + 0.1, "outside the 2x2 diagonal blocks"),
    (lambda k, d: rotation(2 * k, d), "k * omega_i"),
    (lambda k, d: rotation(k, d).abs(), "orthogonal"),
    (lambda k, d: torch.eye(d + 1, dtype=torch.float64), "expected shape"),
    (rotation_float32, "expected dtype torch.float64"),
    (rotation_loop_double_2i, "the column index"),
    (rotation_degrees, "radians"),
]

CASES += [
    (check_rotation_matrix, rotation, ROTATION_MISTAKES),
    (check_rotation_matrix_other_cases, rotation, ROTATION_MISTAKES),
]

(
    test_check_passes_on_the_right_answer,
    test_check_fails_with_a_hint,
    test_each_check_has_enough_planted_mistakes,
) = planted_mistake_tests(CASES)


def test_rotation_fails():
    fails_with(check_rotation_matrix, lambda k, d: rotation(k, d).T, "PE(pos - k)", "transpose")
    fails_with(check_rotation_matrix, lambda k, d: rotation(k, d) + 0.1, "outside the 2x2 diagonal blocks")
    fails_with(check_rotation_matrix, lambda k, d: rotation(2 * k, d), "k * omega_i")
    fails_with(check_rotation_matrix, lambda k, d: rotation(k, d).abs(), "orthogonal")
    fails_with(check_rotation_matrix, lambda k, d: torch.eye(d + 1), "expected shape (8, 8)")
