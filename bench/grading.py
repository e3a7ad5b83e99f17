"""Grading throughput: N copies of the ch03 solution graded with 1 and with 2 jobs.

    python bench/grading.py [--copies 8] [--jobs 1 2]

Prints wall seconds per submission for each job count and the speed-up ratio.
Target: at most 5 s per notebook amortised on 2 cores (with --jobs 2). Each
notebook costs a worker process, a fresh kernel (which imports torch), the
execution, the verification outside the kernel and the feedback page.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from course_lib.grading.grader import grade

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "ch03_scaled_dot_product"
TARGET_S = 5.0


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (workers, kernels)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def make_submissions(dest: Path, copies: int) -> None:
    for i in range(copies):
        folder = dest / f"student{i:02d}" / ASSIGNMENT
        folder.mkdir(parents=True)
        for nb in (ROOT / "solutions" / ASSIGNMENT).glob("*.ipynb"):
            shutil.copy(nb, folder / nb.name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    per_submission = {}
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        tmp = Path(tmp)
        make_submissions(tmp / "subs", args.copies)
        make_submissions(tmp / "warm", 1)
        grade(tmp / "warm", tmp / "warmup", jobs=1)  # warm the imports and the file cache; not timed
        for jobs in args.jobs:
            cpu0 = _cpu_seconds()
            start = time.perf_counter()
            run = grade(tmp / "subs", tmp / f"grades{jobs}", jobs=jobs)
            seconds = time.perf_counter() - start
            cpu = (_cpu_seconds() - cpu0) / args.copies
            full = sum(r.points for r in run.rows) == sum(r.max_points for r in run.rows)
            if not (run.ok and full):
                print(f"jobs={jobs}: the solution copies did not all get full marks:")
                for r in run.rows:
                    if r.status != "passed":
                        print(f"  {r.student} {r.grade_id}: {r.status} {r.message[:300]}")
                return 1
            per_submission[jobs] = seconds / args.copies
            print(f"jobs={jobs}: {args.copies} notebooks in {seconds:.1f} s = {per_submission[jobs]:.2f} s per notebook "
                  f"(CPU time, all processes: {cpu:.2f} s per notebook)")
    if 1 in per_submission and len(per_submission) > 1:
        best = max(per_submission)
        print(f"speed-up jobs={best} vs jobs=1: {per_submission[1] / per_submission[best]:.2f}x")
    best_time = min(per_submission.values())
    verdict = "within" if best_time <= TARGET_S else "OVER"
    print(f"amortised: {best_time:.2f} s per notebook ({verdict} the {TARGET_S:g} s target; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: other work inflates it)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
