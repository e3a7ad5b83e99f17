"""How long each chapter took to execute in the last book build, against its budget.

    python bench/book_times.py [--build _build]

Reads the execution records myst-nb's jupyter-cache kept when the book was built (`make book`)
and prints, per chapter, the seconds, the budget (course_lib.runtime.CHAPTER_BUDGET_S: an idle
2-core machine) and their ratio, plus each chapter's share of the whole build. Exit status 0
always: this is a measurement, not a test (wall time depends on the CPU, the thread count and
the machine's load; the build's log says which threads it used).
"""

from __future__ import annotations

import argparse
import pathlib

from course_lib.book.timing import CHAPTER_BUDGET_S, ROOT, chapter_execution_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=pathlib.Path, default=ROOT / "_build", help="the book's build folder")
    args = parser.parse_args()
    times = chapter_execution_seconds(args.build)
    if not times:
        raise SystemExit(f"no execution records under {args.build}: build the book first (make book)")
    total = sum(times.values())
    print(f"{'chapter':<26} {'seconds':>8} {'budget':>7} {'x budget':>9} {'share':>6}")
    for chapter, budget in CHAPTER_BUDGET_S.items():
        if chapter not in times:
            print(f"{chapter:<26} {'-':>8} {budget:>7} {'not run':>9}")
            continue
        t = times[chapter]
        flag = "  OVER" if t > budget else ""
        print(f"{chapter:<26} {t:>8.1f} {budget:>7} {t / budget:>9.2f} {t / total:>6.1%}{flag}")
    print(f"{'all chapters':<26} {total:>8.1f} {sum(CHAPTER_BUDGET_S.values()):>7} "
          f"{total / sum(CHAPTER_BUDGET_S.values()):>9.2f}")


if __name__ == "__main__":
    main()
