"""Generate ``exercises/`` from ``solutions/`` with nbgrader's ``generate_assignment``.

    python -m course_lib.grading.release [ASSIGNMENT ...]     # or: make exercises / course release

For each assignment folder in ``solutions/`` (or those named), nbgrader strips the
code between ``### BEGIN SOLUTION`` / ``### END SOLUTION`` (replaced by
``# YOUR CODE HERE`` and ``raise NotImplementedError()``), removes the
``### BEGIN HIDDEN TESTS`` blocks, clears outputs and records checksums in the
cell metadata. The result is written to ``exercises/<assignment>/``.

Deterministic: nbgrader runs into a throwaway folder with a throwaway gradebook
database, and a file in ``exercises/`` is rewritten only when its bytes change,
so running it twice changes nothing (a test regenerates into a temporary folder
and compares). Afterwards every released notebook is scanned: if any solution
or hidden-test text survived, the release fails.
"""

from __future__ import annotations

import argparse
import filecmp
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"

SOLUTION_MARKERS = ("BEGIN SOLUTION", "END SOLUTION")
HIDDEN_MARKERS = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


class ReleaseError(RuntimeError):
    """generate_assignment failed, or a released notebook still holds solution text."""


def list_assignments(source_dir: Path = SOLUTIONS) -> list[str]:
    """Every assignment folder (one holding at least one notebook) under ``source_dir``."""
    if not source_dir.is_dir():
        return []
    return sorted(
        p.name
        for p in source_dir.iterdir()
        if p.is_dir() and not p.name.startswith((".", "_")) and any(p.glob("*.ipynb"))
    )


def _nbgrader_config(source_dir: Path, release_dir: Path, db_path: Path):
    """The repository's nbgrader_config.py, pointed at the given folders and a throwaway db."""
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = Config()
    if (ROOT / "nbgrader_config.py").exists():
        config.merge(PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config())
    config.CourseDirectory.root = str(ROOT)
    config.CourseDirectory.source_directory = str(source_dir)  # absolute paths win in os.path.join
    config.CourseDirectory.release_directory = str(release_dir)
    config.CourseDirectory.student_id = "."
    config.CourseDirectory.db_url = f"sqlite:///{db_path}"
    return config


def _run_generate_assignment(assignment: str, source_dir: Path, release_dir: Path, db_path: Path) -> None:
    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory

    config = _nbgrader_config(source_dir, release_dir, db_path)
    # nbgrader runs the `alembic` executable to create its database: find the venv's copy
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id = assignment
    app = GenerateAssignment(coursedir=coursedir, config=config)
    app.force = True
    app.create_assignment = True
    app.log.setLevel(logging.WARNING)
    try:
        app.start()
    except Exception as err:  # nbgrader raises NbGraderException, RuntimeError on bad markers, ...
        raise ReleaseError(f"nbgrader generate_assignment failed for {assignment!r}: {err}") from err


def leaked_text(nb: nbformat.NotebookNode) -> list[str]:
    """Descriptions of solution or hidden-test markers left in a released notebook (should be empty)."""
    problems = []
    for i, cell in enumerate(nb.cells):
        for marker in SOLUTION_MARKERS + HIDDEN_MARKERS:
            if marker in cell.source:
                problems.append(f"cell {i}: contains {marker!r}")
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count")):
            problems.append(f"cell {i}: has outputs")
    return problems


def generate(assignment: str, out_dir: Path, source_dir: Path = SOLUTIONS) -> Path:
    """Release one assignment into ``out_dir/<assignment>/`` (a fresh folder). Returns it."""
    if not (source_dir / assignment).is_dir():
        raise ReleaseError(f"no assignment {assignment!r} in {source_dir} (known: {list_assignments(source_dir)})")
    with tempfile.TemporaryDirectory(prefix="course-release-") as tmp:
        tmp = Path(tmp)
        _run_generate_assignment(assignment, source_dir, tmp / "release", tmp / "gradebook.db")
        produced = tmp / "release" / assignment
        if not produced.is_dir():
            raise ReleaseError(f"nbgrader produced nothing for {assignment!r}")
        for path in sorted(produced.rglob("*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            problems = leaked_text(nb)
            if problems:
                raise ReleaseError(f"{path.name}: the released notebook still holds hidden text: {problems}")
            # lets `course check` and the grader tell which assignment a stray notebook belongs to
            nb.metadata["course"] = {"assignment": assignment, "notebook": path.stem}
            nbformat.write(nb, path)
        dest = out_dir / assignment
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(produced, dest)
    return dest


def _sync(src: Path, dest: Path) -> list[str]:
    """Make ``dest`` equal to ``src`` touching only files whose bytes differ. Returns what changed."""
    changed = []
    dest.mkdir(parents=True, exist_ok=True)
    src_files = {p.relative_to(src) for p in src.rglob("*") if p.is_file()}
    dest_files = {p.relative_to(dest) for p in dest.rglob("*") if p.is_file()}
    for rel in sorted(src_files):
        target = dest / rel
        if target.exists() and filecmp.cmp(src / rel, target, shallow=False):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, target)
        changed.append(f"wrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")
    for rel in sorted(dest_files - src_files):
        (dest / rel).unlink()
        changed.append(f"removed {rel}")
    return changed


def release(assignments: list[str] | None = None, source_dir: Path = SOLUTIONS, release_dir: Path = EXERCISES) -> list[str]:
    """Regenerate ``release_dir/<assignment>/`` for each assignment. Returns the changes made."""
    names = assignments or list_assignments(source_dir)
    changes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="course-release-out-") as tmp:
        for name in names:
            fresh = generate(name, Path(tmp), source_dir)
            changes += _sync(fresh, release_dir / name)
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course release", description=__doc__.split("\n\n")[0])
    parser.add_argument("assignments", nargs="*", help="assignment folders in solutions/ (default: all)")
    parser.add_argument("--out", type=Path, default=EXERCISES, help="release folder (default: exercises/)")
    args = parser.parse_args(argv)
    try:
        changes = release(args.assignments or None, release_dir=args.out)
    except ReleaseError as err:
        print(f"release failed: {err}", file=sys.stderr)
        return 1
    names = args.assignments or list_assignments()
    for line in changes:
        print(line)
    print(f"released {len(names)} assignment(s): {', '.join(names) or '(none)'}; {len(changes)} file(s) changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
