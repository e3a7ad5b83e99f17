"""`course check` in the learners' public copy of the course: no solutions/ (chapters/instructors_guide.md).

There the released exercise is the source: its nbgrader metadata gives the graded cells,
their points and the locked cells; only its visible tests run, and the check says so before
and on the total line. The copy is built in a temporary folder (course_lib and exercises/,
committed to a fresh git repository as a clone of the public repository would be) and
`course check` runs with the working directory there, so course_lib's root is the copy.

The slow tests run the copy without bubblewrap on the PATH (the grader's sandbox binds the
course_lib the venv imports, which is the checkout's, not the copy's): sandboxed runs of
`course check` are covered in the checkout by tests/test_grading.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_lib.grading.notebooks import load_released, load_source, solution_content

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
import ch03_submissions as ch03

EXERCISE = Path("exercises") / ch03.ASSIGNMENT / f"{ch03.NAME}.ipynb"
NOTICE = "Hidden tests are not available in this copy"
TOTAL_NOTE = "hidden tests are not available in this copy, the instructor's grade can be lower"
SOLUTIONS_WARNING = "contains the course's solutions"


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=course", "-c", "user.email=course@example.org", "-c", "commit.gpgsign=false",
                    *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def public(tmp_path_factory) -> Path:
    """A public copy: course_lib and exercises/ without solutions/, in a git repository of its own."""
    root = tmp_path_factory.mktemp("public") / "attention-course"
    shutil.copytree(ROOT / "course_lib", root / "course_lib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(ROOT / "exercises", root / "exercises")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "release")
    assert not (root / "solutions").exists()
    return root


def course(public: Path, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """`course ...` run from the public copy (its course_lib first on the path), without bubblewrap."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if not (bin_dir / "git").exists():
        (bin_dir / "git").symlink_to(shutil.which("git"))
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}", "PYTHONPATH": str(public)}
    return subprocess.run([sys.executable, "-m", "course_lib.cli", *args], cwd=public, env=env,
                          capture_output=True, text=True, timeout=900, check=False)


def _rows(stdout: str) -> dict[str, tuple[str, str]]:
    """grade_id -> (points 'got/max', status) from `course check`'s output."""
    rows = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in ch03.POINTS:
            rows[parts[0]] = (parts[1], parts[2])
    return rows


# =========================================================================== fast: reading notebooks only


def test_a_released_source_has_the_visible_tests_and_points(tmp_path):
    real = load_source(ch03.ASSIGNMENT, ch03.NAME)
    copy = tmp_path / ch03.ASSIGNMENT / f"{ch03.NAME}.ipynb"
    copy.parent.mkdir()
    shutil.copyfile(ch03.RELEASED, copy)
    released = load_released(ch03.ASSIGNMENT, ch03.NAME, tmp_path, checked=tmp_path / "elsewhere.ipynb")
    assert not released.hidden_tests and real.hidden_tests
    assert [(g.grade_id, g.points) for g in released.graded] == [(g.grade_id, g.points) for g in real.graded]
    assert released.max_points == real.max_points == sum(ch03.POINTS.values())
    # every visible check is there; the hidden ones are not (ch03's solutions hide one at least)
    assert all(set(r.checks) <= set(g.checks) for r, g in zip(released.graded, real.graded))
    assert sum(len(g.checks) for g in released.graded) < sum(len(g.checks) for g in real.graded)
    # the notebook being checked is never its own reference
    mine = load_released(ch03.ASSIGNMENT, ch03.NAME, tmp_path, checked=copy)
    assert mine.origin == "" and released.origin.endswith(f"{ch03.NAME}.ipynb")


@pytest.mark.parametrize("layout", ["stub only", "stub inside a def", "blank lines around the stub"])
def test_a_blank_exercise_never_looks_like_the_solutions(layout):
    source = load_source(ch03.ASSIGNMENT, ch03.NAME)
    nb = ch03.released()
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            if layout == "stub only":
                cell.source = "# YOUR CODE HERE\nraise NotImplementedError()"
            elif layout == "blank lines around the stub":
                cell.source = "\n\n# YOUR CODE HERE\n\nraise NotImplementedError()\n\n"
    for src in (source, load_released(ch03.ASSIGNMENT, ch03.NAME)):
        assert solution_content(nb, src) == [], layout
    # planted: the solutions themselves are still flagged against solutions/
    assert solution_content(nbformat.read(ch03.SOURCE, as_version=4), source)
    assert solution_content(ch03.answered(), source)


