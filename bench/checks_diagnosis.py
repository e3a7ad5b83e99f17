"""Cost of diagnosis by mutation (issue 26): a right answer's check time, and a wrong answer's, with the
engine and without it (``_core._engine_hint`` switched off), for every check with a planted-mistake table.

    slot .venv/bin/python bench/checks_diagnosis.py [--repeats 3]

Prints per check the right answer's ratio (engine / no engine; mutants run only after a failure, so ~1),
the slowest wrong answer's diagnosis time (engine minus no engine, the budget is 1 s), and the totals.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys

sys.path[:0] = [os.path.join(os.path.dirname(__file__), ".."), os.path.join(os.path.dirname(__file__), "..", "tests")]

from _timing import median_times  # noqa: E402

from course_lib.checks import CheckFailed, _core  # noqa: E402
from test_checks_recordings import TABLES  # noqa: E402


def _runner(check, answer):
    def run():
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                check(answer)
            except CheckFailed:
                pass

    return run


@contextlib.contextmanager
def _engine(on: bool):
    saved = _core._engine_hint
    if not on:
        _core._engine_hint = lambda *a, **k: None
    try:
        yield
    finally:
        _core._engine_hint = saved


def _timed(fn, on: bool, repeats: int) -> float:
    with _engine(on):
        return median_times([fn], repeats=repeats, warmup=1)[0]


def main(repeats: int = 3) -> None:
    right_on = right_off = wrong_on = wrong_off = 0.0
    worst = (0.0, "")
    print(f"{'check':<40}{'right: engine/none':>20}{'slowest diagnosis (s)':>24}")
    for check, right, wrongs in TABLES:
        r_on, r_off = _timed(_runner(check, right), True, repeats), _timed(_runner(check, right), False, repeats)
        right_on, right_off = right_on + r_on, right_off + r_off
        slowest = 0.0
        for wrong, _ in wrongs:
            w_on, w_off = _timed(_runner(check, wrong), True, repeats), _timed(_runner(check, wrong), False, repeats)
            wrong_on, wrong_off = wrong_on + w_on, wrong_off + w_off
            slowest = max(slowest, w_on - w_off)
        worst = max(worst, (slowest, check.check_name))
        print(f"{check.check_name:<40}{r_on / r_off:>20.2f}{slowest:>24.3f}")
    print(f"\nright answers: {right_on:.2f} s with the engine, {right_off:.2f} s without (ratio {right_on / right_off:.2f})")
    print(f"wrong answers: {wrong_on:.2f} s with the engine, {wrong_off:.2f} s without (ratio {wrong_on / wrong_off:.2f})")
    print(f"slowest diagnosis: {worst[0]:.3f} s ({worst[1]}); budget 1 s")


if __name__ == "__main__":
    main(int(sys.argv[sys.argv.index("--repeats") + 1]) if "--repeats" in sys.argv else 3)
