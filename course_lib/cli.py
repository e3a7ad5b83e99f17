"""The ``course`` command.

    course check NOTEBOOK                 score one notebook the way the grader does (learners)
    course grade SUBMISSIONS_DIR --out grades/ [--jobs N] [--cell-timeout S] [--total-timeout S] [--memory-mb M] [--no-sandbox]
    course release [ASSIGNMENT ...]       regenerate exercises/ from solutions/ (= make exercises)

See chapters/exercises_guide.md (learners) and chapters/grading_guide.md (instructors).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

try:
    from course_lib.grading.grader import STATUSES, Limits
except ModuleNotFoundError as error:  # a learner's core install, without the grader
    raise SystemExit(
        f"course: the grader needs course_lib's [grade] extra ({error.name} is not installed): "
        "pip install 'course_lib[grade]' (in a clone of the course: `make lab` or `pip install -e '.[grade]'`)"
    ) from error

DEFAULTS = Limits()


def _add_limits(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cell-timeout", type=float, default=DEFAULTS.cell_timeout, metavar="S",
                   help=f"seconds per cell before it is interrupted (default {DEFAULTS.cell_timeout:g})")
    p.add_argument("--total-timeout", type=float, default=DEFAULTS.total_timeout, metavar="S",
                   help=f"seconds of execution per notebook (default {DEFAULTS.total_timeout:g})")
    p.add_argument("--memory-mb", type=int, default=DEFAULTS.memory_mb, metavar="M",
                   help=f"memory cap per notebook's kernel in MiB (default {DEFAULTS.memory_mb})")
    p.add_argument("--processes", type=int, default=DEFAULTS.processes, metavar="N",
                   help=f"processes and threads per sandbox (default {DEFAULTS.processes})")
    p.add_argument("--scratch-mb", type=int, default=DEFAULTS.scratch_mb, metavar="M",
                   help=f"size of the sandbox's only writable folder, in MiB (default {DEFAULTS.scratch_mb})")


def _limits(args) -> Limits:
    return Limits(cell_timeout=args.cell_timeout, total_timeout=args.total_timeout, memory_mb=args.memory_mb,
                  processes=args.processes, scratch_mb=args.scratch_mb)


def _infer(path: Path) -> tuple[str, str]:
    """(assignment, notebook name) of a notebook: from its metadata, else from its folder and file name."""
    from course_lib.grading.release import list_assignments

    known = list_assignments()
    try:
        meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {}).get("course", {})
    except (OSError, ValueError, AttributeError):
        meta = {}
    if isinstance(meta, dict) and meta.get("assignment") in known and meta.get("notebook"):
        return meta["assignment"], meta["notebook"]
    if path.parent.name in known:
        return path.parent.name, path.stem
    raise SystemExit(f"course check: cannot tell which assignment {path} belongs to; "
                     f"keep it in a folder named after the assignment ({', '.join(known)})")


def cmd_check(args) -> int:
    from course_lib.grading.feedback import write_feedback_html
    from course_lib.grading.grader import Task, grade_tasks
    from course_lib.grading.notebooks import source_names

    path = Path(args.notebook).resolve()
    if not path.is_file():
        print(f"course check: no such file: {args.notebook}", file=sys.stderr)
        return 2
    assignment, name = _infer(path)
    if name not in source_names(assignment):
        name = source_names(assignment)[0] if len(source_names(assignment)) == 1 else name
    from course_lib.grading.sandbox import unavailable

    # a learner checks their own notebook: a sandbox where there is one, else none (nothing to protect from)
    print(f"checking {path.name} as {assignment}/{name} in a fresh kernel ...", flush=True)
    run = grade_tasks([Task("you", assignment, name, path)], _limits(args), sandboxed=unavailable() is None)
    width = max((len(r.grade_id) for r in run.rows), default=10)
    for r in run.rows:
        print(f"  {r.grade_id:<{width}}  {r.points:g}/{r.max_points:g}  {r.status}")
        if r.message and r.status != "passed":
            for line in r.message.splitlines():
                print(f"      {line}")
    got, total = sum(r.points for r in run.rows), sum(r.max_points for r in run.rows)
    print(f"total: {got:g}/{total:g}")
    if args.html and run.feedback:
        write_feedback_html(next(iter(run.feedback.values())), Path(args.html))
        print(f"feedback: {args.html}")
    return 0 if run.ok else 1


def cmd_grade(args) -> int:
    from course_lib.grading.grader import grade, summarize
    from course_lib.grading.sandbox import NO_SANDBOX_RISKS, unavailable

    submissions = Path(args.submissions)
    if not submissions.is_dir():
        print(f"course grade: {submissions} is not a folder of <student>/<assignment>/<name>.ipynb", file=sys.stderr)
        return 2
    out = Path(args.out)
    if args.no_sandbox:
        print(NO_SANDBOX_RISKS, file=sys.stderr, flush=True)
    elif why := unavailable():
        print(f"course grade: refusing to grade: no sandbox can be made here: {why}.\n"
              "Submissions run learner code; without a sandbox it could read the solutions, rewrite the gradebook "
              "or attack other students' runs. Install bubblewrap, or pass --no-sandbox to grade anyway "
              "(only for submissions you trust).", file=sys.stderr)
        return 2

    def progress(task, outcome):
        got = sum(r.points for r in outcome.rows)
        total = sum(r.max_points for r in outcome.rows)
        print(f"  graded {task.student}/{task.assignment}/{task.notebook}: {got:g}/{total:g}", flush=True)

    run = grade(submissions, out, _limits(args), jobs=args.jobs, assignments=args.assignment or None,
                progress=None if args.quiet else progress, sandboxed=not args.no_sandbox)
    for line in summarize(run.rows):
        print(line)
    print(f"gradebook: {out / 'gradebook.csv'} and {out / 'gradebook.json'}; feedback: {out / 'feedback'}/")
    if not run.ok:
        print("some submissions could NOT be graded (rows whose message starts with 'grader failure' or "
              "'unknown assignment'); exit status 1", file=sys.stderr)
        return 1
    return 0


def cmd_release(args) -> int:
    from course_lib.grading import release

    return release.main(args.assignments)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course", description="Exercises and grading for the attention course.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="score one notebook the way the grader does")
    p.add_argument("notebook", help="e.g. exercises/ch03_scaled_dot_product/scaled_dot_product.ipynb")
    p.add_argument("--html", help="also write the feedback page to this file")
    _add_limits(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("grade", help="grade SUBMISSIONS_DIR/<student>/<assignment>/<name>.ipynb",
                       description=f"Statuses: {', '.join(STATUSES)}. Exit status 0 when every submission was graded.")
    p.add_argument("submissions", help="folder of <student>/<assignment>/<name>.ipynb")
    p.add_argument("--out", default="grades", help="gradebook and feedback folder (default grades/)")
    p.add_argument("--jobs", type=int, default=1, help="notebooks graded in parallel (default 1)")
    p.add_argument("--assignment", action="append", help="grade only this assignment (repeatable); "
                   "students without it get 'missing' rows")
    p.add_argument("--quiet", action="store_true", help="no line per notebook, only the summary")
    p.add_argument("--no-sandbox", action="store_true",
                   help="grade without the bubblewrap sandbox (prints what that risks; for trusted notebooks only)")
    _add_limits(p)
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("release", help="regenerate exercises/ from solutions/ (nbgrader generate_assignment)")
    p.add_argument("assignments", nargs="*")
    p.set_defaults(func=cmd_release)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
