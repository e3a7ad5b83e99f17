"""The grader's invariants, for every assignment in solutions/, and its fixture set of bad submissions.

Fast tests read notebooks only. Tests marked slow execute notebooks (a few minutes in all
on 2 cores: the fixture set and the invariants each run once, with --jobs 2).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_lib.grading import grader, release
from course_lib.grading.gradebook import Row, write_gradebook
from course_lib.grading.grader import Limits, grade
from course_lib.grading.notebooks import (
    SourceError,
    Unreadable,
    called_check_functions,
    load_source,
    prepare,
    read_submission,
    source_names,
)

ROOT = Path(__file__).resolve().parents[1]
if not (ROOT / "solutions").is_dir():  # the learners' public copy (`make test` there)
    pytest.skip("no solutions/ in this copy of the course (the learners' public copy): the grader's invariants grade the instructors' source notebooks",
                allow_module_level=True)
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
import ch03_submissions as ch03  # noqa: E402

ASSIGNMENTS = release.list_assignments()
COURSE = [sys.executable, "-m", "course_lib.cli"]
# per-cell limit: generous for a loaded machine, short enough for the looping fixtures
FIXTURE_LIMITS = Limits(cell_timeout=20, total_timeout=150, memory_mb=2048)


def sources():
    return [(a, n) for a in ASSIGNMENTS for n in source_names(a)]


def _ids(pairs):
    return [f"{a}/{n}" for a, n in pairs]


# =========================================================================== the format (fast)


def test_there_is_at_least_the_ch03_assignment():
    assert "ch03_scaled_dot_product" in ASSIGNMENTS


def test_exercise_folders_match_solution_folders():
    released = sorted(p.name for p in (ROOT / "exercises").iterdir() if p.is_dir() and not p.name.startswith("."))
    assert released == ASSIGNMENTS, "run `make exercises` and commit exercises/"


@pytest.mark.parametrize("assignment, name", sources(), ids=_ids(sources()))
def test_every_graded_cell_calls_a_registered_check(assignment, name):
    try:
        source = load_source(assignment, name)  # raises SourceError when a graded cell calls no registered check
    except SourceError as err:
        pytest.fail(str(err))
    assert len(source.graded) >= 3, f"{assignment}/{name}: at least three graded parts, got {len(source.graded)}"
    assert all(g.points > 0 for g in source.graded), "every graded cell is worth points"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_assignment_has_a_hidden_check(assignment):
    hidden_checks = []
    for name in source_names(assignment):
        nb = nbformat.read(ROOT / "solutions" / assignment / f"{name}.ipynb", as_version=4)
        for cell in nb.cells:
            if cell.get("metadata", {}).get("nbgrader", {}).get("grade") and "### BEGIN HIDDEN TESTS" in cell.source:
                block = cell.source.split("### BEGIN HIDDEN TESTS", 1)[1].split("### END HIDDEN TESTS", 1)[0]
                hidden_checks += called_check_functions(block)
    assert hidden_checks, f"{assignment}: no hidden test block calls a check_* function"


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    release.release(release_dir=out)
    return out


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_exercises_are_up_to_date(assignment, regenerated):
    for name in source_names(assignment):
        committed = nbformat.read(ROOT / "exercises" / assignment / f"{name}.ipynb", as_version=4)
        fresh = nbformat.read(regenerated / assignment / f"{name}.ipynb", as_version=4)
        got = [(c.cell_type, c.source, c.metadata.get("nbgrader")) for c in committed.cells]
        want = [(c.cell_type, c.source, c.metadata.get("nbgrader")) for c in fresh.cells]
        assert got == want, f"exercises/{assignment}/{name}.ipynb is out of date with solutions/: run `make exercises`"


def test_release_is_deterministic(tmp_path):
    assert release.release(["ch03_scaled_dot_product"], release_dir=tmp_path)
    assert release.release(["ch03_scaled_dot_product"], release_dir=tmp_path) == [], "a second release changed files"


def _solution_and_hidden_lines(nb) -> list[str]:
    """Lines between the solution / hidden-test markers that are specific enough to search for."""
    lines = []
    for cell in nb.cells:
        inside = False
        for line in cell.source.split("\n"):
            if "### BEGIN SOLUTION" in line or "### BEGIN HIDDEN TESTS" in line:
                inside = True
            elif "### END SOLUTION" in line or "### END HIDDEN TESTS" in line:
                inside = False
            elif inside and len(line.strip()) > 12 and not line.strip().startswith("#"):
                lines.append(line.strip())
    return lines


@pytest.mark.parametrize("assignment, name", sources(), ids=_ids(sources()))
def test_no_solution_or_hidden_test_in_exercises(assignment, name):
    source = nbformat.read(ROOT / "solutions" / assignment / f"{name}.ipynb", as_version=4)
    released = nbformat.read(ROOT / "exercises" / assignment / f"{name}.ipynb", as_version=4)
    assert release.leaked_text(released) == []
    released_text = "\n".join(c.source for c in released.cells)
    # lines that also appear outside the markers in the source (a signature, an import) are not secrets
    public = "\n".join(line for c in source.cells for line in c.source.split("\n"))
    visible = set(_visible_lines(source))
    leaked = [l for l in _solution_and_hidden_lines(source) if l in released_text and l not in visible]
    assert not leaked, f"exercises/{assignment}/{name}.ipynb shows solution or hidden-test code: {leaked[:3]}"
    assert public  # the source is not empty


def _visible_lines(nb) -> list[str]:
    lines, inside = [], False
    for cell in nb.cells:
        for line in cell.source.split("\n"):
            if "### BEGIN" in line:
                inside = True
            elif "### END" in line:
                inside = False
            elif not inside:
                lines.append(line.strip())
    return lines


# =========================================================================== notebooks (fast, nothing executed)


@pytest.fixture(scope="module")
def ch03_source():
    return load_source(ch03.ASSIGNMENT, ch03.NAME)


def test_checks_are_found_statically_including_hidden_ones(ch03_source):
    by_id = {g.grade_id: g.checks for g in ch03_source.graded}
    assert by_id[ch03.A] == ("attention_weights", "attention_weights_batched_heads")
    assert by_id[ch03.B] == ("scaled_dot_product_attention", "sdpa_fully_masked_row")
    assert called_check_functions("import x\ncheck_a(f)\nchecks.check_b(g)\nprint(check_c)") == ["check_a", "check_b"]


def _write(tmp_path, content) -> Path:
    path = tmp_path / "nb.ipynb"
    if isinstance(content, nbformat.NotebookNode):
        nbformat.write(content, path)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize("content, phrase", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a notebook"),
    (json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": []}), "nbformat 3"),
    (json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "code"}]}), "not a valid notebook"),
])
def test_unreadable_files_say_why(tmp_path, ch03_source, content, phrase):
    with pytest.raises(Unreadable, match=phrase):
        read_submission(_write(tmp_path, content), ch03_source)


def test_a_notebook_of_another_assignment_is_unreadable(tmp_path, ch03_source):
    with pytest.raises(Unreadable, match="ch04_multi_head"):
        read_submission(_write(tmp_path, ch03._other_assignment()), ch03_source)
    with pytest.raises(Unreadable, match="another assignment"):
        read_submission(_write(tmp_path, ch03._foreign_cells()), ch03_source)


def test_prepare_keeps_answers_restores_locked_cells_and_reports_tampering(ch03_source):
    sub = ch03._edit_test_cells()
    prepared = prepare(ch03_source, sub)
    assert set(prepared.tampered) == {ch03.A, ch03.B}
    run_b = prepared.run_nb.cells[prepared.run_index[ch03.B]].source
    assert run_b.startswith("import course_lib.grading.recorder as __r; __r.begin('test_scaled_dot_product_attention')")
    assert "check_sdpa_fully_masked_row(scaled_dot_product_attention)" in run_b  # hidden tests restored
    answer_b = next(c for c in prepared.run_nb.cells if ch03._gid(c) == ch03.SB)
    assert "forgot the 1/sqrt(d_k)" in answer_b.source  # the learner's answer, as written
    assert "finfo" not in answer_b.source  # never the source's solution


def test_prepare_on_an_untouched_or_solution_notebook_reports_nothing(ch03_source):
    assert prepare(ch03_source, ch03.released()).tampered == {}
    assert prepare(ch03_source, copy.deepcopy(ch03_source.nb)).tampered == {}


def test_prepare_restores_a_deleted_test_cell_and_keeps_extra_cells(ch03_source):
    prepared = prepare(ch03_source, ch03._delete_test_cell())
    assert "deleted" in prepared.tampered[ch03.D][0]
    assert ch03.D in prepared.run_index
    prepared = prepare(ch03_source, ch03._extra_cells())
    assert prepared.tampered == {}
    assert any("scratch = torch.randn(3, 4)" in c.source for c in prepared.run_nb.cells)


def test_feedback_source_has_no_hidden_tests(ch03_source):
    prepared = prepare(ch03_source, ch03.answered())
    from course_lib.grading.feedback import feedback_notebook

    rows = [Row("s", ch03.ASSIGNMENT, ch03.NAME, g.grade_id, "passed", g.points, g.points) for g in ch03_source.graded]
    text = json.dumps(feedback_notebook(prepared.run_nb, ch03_source, prepared, rows))
    for hidden in ("HIDDEN TESTS", "check_sdpa_fully_masked_row(", "check_attention_entropy_one_hot(", "__r.begin", "__r.end"):
        assert hidden not in text


def test_limits_are_validated():
    with pytest.raises(ValueError, match="cell_timeout"):
        Limits(cell_timeout=0)
    assert Limits().cell_timeout == 60 and Limits().total_timeout == 300 and Limits().memory_mb == 4096


def test_gradebook_merge_replaces_regraded_rows_and_keeps_the_others(tmp_path):
    def rows(student, points):
        return [Row(student, "a1", "nb", g, "passed", points, 2) for g in ("t1", "t2")]

    write_gradebook(tmp_path, rows("ann", 2) + rows("bob", 0), {("ann", "a1"), ("bob", "a1")})
    merged = write_gradebook(tmp_path, rows("bob", 2), {("bob", "a1")})
    assert len(merged) == 4
    assert {(r["student"], r["points"]) for r in merged} == {("ann", 2), ("bob", 2)}
    with open(tmp_path / "gradebook.csv") as f:
        assert len(f.read().strip().splitlines()) == 5  # header + 4 rows


# =========================================================================== the fixture set (slow)


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory):
    subs = tmp_path_factory.mktemp("submissions")
    out = tmp_path_factory.mktemp("grades")
    built = ch03.build(subs)
    run = grade(subs, out, FIXTURE_LIMITS, jobs=2)
    return built, run, subs, out


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ch03.FIXTURES, ids=[f.student for f in ch03.FIXTURES])
def test_fixture_gets_its_honest_score_and_status(fixture, fixture_run):
    _, run, _, _ = fixture_run
    rows = {r.grade_id: r for r in run.rows if r.student == fixture.student}
    got = {gid: (r.points, r.status) for gid, r in rows.items()}
    assert got == fixture.expected, f"{fixture.student} ({fixture.why}): " + "; ".join(
        f"{gid}: {r.status} {r.message[:200]}" for gid, r in rows.items())
    for gid, phrase in fixture.message.items():
        assert phrase in rows[gid].message, f"{fixture.student}/{gid}: {phrase!r} not in {rows[gid].message!r}"
    assert not any(r.grader_failure for r in rows.values())


@pytest.mark.slow
def test_fixture_run_is_complete_and_its_exit_status_is_zero(fixture_run):
    built, run, _, out = fixture_run
    assert run.ok, "every fixture is gradeable: the run must succeed"
    book = json.loads((out / "gradebook.json").read_text())["rows"]
    assert len(book) == len(built) * len(ch03.POINTS)
    assert all(r["status"] in grader.STATUSES for r in book)
    assert len({(r["student"], r["grade_id"]) for r in book}) == len(book)


@pytest.mark.slow
def test_feedback_hides_hidden_tests_and_shows_grades(fixture_run):
    built, run, _, out = fixture_run
    for student in ("correct", "partial", "patch_reference", "ignore_sigint"):
        html = (out / "feedback" / student / ch03.ASSIGNMENT / f"{ch03.NAME}.html").read_text()
        for hidden in ("HIDDEN TESTS", "check_sdpa_fully_masked_row(", "check_attention_entropy_one_hot(", "__r.begin"):
            assert hidden not in html, f"{student}'s feedback shows {hidden!r}"
        assert "Score:" in html and "test_scaled_dot_product_attention" in html
    assert "with a mask (4-D)" in (out / "feedback" / "partial" / ch03.ASSIGNMENT / f"{ch03.NAME}.html").read_text()


@pytest.mark.slow
def test_no_kernel_or_worker_is_left_running(fixture_run):
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    # only processes of this checkout's interpreter: another checkout may be grading at the same time
    venv = str(Path(sys.executable).parent)
    mine = [
        line
        for line in out.splitlines()
        if ("course_lib.grading.kernel" in line or "course_lib.grading.runner" in line) and venv in line
    ]
    assert not mine, mine


@pytest.mark.slow
def test_regrading_neither_loses_nor_duplicates_rows(fixture_run, tmp_path):
    built, _, subs, out = fixture_run
    before = json.loads((out / "gradebook.json").read_text())["rows"]
    again = tmp_path / "again"
    for student in ("missing", "corrupt_json"):  # cheap to regrade: nothing executes
        shutil.copytree(subs / student, again / student)  # copies: the grader follows no symlink
    run = grade(again, out, FIXTURE_LIMITS, jobs=2)
    assert run.ok
    after = json.loads((out / "gradebook.json").read_text())["rows"]
    key = lambda r: (r["student"], r["assignment"], r["notebook"], r["grade_id"])  # noqa: E731
    assert sorted(map(key, after)) == sorted(map(key, before))
    untouched = [r for r in before if r["student"] not in ("missing", "corrupt_json")]
    assert all(r in after for r in untouched)


def test_an_unknown_assignment_gives_a_nonzero_exit_and_a_row(tmp_path):
    (tmp_path / "subs" / "ann" / "ch99_nope").mkdir(parents=True)
    (tmp_path / "subs" / "ann" / "ch99_nope" / "x.ipynb").write_text("{}")
    proc = subprocess.run([*COURSE, "grade", str(tmp_path / "subs"), "--out", str(tmp_path / "out"), "--quiet"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = json.loads((tmp_path / "out" / "gradebook.json").read_text())["rows"]
    assert rows and "unknown assignment" in rows[0]["message"]


# =========================================================================== invariants for every assignment (slow)


@pytest.fixture(scope="module")
def invariant_run(tmp_path_factory):
    """Two students: one submits solutions/ as is, one the untouched exercises/."""
    subs = tmp_path_factory.mktemp("invariants")
    for student, folder in (("solution", "solutions"), ("exercise", "exercises")):
        for assignment in ASSIGNMENTS:
            dest = subs / student / assignment
            dest.mkdir(parents=True)
            for nb in (ROOT / folder / assignment).glob("*.ipynb"):
                (dest / nb.name).write_bytes(nb.read_bytes())
    return grade(subs, tmp_path_factory.mktemp("invariant_grades"), Limits(cell_timeout=120), jobs=2)


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solutions_get_full_marks(assignment, invariant_run):
    rows = [r for r in invariant_run.rows if r.student == "solution" and r.assignment == assignment]
    assert rows
    bad = [f"{r.grade_id}: {r.status} {r.message[:300]}" for r in rows if r.status != "passed" or r.points != r.max_points]
    assert not bad, f"solutions/{assignment} does not get full marks: {bad}"


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_untouched_exercises_get_zero(assignment, invariant_run):
    rows = [r for r in invariant_run.rows if r.student == "exercise" and r.assignment == assignment]
    assert rows and all(r.status in grader.STATUSES for r in rows)
    assert sum(r.points for r in rows) == 0, [(r.grade_id, r.status) for r in rows if r.points]
    assert not any(r.grader_failure for r in rows), [r.message for r in rows]
    assert all(r.status in ("failed", "error") for r in rows), [(r.grade_id, r.status) for r in rows]


@pytest.mark.slow
def test_course_check_scores_one_notebook(tmp_path):
    nb = tmp_path / ch03.ASSIGNMENT / f"{ch03.NAME}.ipynb"
    nb.parent.mkdir()
    nbformat.write(ch03.answered({ch03.SD: ch03.WRONG[ch03.SD]}), nb)
    proc = subprocess.run([*COURSE, "check", str(nb), "--cell-timeout", "60", "--html", str(tmp_path / "fb.html")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "total: 8/10" in proc.stdout
    assert "minus sign" in proc.stdout
    assert (tmp_path / "fb.html").is_file()
