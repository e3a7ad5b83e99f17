"""What every check test needs: a check passes on a right answer and fails, with its hint, on planted mistakes.

Every planted mistake is written as a learner would write it, and the test asserts both that it
is rejected and that the failure names it (a key phrase of the specific diagnosis). A table needs at
least ``MIN_MISTAKES`` rows per check (issue 17).

Two ways to use it, whichever reads better for a chapter's checks:

- ``fails_with(check, wrong, "hint phrase", ...)`` inside a hand-written test;
- a table ``CASES = [(check, right, [(wrong, "hint phrase"), ...]), ...]`` turned into
  the three standard tests by ``planted_mistake_tests(CASES)``, assigned at module level
  so that pytest collects them (ids: the check's name, then ``-<i>`` for its i-th mistake).
"""

from typing import Callable, NamedTuple

import pytest

from course_lib.checks import CheckFailed

MIN_MISTAKES = 6


def fails_with(check: Callable, student, *phrases: str) -> None:
    """`check(student)` raises CheckFailed, and its message holds every one of `phrases`."""
    with pytest.raises(CheckFailed) as info:
        check(student)
    for phrase in phrases:
        assert phrase in str(info.value), f"hint missing: {phrase!r} not in:\n{info.value}"


class PlantedMistakeTests(NamedTuple):
    passes_on_the_right_answer: Callable
    fails_with_a_hint: Callable
    has_enough_planted_mistakes: Callable


def planted_mistake_tests(cases: list, minimum: int = MIN_MISTAKES) -> PlantedMistakeTests:
    """The three tests for a table of `(check, right, [(wrong, hint phrase), ...])` rows."""

    @pytest.mark.parametrize("check, right", [(c, r) for c, r, _ in cases], ids=[c.__name__ for c, _, _ in cases])
    def test_check_passes_on_the_right_answer(check, right, capsys):
        check(right)
        assert "\u2714" in capsys.readouterr().out

    @pytest.mark.parametrize(
        "check, wrong, phrase",
        [(c, w, p) for c, _, wrongs in cases for w, p in wrongs],
        ids=[f"{c.__name__}-{i}" for c, _, wrongs in cases for i, _ in enumerate(wrongs)],
    )
    def test_check_fails_with_a_hint(check, wrong, phrase):
        fails_with(check, wrong, phrase)

    def test_each_check_has_enough_planted_mistakes():
        for check, _, wrongs in cases:
            assert len(wrongs) >= minimum, f"{check.__name__}: {len(wrongs)} planted mistakes, want at least {minimum}"

    return PlantedMistakeTests(
        test_check_passes_on_the_right_answer,
        test_check_fails_with_a_hint,
        test_each_check_has_enough_planted_mistakes,
    )
