"""course_lib.positional's table checker and its catalogue of implementation mistakes."""

import math

import pytest
import torch

from course_lib.positional import MISTAKES, check_encoding_table, faulty_sinusoidal_encoding, sinusoidal_encoding


def test_correct_table_passes_rounded_or_not():
    ref = sinusoidal_encoding(11, 10, dtype=torch.float64)
    assert check_encoding_table(ref).ok
    report = check_encoding_table(ref.numpy().round(4))
    assert report.ok and math.isclose(report.tolerance, 0.5e-4, rel_tol=1e-6)
    assert check_encoding_table(ref.tolist()).ok  # nested lists, as copied from a page


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_each_mistake_is_recognised(mistake):
    table = faulty_sinusoidal_encoding(11, 10, mistake).numpy().round(10)
    report = check_encoding_table(table)
    assert not report.ok
    assert report.likely_cause == MISTAKES[mistake]


def test_mistakes_match_their_descriptions():
    ref = sinusoidal_encoding(11, 10, dtype=torch.float64)
    # column_as_2i: sine columns right, cosine columns wrong (beyond the first row)
    bad = faulty_sinusoidal_encoding(11, 10, "column_as_2i")
    torch.testing.assert_close(bad[:, 0::2], ref[:, 0::2])
    assert not torch.allclose(bad[:, 1::2], ref[:, 1::2])
    # sin/cos swapped: row 0 is 1, 0, 1, 0, ...
    assert faulty_sinusoidal_encoding(3, 6, "sin_cos_swapped")[0].tolist() == [1, 0, 1, 0, 1, 0]
    # i instead of 2i: the first pair is still right
    torch.testing.assert_close(faulty_sinusoidal_encoding(11, 10, "i_instead_of_2i")[:, :2], ref[:, :2])
    # degrees: sin(1 degree) in row 1
    assert math.isclose(float(faulty_sinusoidal_encoding(3, 4, "degrees")[1, 0]), math.sin(math.pi / 180))


def test_isolated_typos_are_listed_with_positions():
    table = sinusoidal_encoding(11, 10, dtype=torch.float64).numpy().round(4)
    table[3, 2] = 0.1234
    table[7, 5] = -table[7, 5]
    report = check_encoding_table(table)
    assert [(m.pos, m.dim) for m in report.mismatches] == [(3, 2), (7, 5)]
    assert "isolated" in report.likely_cause
    frame = report.mismatch_frame()
    assert list(frame.columns) == ["pos", "dim", "expected", "got", "difference"] and len(frame) == 2


def test_a_mistake_plus_a_typo_is_still_named():
    table = faulty_sinusoidal_encoding(11, 10, "i_instead_of_2i").numpy().round(6)
    table[5, 1] = 0.0
    report = check_encoding_table(table)
    assert report.likely_cause.startswith(MISTAKES["i_instead_of_2i"]) and "plus 1 cell" in report.likely_cause


def test_first_position_offset():
    ref = sinusoidal_encoding(20, 8, dtype=torch.float64)
    assert check_encoding_table(ref[5:], first_position=5).ok
    assert not check_encoding_table(ref[5:]).ok


def test_bad_input():
    with pytest.raises(ValueError, match="n_positions, d_model"):
        check_encoding_table(torch.zeros(3))
    with pytest.raises(ValueError, match="unknown mistake"):
        faulty_sinusoidal_encoding(3, 4, "typo")