def test_course_grade_in_the_public_copy_says_it_needs_solutions(public, tmp_path):
    subs = tmp_path / "submissions" / "ann" / ch03.ASSIGNMENT
    subs.mkdir(parents=True)
    shutil.copyfile(public / EXERCISE, subs / f"{ch03.NAME}.ipynb")
    proc = course(public, "grade", str(tmp_path / "submissions"), "--out", str(tmp_path / "grades"), "--no-sandbox",
                  tmp_path=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "grading needs the instructor's solutions/" in proc.stderr
    assert not (tmp_path / "grades" / "gradebook.csv").exists()


# =========================================================================== slow: `course check` runs notebooks


@pytest.mark.slow
def test_a_blank_exercise_fails_its_visible_tests_without_a_solutions_warning(public, tmp_path):
    proc = course(public, "check", str(EXERCISE), "--cell-timeout", "60", tmp_path=tmp_path)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "cannot tell which assignment" not in out + proc.stderr
    assert "there is no solutions/ folder here" in out and NOTICE in out
    assert out.index(NOTICE) < out.index("total:")
    assert "restored from the committed exercises/" in out
    assert SOLUTIONS_WARNING not in out
    rows = _rows(out)
    assert set(rows) == set(ch03.POINTS)
    assert all(points.startswith("0/") and status in ("failed", "error") for points, status in rows.values()), rows
    total = next(line for line in out.splitlines() if line.startswith("total:"))
    assert total.startswith("total: 0/10") and TOTAL_NOTE in total


@pytest.mark.slow
def test_answers_that_pass_the_visible_tests_earn_their_points(public, tmp_path):
    """Correct answers, except two that only the hidden tests catch: here they earn full marks."""
    mine = tmp_path / "my_work" / "attempt.ipynb"  # any folder, any name: the notebook's metadata says what it is
    mine.parent.mkdir()
    nbformat.write(ch03.answered(ch03.HIDDEN_WRONG), mine)
    proc = course(public, "check", str(mine), "--cell-timeout", "60", tmp_path=tmp_path)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    rows = _rows(out)
    assert rows == {gid: (f"{p}/{p}", "passed") for gid, p in ch03.POINTS.items()}, out
    total = next(line for line in out.splitlines() if line.startswith("total:"))
    assert total.startswith("total: 10/10") and TOTAL_NOTE in total
    assert SOLUTIONS_WARNING not in out


def _check_in_place(public: Path, nb, tmp_path: Path) -> tuple[str, dict[str, tuple[str, str]]]:
    """`course check` on ``nb`` written over the released exercise (as a learner edits it in place), then restored."""
    nbformat.write(nb, public / EXERCISE)
    try:
        proc = course(public, "check", str(EXERCISE), "--cell-timeout", "60", tmp_path=tmp_path)
    finally:
        _git(public, "checkout", "-q", "--", str(EXERCISE))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, _rows(proc.stdout)


@pytest.mark.slow
def test_an_edited_locked_cell_is_restored_and_marked_tampered(public, tmp_path):
    """The learner edits the released notebook in place (as `make lab` has them do) and rewrites a test cell."""
    nb = ch03.answered()
    ch03.cell(nb, ch03.A).source = "print('all good')"
    out, rows = _check_in_place(public, nb, tmp_path)
    assert rows[ch03.A][1] == "tampered", out
    assert "was modified" in out and "restored from the source" in out
    assert all(rows[g] == (f"{p}/{p}", "passed") for g, p in ch03.POINTS.items() if g != ch03.A), rows


@pytest.mark.slow
def test_an_edited_locked_cell_does_not_hand_out_a_reference(public, tmp_path):
    """Planted: the learner imports the course's reference in an answer, and in the (locked) set-up cell in place.

    What the locked cells hand out (course_lib.grading.libview) is read from the committed release,
    not from the learner's edited file, so the answer is still not the learner's own.
    """
    nb = ch03.answered({ch03.SB: "from course_lib.attention import scaled_dot_product_attention as reference\n\n"
                                 "def scaled_dot_product_attention(q, k, v, mask=None):\n"
                                 "    return reference(q, k, v, mask)"})
    setup = ch03.cell(nb, "setup")
    setup.source += "\nfrom course_lib.attention import scaled_dot_product_attention as reference"
    out, rows = _check_in_place(public, nb, tmp_path)
    assert rows[ch03.B] == ("0/4", "not_own_work"), out
    assert "was modified" in out
