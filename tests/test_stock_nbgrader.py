"""Stock nbgrader grades every assignment: the solution earns full marks, the released exercise 0.

For an nbgrader or JupyterHub course (chapters/instructors_guide.md) that grades with
nbgrader's own `autograde` instead of `course grade`. Per assignment, a temporary nbgrader
course directory is built the way such a course holds it:

    source/<assignment>/      = solutions/<assignment>/           (hidden tests included)
    release/<assignment>/     <- nbgrader's generate_assignment, with its gradebook database
    submitted/solution/<assignment>/<name>.ipynb   = the solution notebook
    submitted/blank/<assignment>/<name>.ipynb      = the committed exercises/ notebook, untouched

then nbgrader's `Autograde` runs (its own kernel, its own verdicts) and the scores are read
back from nbgrader's database with `nbgrader.api.Gradebook`. Nothing of the course's grader
is used. The converters are driven from Python with an explicit config, so neither the
repository's nbgrader_config.py nor a user's ~/.jupyter config changes what is tested.

Slow: two notebooks executed per assignment, about 20 s each assignment on one core.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader", reason="stock nbgrader is in the [grade] extra")

from nbgrader.api import Gradebook  # noqa: E402
from nbgrader.converters import Autograde, GenerateAssignment  # noqa: E402
from nbgrader.coursedir import CourseDirectory  # noqa: E402
from traitlets.config import Config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"
if not SOLUTIONS.is_dir():  # the learners' public copy (`make test` there): nothing for stock nbgrader to grade
    pytest.skip("no solutions/ in this copy of the course (the learners' public copy): stock nbgrader needs the "
                "instructors' source notebooks", allow_module_level=True)
ASSIGNMENTS = sorted(p.name for p in SOLUTIONS.iterdir() if p.is_dir() and not p.name.startswith((".", "_")) and any(p.glob("*.ipynb")))
# nbgrader's per-cell limit is 30 s; the slowest graded cell takes a few seconds alone, so this
# only leaves room for a machine busy with other work.
CELL_TIMEOUT_S = 120

pytestmark = [
    pytest.mark.slow,
    # nbgrader's own gradebook code trips SQLAlchemy's autoflush warning; nothing this test controls
    pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning"),
]


def _config(course: Path) -> Config:
    config = Config()
    config.CourseDirectory.root = str(course)
    config.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
    config.Execute.timeout = CELL_TIMEOUT_S
    return config


def _run(converter_class, course: Path, assignment: str, student: str = "*") -> None:
    config = _config(course)
    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id = assignment
    coursedir.student_id = student
    app = converter_class(coursedir=coursedir, config=config)
    app.force = True
    app.log.setLevel(logging.WARNING)
    app.start()  # raises NbGraderException when a notebook could not be processed


def _points(notebook: Path) -> dict[str, float]:
    """grade_id -> points of every graded cell, read from the source notebook's nbgrader metadata."""
    cells = nbformat.read(notebook, as_version=4).cells
    meta = [c.metadata.get("nbgrader", {}) for c in cells]
    return {m["grade_id"]: float(m["points"]) for m in meta if m.get("grade")}


def test_every_assignment_is_tested():
    assert len(ASSIGNMENTS) >= 8, f"expected the course's 8 assignments in {SOLUTIONS}, found {ASSIGNMENTS}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_stock_nbgrader_autograde(assignment, tmp_path, monkeypatch):
    # nbgrader runs the `alembic` executable when it creates its database: use the venv's
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    course = tmp_path / "course"
    shutil.copytree(SOLUTIONS / assignment, course / "source" / assignment)
    _run(GenerateAssignment, course, assignment)

    names = sorted(p.name for p in (SOLUTIONS / assignment).glob("*.ipynb"))
    assert names and names == sorted(p.name for p in (EXERCISES / assignment).glob("*.ipynb")), (
        f"{assignment}: solutions/ holds {names}, exercises/ does not match: run `make exercises`"
    )
    handed_in = {"solution": SOLUTIONS, "blank": EXERCISES}
    for student, folder in handed_in.items():
        (course / "submitted" / student / assignment).mkdir(parents=True)
        for name in names:
            shutil.copy(folder / assignment / name, course / "submitted" / student / assignment / name)
    _run(Autograde, course, assignment)

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for name in names:
            expected = _points(SOLUTIONS / assignment / name)
            assert expected, f"{assignment}/{name}: no graded cell in the source notebook"
            for student in handed_in:
                notebook = gradebook.find_submission_notebook(Path(name).stem, assignment, student)
                got = {g.name: (g.score, g.max_score) for g in notebook.grades if g.max_score}
                assert {k: m for k, (_, m) in got.items()} == expected, f"{assignment}/{name}: nbgrader saw other graded cells: {got}"
                if student == "solution":
                    lost = {k: f"{s} / {m}" for k, (s, m) in got.items() if s != m}
                    assert not lost, f"{assignment}/{name}: the solution notebook lost points under stock nbgrader autograde: {lost}"
                else:
                    earned = {k: f"{s} / {m}" for k, (s, m) in got.items() if s != 0}
                    assert not earned, f"{assignment}/{name}: the untouched exercise earned points under stock nbgrader autograde: {earned}"
        for student, want in (("solution", "max"), ("blank", 0.0)):
            submission = gradebook.find_submission(assignment, student)
            assert submission.max_score == sum(sum(_points(SOLUTIONS / assignment / n).values()) for n in names)
            assert submission.score == (submission.max_score if want == "max" else want), (
                f"{assignment}: {student} scored {submission.score} / {submission.max_score}"
            )
            assert not submission.needs_manual_grade, f"{assignment}: {student} needs manual grading in nbgrader"
