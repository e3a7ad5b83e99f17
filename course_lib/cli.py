"""The ``course`` command.

    course check NOTEBOOK                 score one notebook the way the grader does (learners)
    course grade SUBMISSIONS_DIR --out grades/ [--jobs N] [--shard K/N] [--student NAME] [--seed N] [--cell-timeout S] [--total-timeout S] [--memory-mb M] [--no-sandbox]
    course export --format canvas|moodle|csv [--grades grades/] [--roster roster.csv] [--columns columns.csv] [--out FILE] [--allow-ungraded]
    course merge SHARD_DIR ... --out DIR  combine the gradebooks of `course grade --shard K/N` runs
    course report GRADES [--out FILE]     the class report: named mistakes per check, parts most often lost
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
    """(assignment, notebook name) of a notebook: from its metadata, else from its folder and file name.

    The assignments are the folders of solutions/ and, in the learners' public copy (no
    solutions/), those of exercises/.
    """
    from course_lib.grading.release import EXERCISES, SOLUTIONS, list_assignments

    known = sorted(set(list_assignments(SOLUTIONS)) | set(list_assignments(EXERCISES)))
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
    import tempfile

    import nbformat

    from course_lib.grading.feedback import write_feedback_html
    from course_lib.grading.grader import Task, grade_tasks
    from course_lib.grading.notebooks import (
        SourceError,
        has_source,
        load_released,
        source_names,
    )
    from course_lib.grading.release import EXERCISES, SOLUTIONS

    path = Path(args.notebook).resolve()
    if not path.is_file():
        print(f"course check: no such file: {args.notebook}", file=sys.stderr)
        return 2
    assignment, name = _infer(path)
    names = source_names(assignment, SOLUTIONS) or source_names(assignment, EXERCISES)
    if name not in names:
        name = names[0] if len(names) == 1 else name
    from course_lib.grading.sandbox import unavailable

    # solutions/ holds the source (hidden tests included) in the instructors' copy; in the learners'
    # public copy it is absent and the released exercise is the source: the visible tests only
    sources, solutions_dir, public = None, SOLUTIONS, not has_source(assignment, name)
    if public:
        try:
            released = load_released(assignment, name, EXERCISES, checked=path)
        except (OSError, ValueError, SourceError) as err:
            print(f"course check: {err}", file=sys.stderr)
            return 2
        sources = {(assignment, name): released}
    # a learner checks their own notebook: a sandbox where there is one, else none (nothing to protect from)
    print(f"checking {path.name} as {assignment}/{name} in a fresh kernel ...", flush=True)
    if public:
        print(_public_notice(assignment, name, released), flush=True)
    warning = _solutions_warning(path, assignment, name, released if public else None)
    if warning:
        print(warning, flush=True)
    with tempfile.TemporaryDirectory(prefix="course-check-") as pristine:
        if public:  # the grader reads the locked cells (what they hand out: libview) from the released copy, not the learner's
            solutions_dir = Path(pristine)
            (solutions_dir / assignment).mkdir()
            for other in source_names(assignment, EXERCISES):
                nb = released.nb if other == name else load_released(assignment, other, EXERCISES).nb
                nbformat.write(nb, solutions_dir / assignment / f"{other}.ipynb")
        from course_lib.grading.grader import new_seed

        # inputs drawn from a fresh seed, as the grader does: an answer that only fits the fixed inputs shows here
        run = grade_tasks([Task("you", assignment, name, path)], _limits(args), solutions_dir=solutions_dir,
                          sandboxed=unavailable() is None, sources=sources, seed=new_seed())
    width = max((len(r.grade_id) for r in run.rows), default=10)
    for r in run.rows:
        print(f"  {r.grade_id:<{width}}  {r.points:g}/{r.max_points:g}  {r.status}")
        if r.message and r.status != "passed":
            for line in r.message.splitlines():
                print(f"      {line}")
    got, total = sum(r.points for r in run.rows), sum(r.max_points for r in run.rows)
    print(f"total: {got:g}/{total:g}" + ("   (visible tests only: hidden tests are not available in this copy, "
                                         "the instructor's grade can be lower)" if public else "")
          + ("   (WARNING: this notebook contains the solutions, see above)" if warning else ""))
    if args.html and run.feedback:
        html = Path(args.html).resolve()
        staged = write_feedback_html(next(iter(run.feedback.values())), html, assets_dir=html.parent / "_assets")
        print(f"feedback: {args.html} " + (f"(MathJax beside it in {html.parent / '_assets'})" if staged else
                                           "(maths shown as TeX: MathJax is not installed here; run `npm ci` in the course folder)"))
    return 0 if run.ok else 1


def _public_notice(assignment: str, name: str, released) -> str:
    """What a check in a copy without the assignment's source (the learners' public copy) can and cannot tell."""
    from course_lib.grading.release import SOLUTIONS

    where = ("there is no solutions/ folder here (the learners' copy of the course)" if not SOLUTIONS.is_dir()
             else f"solutions/ has no {assignment}/{name}.ipynb")
    restore = (f"locked cells are restored from {released.origin}" if released.origin else
               "locked cells cannot be restored: no released copy to compare with (no git history, and this file "
               "is the released one); edits to them are not detected")
    return (f"NOTE: {where}, so this check scores against the released exercise: VISIBLE TESTS ONLY.\n"
            f"  Hidden tests are not available in this copy: the instructor's grade can be lower.\n"
            f"  ({restore}.)")


def _solutions_warning(path: Path, assignment: str, name: str, source=None) -> str:
    """A warning when the notebook holds the course's solutions (it is still scored), else ''.

    ``source``: the source notebook the check uses (default: solutions/'s).
    """
    import nbformat

    from course_lib.grading.notebooks import SourceError, load_source, solution_content

    try:
        nb = nbformat.read(path, as_version=4)
        reasons = solution_content(nb, source or load_source(assignment, name))
    except (OSError, ValueError, SourceError, AttributeError, TypeError, KeyError):  # unreadable: the check says why
        return ""
    if not reasons:
        return ""
    return (f"WARNING: {path.name} contains the course's solutions ({'; '.join(reasons)}).\n"
            f"  It is scored below anyway, but those parts are the course's answers, not yours.\n"
            f"  Work in exercises/{assignment}/{name}.ipynb (solutions/ is the instructors' source of truth).")


#: printed by `course grade` and `course merge` when a submission could not be graded (exit status 1)
NOT_GRADED_MESSAGE = ("some submissions could NOT be graded (rows whose message starts with 'grader failure' or "
                      "'unknown assignment'); exit status 1")


def _shard(text: str) -> tuple[int, int]:
    from course_lib.grading.gradebook import GradebookError, parse_shard

    try:
        return parse_shard(text)
    except GradebookError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _print_table(out: Path, what: str) -> None:
    from course_lib.grading.gradebook import read_rows, terminal_table

    print(terminal_table(read_rows(out)))
    print(f"{what}: {out / 'gradebook.csv'} (a row per test cell), {out / 'summary.csv'} (a row per student), "
          f"{out / 'gradebook.json'}; feedback: {out / 'feedback'}/")


def _mathjax_missing() -> str | None:
    """What to do, told to the instructor once before grading, when the feedback pages would show raw TeX."""
    from course_lib.assets import ENV_NODE_MODULES, node_modules_dir

    folder = node_modules_dir()
    if (folder / "mathjax" / "es5").is_dir():
        return None
    return (f"course grade: MathJax is not installed ({folder / 'mathjax'} is missing), so the students' feedback pages "
            "will show their maths as raw TeX.\n  To get it: run `npm ci` in the course's folder (needs Node.js; "
            f"`make node_modules/.installed` does the same), or set {ENV_NODE_MODULES} to a node_modules folder that has "
            "mathjax; then grade (again). Grading goes on now.")


def cmd_grade(args) -> int:
    from course_lib.grading.gradebook import GradebookError
    from course_lib.grading.grader import STATUSES, grade
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

    if why := _mathjax_missing():
        print(why, file=sys.stderr, flush=True)

    def progress(task, outcome):
        got = sum(r.points for r in outcome.rows)
        total = sum(r.max_points for r in outcome.rows)
        print(f"  graded {task.student}/{task.assignment}/{task.notebook}: {got:g}/{total:g}", flush=True)

    try:
        run = grade(submissions, out, _limits(args), jobs=args.jobs, assignments=args.assignment or None,
                    progress=None if args.quiet else progress, sandboxed=not args.no_sandbox, shard=args.shard,
                    seed=args.seed, student=args.student)
    except GradebookError as err:
        print(f"course grade: {err}", file=sys.stderr)
        return 2
    from course_lib.grading.grader import read_run

    counts = ", ".join(f"{n} {s}" for s in STATUSES if (n := sum(r.status == s for r in run.rows)))
    print(f"the checks' inputs were drawn from seed {read_run(out).get('seed')} (recorded in {out / 'run.json'}; "
          "`--seed` reuses it)")
    shard = f" (shard {args.shard[0]}/{args.shard[1]})" if args.shard else ""
    print(f"this run{shard}: {len({(r.student, r.assignment, r.notebook) for r in run.rows})} notebooks, "
          f"{len(run.rows)} test cells: {counts or 'nothing to grade'}")
    _print_table(out, "gradebook" + shard)
    if not run.ok:
        print(NOT_GRADED_MESSAGE, file=sys.stderr)
        return 1
    return 0


def cmd_export(args) -> int:
    from course_lib.grading.gradebook import GradebookError, export

    try:
        path = export(Path(args.grades), args.format, Path(args.out) if args.out else None,
                      Path(args.roster) if args.roster else None, Path(args.columns) if args.columns else None,
                      allow_ungraded=args.allow_ungraded)
    except GradebookError as err:
        print(f"course export: {err}", file=sys.stderr)
        return 2
    print(f"{args.format} export: {path} (rewritten whenever `course grade --out {args.grades}` updates the gradebook)")
    if args.roster:
        from course_lib.grading.gradebook import read_roster, read_rows

        graded = {r["student"] for r in read_rows(Path(args.grades))}
        absent = [s for s in read_roster(Path(args.roster)) if s not in graded]
        if absent:
            print(f"course export: {len(absent)} roster student(s) without any submission get 0, marked missing: "
                  f"{', '.join(absent[:10])}" + (" ..." if len(absent) > 10 else ""), file=sys.stderr)
    return 0


def cmd_merge(args) -> int:
    from course_lib.grading.gradebook import GradebookError, merge, not_graded

    try:
        rows = merge([Path(d) for d in args.shards], Path(args.out))
    except GradebookError as err:
        print(f"course merge: {err}", file=sys.stderr)
        return 2
    print(f"merged {len(args.shards)} shards: {len(rows)} rows")
    _print_table(Path(args.out), "merged gradebook")
    if not_graded(rows):
        print(NOT_GRADED_MESSAGE, file=sys.stderr)
        return 1
    return 0


def cmd_report(args) -> int:
    from course_lib.grading import report
    from course_lib.grading.gradebook import GradebookError, read_rows

    try:
        rows = read_rows(Path(args.grades))
        path = report.write(Path(args.grades), Path(args.out) if args.out else None)
    except GradebookError as err:
        print(f"course report: {err}", file=sys.stderr)
        return 2
    print(report.terminal(rows, top=args.top))
    print(f"\nHTML report: {path}")
    return 0


def cmd_release(args) -> int:
    from course_lib.grading import release

    return release.main([*args.assignments, *(["--out", args.out] if args.out else [])])


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
    p.add_argument("--shard", type=_shard, metavar="K/N",
                   help="grade only shard K of N (students split by a stable hash of their folder name) and write "
                        "shard.json; combine the N folders with `course merge`")
    p.add_argument("--no-sandbox", action="store_true",
                   help="grade without the bubblewrap sandbox (prints what that risks; for trusted notebooks only)")
    p.add_argument("--student", metavar="NAME",
                   help="regrade only this student's folder (SUBMISSIONS/NAME) into the existing gradebook in --out")
    p.add_argument("--seed", type=int, metavar="N",
                   help="draw the checks' inputs from this seed (default: a new one per run, recorded in OUT/run.json; "
                        "--student reuses the recorded one)")
    _add_limits(p)
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("export", help="write the gradebook in an LMS's import format (Canvas, Moodle) or as a CSV",
                       description="Students are the folder names under submissions/; --roster maps them to LMS ids "
                                   "(see course_lib/grading/gradebook.py and chapters/grading_guide.md).")
    p.add_argument("--format", required=True, help="canvas, moodle or csv")
    p.add_argument("--grades", default="grades", help="the grades folder of `course grade --out` (default grades/)")
    p.add_argument("--roster", help="CSV: column 'student' (folder name) and LMS ids (name, canvas_id, sis_user_id, "
                                    "sis_login_id, section, email, idnumber, username)")
    p.add_argument("--out", help="file to write (default GRADES/export-FORMAT.csv)")
    p.add_argument("--columns", help="canvas: CSV 'assignment,column' mapping assignment folders to the titles of "
                                     "existing Canvas assignments, 'Name (ID)' as Canvas exports them")
    p.add_argument("--allow-ungraded", action="store_true",
                   help="export even when some work was not graded (grader failures): those cells are left blank, never 0")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("merge", help="combine the shard folders of `course grade --shard K/N` into one gradebook")
    p.add_argument("shards", nargs="+", help="the N shard folders")
    p.add_argument("--out", required=True, help="a new or empty folder for the merged gradebook and feedback")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("report", help="the class report: mistakes per check (the checks' hints), parts most often lost")
    p.add_argument("grades", help="the grades folder of `course grade --out` (or of `course merge`)")
    p.add_argument("--out", help="the HTML page to write (default GRADES/report.html)")
    p.add_argument("--top", type=int, default=20, help="lines per section in the terminal (default 20; the page has all)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("release", help="regenerate exercises/ from solutions/ (nbgrader generate_assignment)")
    p.add_argument("assignments", nargs="*")
    p.add_argument("--out", help="release folder (default exercises/)")
    p.set_defaults(func=cmd_release)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
