"""The gradebook for people and LMSs (summary.csv, terminal table, exports) and shards (split, merge).

Fast tests work on gradebooks written here. The slow test grades a small class once in a
single run and once in 3 shards, merges the shards and compares every file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib.grading import gradebook as gb
from course_lib.grading.gradebook import Row, write_gradebook
from course_lib.grading.grader import Limits, _grader_fingerprint
from course_lib.grading.release import SOLUTIONS

ROOT = Path(__file__).resolve().parents[1]
COURSE = [sys.executable, "-m", "course_lib.cli"]
A2, A3 = "ch02_qkv", "ch03_scaled_dot_product"


def _rows(student: str, assignment: str, points: list[float], status: str = "", message: str = "") -> list[Row]:
    return [Row(student, assignment, "nb", f"t{i}", status or ("passed" if p else "failed"), p, 2.0, message, "2026-01-01T00:00:00")
            for i, p in enumerate(points)]


def _class() -> list[Row]:
    return (_rows("alice", A2, [2, 2]) + _rows("alice", A3, [2, 2, 2])
            + _rows("bob", A2, [2, 0]) + _rows("bob", A3, [0, 0, 0], "missing", "nb.ipynb was not submitted")
            + _rows("carol", A2, [2, 2]) + _rows("carol", A3, [2, 0, 2], "tampered", "restored")
            + _rows("dave", A2, [0, 0], "error", "grader failure: boom")
            + _rows("erin", A2, [2, 2]) + _rows("erin", A3, [2, 2, 2])
            + _rows("frank", A2, [0, 2]) + _rows("frank", A3, [2, 2, 0]))


def _full_class() -> list[Row]:
    """Every student has rows for every notebook of the run, as after a complete run (merge checks that)."""
    return _class() + _rows("dave", A3, [0, 0, 0], "missing", "nb.ipynb was not submitted")


def _csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


# =========================================================================== summary and table


def test_summary_has_a_row_per_student_a_column_per_assignment_and_totals(tmp_path):
    write_gradebook(tmp_path, _class(), set())
    table = _csv((tmp_path / "summary.csv").read_text())
    assert table[0] == ["student", A2, A3, "total", "max_possible", "notes"]
    by = {r[0]: r for r in table[1:]}
    assert sorted(by) == ["alice", "bob", "carol", "dave", "erin", "frank"]
    assert by["alice"][1:5] == ["4", "6", "10", "10"]
    assert by["bob"][1:5] == ["2", "0", "2", "10"]
    assert by["carol"][1:5] == ["4", "4", "8", "10"] and "tampered to review" in by["carol"][5]
    # dave has no ch03 rows in this gradebook: an empty cell, and the maximum counts only what was graded
    assert by["dave"][1:5] == ["0", "", "0", "4"] and "NOT GRADED" in by["dave"][5]


def test_terminal_table_shows_maxima_and_every_student(tmp_path):
    write_gradebook(tmp_path, _class(), set())
    text = gb.terminal_table(gb.read_rows(tmp_path))
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["student", "ch02", "ch03", "total"]
    assert lines[1].split() == ["(max)", "4", "6", "10"]
    assert lines[2].split()[:4] == ["alice", "4", "6", "10/10"]
    assert any(line.split()[:4] == ["dave", "0", "-", "0/4"] for line in lines)
    assert "ch03 = ch03_scaled_dot_product" in lines[-1]


def test_regrading_rewrites_summary_and_recorded_exports(tmp_path):
    write_gradebook(tmp_path, _class(), set())
    canvas = gb.export(tmp_path, "canvas", allow_ungraded=True)  # dave's ch02 was not graded: blank
    outside = gb.export(tmp_path, "moodle", tmp_path / "lms" / "moodle.csv", allow_ungraded=True)
    write_gradebook(tmp_path, _rows("bob", A3, [2, 2, 2]), {("bob", A3)})
    assert _csv((tmp_path / "summary.csv").read_text())[2][:5] == ["bob", "2", "6", "8", "10"]
    assert _csv(canvas.read_text())[3][5:] == ["2", "6"]  # row 3: bob (after the header and Points Possible)
    assert _csv(outside.read_text())[2] == ["bob", "2", "6"]
    assert not list(tmp_path.glob(".*.tmp")), "a temporary file was left behind"


def test_an_export_that_can_no_longer_be_made_is_removed_not_left_stale(tmp_path, capsys):
    write_gradebook(tmp_path, _rows("ann", A2, [2, 2]), set())
    roster = tmp_path / "roster.csv"
    roster.write_text("student,sis_user_id\nann,S1\n")
    out = gb.export(tmp_path, "canvas", roster_path=roster)
    write_gradebook(tmp_path, _rows("ben", A2, [2, 0]), {("ben", A2)})  # ben is not on the roster
    assert not out.exists()
    assert "ben" in capsys.readouterr().err


# =========================================================================== exports


def test_canvas_export_has_canvas_columns_points_possible_and_the_roster_ids(tmp_path):
    write_gradebook(tmp_path, _class(), set())
    roster = tmp_path / "roster.csv"
    roster.write_text("student,name,canvas_id,sis_user_id,sis_login_id,section\n"
                      + "".join(f"{s},{s.title()} X,{100 + i},S{i},{s}@uni,Sec A\n"
                                for i, s in enumerate(["alice", "bob", "carol", "dave", "erin", "frank", "zoe"])))
    rows = _csv(gb.export_text(gb.read_rows(tmp_path), "canvas", gb.read_roster(roster), roster))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", A2, A3]
    assert rows[1] == ["Points Possible", "", "", "", "", "4", "6"]
    assert rows[2] == ["Alice X", "100", "S0", "alice@uni", "Sec A", "4", "6"]
    assert len(rows) == 2 + 7  # zoe is on the roster but has no submission: an explicit 0 (tests/test_gradebook_exports.py)
    assert rows[-1] == ["Zoe X", "106", "S6", "zoe@uni", "Sec A", "0", "0"]


def test_canvas_export_without_a_roster_uses_the_folder_name_as_login(tmp_path):
    write_gradebook(tmp_path, _class(), set())
    rows = _csv(gb.export_text(gb.read_rows(tmp_path), "canvas"))
    assert rows[2] == ["alice", "", "", "alice", "", "4", "6"]


def test_moodle_export_has_one_identifier_column_and_a_column_per_grade_item(tmp_path):
    write_gradebook(tmp_path, _class(), set())
    roster = tmp_path / "roster.csv"
    roster.write_text("student,email,idnumber\n" + "".join(f"{s},{s}@uni.example,{i}\n"
                                                          for i, s in enumerate(["alice", "bob", "carol", "dave", "erin", "frank"])))
    rows = _csv(gb.export_text(gb.read_rows(tmp_path), "moodle", gb.read_roster(roster), roster))
    assert rows[0] == ["email", A2, A3]
    assert rows[1] == ["alice@uni.example", "4", "6"]
    assert rows[4] == ["dave@uni.example", "", ""]  # dave's ch02 was not graded (a grader failure): blank, never 0


def test_a_roster_missing_students_is_refused_naming_them(tmp_path):
    write_gradebook(tmp_path, _class(), set())
    roster = tmp_path / "roster.csv"
    roster.write_text("student,sis_user_id\nalice,1\nbob,2\n")
    with pytest.raises(gb.GradebookError, match=r"no line for 4 graded student\(s\): carol, dave, erin, frank"):
        gb.export(tmp_path, "canvas", roster_path=roster, allow_ungraded=True)


@pytest.mark.parametrize("text, phrase", [
    ("name,email\nalice,a@x\n", "expected a header row with a 'student' column"),
    ("student,mail\nalice,a@x\n", "unknown columns ['mail']"),
    ("student,email\nalice,a@x\nalice,b@x\n", "listed twice"),
    ("", "an empty file"),
])
def test_bad_rosters_say_what_was_expected(tmp_path, text, phrase):
    (tmp_path / "r.csv").write_text(text)
    with pytest.raises(gb.GradebookError, match=phrase.replace("[", r"\[").replace("]", r"\]")):
        gb.read_roster(tmp_path / "r.csv")


def test_moodle_needs_one_identifier_every_student_has(tmp_path):
    write_gradebook(tmp_path, _rows("ann", A2, [2]) + _rows("ben", A2, [0]), set())
    roster = tmp_path / "r.csv"
    roster.write_text("student,email,idnumber\nann,a@x,\nben,,7\n")
    with pytest.raises(gb.GradebookError, match="one column filled for all"):
        gb.export(tmp_path, "moodle", roster_path=roster)


def test_cli_export_errors_name_the_expected_input(tmp_path):
    bad_format = subprocess.run([*COURSE, "export", "--format", "blackboard", "--grades", str(tmp_path)],
                                capture_output=True, text=True, cwd=ROOT)
    assert bad_format.returncode == 2 and "expected one of canvas, moodle, csv" in bad_format.stderr
    no_book = subprocess.run([*COURSE, "export", "--format", "csv", "--grades", str(tmp_path)],
                             capture_output=True, text=True, cwd=ROOT)
    assert no_book.returncode == 2 and "expected a gradebook at" in no_book.stderr
    (tmp_path / "gradebook.json").write_text("{not json")
    broken = subprocess.run([*COURSE, "export", "--format", "csv", "--grades", str(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT)
    assert broken.returncode == 2 and "not a readable JSON gradebook" in broken.stderr
    (tmp_path / "gradebook.json").write_text(json.dumps({"rows": [{"student": "a"}]}))
    malformed = subprocess.run([*COURSE, "export", "--format", "csv", "--grades", str(tmp_path)],
                               capture_output=True, text=True, cwd=ROOT)
    assert malformed.returncode == 2 and "should have the fields student, assignment" in malformed.stderr


# =========================================================================== the shard split


NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
#: SHA-256 of the UTF-8 name, first 8 bytes big-endian, mod N, + 1 (computed once; must never change)
EXPECTED_OF_4 = {"alice": 4, "bob": 3, "carol": 3, "dave": 4, "erin": 4, "frank": 4, "grace": 4, "heidi": 4}
EXPECTED_OF_3 = {"alice": 3, "bob": 3, "carol": 3, "dave": 2, "erin": 1}


def _split_in_fresh_process(expression: str, seed: str) -> dict:
    code = (f"import json; from course_lib.grading.gradebook import shard_of; "
            f"print(json.dumps({{s: {expression} for s in {NAMES!r}}}))")
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    return json.loads(out.stdout)


def _is_stable(expression: str) -> bool:
    return len({json.dumps(_split_in_fresh_process(expression, seed)) for seed in ("1", "2", "3")}) == 1


def test_the_split_is_the_documented_hash_and_the_same_in_every_process():
    assert {s: gb.shard_of(s, 4) for s in NAMES} == EXPECTED_OF_4
    assert {s: gb.shard_of(s, 3) for s in EXPECTED_OF_3} == EXPECTED_OF_3
    assert _is_stable("shard_of(s, 4)")
    # the check catches a split by Python's salted hash(): it differs between processes
    assert not _is_stable("hash(s) % 4 + 1")


def test_the_split_covers_every_shard_evenly():
    counts = [0] * 8
    for i in range(4000):
        counts[gb.shard_of(f"student{i:04d}", 8) - 1] += 1
    assert min(counts) > 400 and max(counts) < 600, counts  # 500 each expected


@pytest.mark.parametrize("text, phrase", [("2", "K/N with whole numbers"), ("a/4", "whole numbers"), ("0/4", "1 <= K <= N"),
                                          ("5/4", "1 <= K <= N"), ("1/0", "N >= 1"), ("1/2/3", "whole numbers")])
def test_bad_shard_specs_are_refused(text, phrase):
    with pytest.raises(gb.GradebookError, match=phrase):
        gb.parse_shard(text)
    proc = subprocess.run([*COURSE, "grade", "subs", "--shard", text], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and phrase in proc.stderr


# =========================================================================== merging (gradebooks written here)


FINGERPRINT = "f" * 64


def _make_shards(tmp_path: Path, rows: list[Row], n: int, feedback: bool = True) -> list[Path]:
    everyone = sorted({r.student for r in rows if r.student != gb.CLASS_WIDE})
    dirs = []
    for k in range(1, n + 1):
        d = tmp_path / f"shard{k}"
        mine = [r for r in rows if r.student == gb.CLASS_WIDE or gb.shard_of(r.student, n) == k]
        write_gradebook(d, mine, set())
        gb.write_manifest(d, (k, n), FINGERPRINT, {"cell_timeout": 60.0}, {A2, A3}, everyone)
        for s in {r.student for r in mine if r.student != gb.CLASS_WIDE and feedback}:
            (d / "feedback" / s / A2).mkdir(parents=True)
            (d / "feedback" / s / A2 / "nb.html").write_text(f"<p>{s}</p>")
        dirs.append(d)
    return dirs


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "graded_at"} for r in rows]


def test_merging_shards_gives_the_single_gradebook(tmp_path):
    rows = _full_class() + [Row(gb.CLASS_WIDE, "ch99_nope", "", "", "unreadable", 0, 0, "unknown assignment 'ch99_nope'", "t")]
    single = write_gradebook(tmp_path / "single", rows, set())
    dirs = _make_shards(tmp_path, rows, 4)
    merged = gb.merge(dirs[::-1], tmp_path / "merged")  # order of the folders does not matter
    assert _strip(merged) == _strip(single)
    for name in ("gradebook.csv", "summary.csv"):
        assert (tmp_path / "merged" / name).read_text() == (tmp_path / "single" / name).read_text()
    assert sorted(p.name for p in (tmp_path / "merged" / "feedback").iterdir()) == ["alice", "bob", "carol", "dave", "erin", "frank"]


def _merge_matches_single(tmp_path: Path) -> bool:
    rows = _full_class()
    single = write_gradebook(tmp_path / "single", rows, set())
    merged = gb.merge(_make_shards(tmp_path, rows, 3), tmp_path / "merged")
    on_disk = gb.read_rows(tmp_path / "merged")
    return _strip(merged) == _strip(on_disk) == _strip(single) and \
        (tmp_path / "merged" / "summary.csv").read_text() == (tmp_path / "single" / "summary.csv").read_text()


def test_the_comparison_catches_a_merge_that_drops_a_row(tmp_path, monkeypatch):
    assert _merge_matches_single(tmp_path / "right")
    real = gb.write_gradebook

    def dropping(out_dir, rows, regraded):  # a planted merge bug: the last row is lost on the way out
        return real(out_dir, rows[:-1] if "merged" in str(out_dir) else rows, regraded)

    monkeypatch.setattr(gb, "write_gradebook", dropping)
    assert not _merge_matches_single(tmp_path / "planted")


def _refused(dirs, out, phrase):
    with pytest.raises(gb.GradebookError, match=phrase):
        gb.merge(dirs, out)
    assert not (Path(out) / "gradebook.json").exists(), "a refused merge wrote a gradebook"


def test_merge_refuses_a_missing_shard(tmp_path):
    dirs = _make_shards(tmp_path, _full_class(), 4)
    _refused(dirs[:2] + dirs[3:], tmp_path / "m", r"missing shard\(s\) 3/4")


def test_merge_refuses_the_same_shard_twice(tmp_path):
    dirs = _make_shards(tmp_path, _full_class(), 2)
    _refused([dirs[0], dirs[0], dirs[1]], tmp_path / "m", "shard 1/2 given twice")


def test_merge_refuses_shards_of_another_grader_or_other_limits(tmp_path):
    dirs = _make_shards(tmp_path, _full_class(), 2)
    m = json.loads((dirs[1] / gb.SHARD_FILE).read_text())
    (dirs[1] / gb.SHARD_FILE).write_text(json.dumps({**m, "fingerprint": "0" * 64}))
    _refused(dirs, tmp_path / "m", r"the grader differs \(course_lib or solutions/ changed")
    (dirs[1] / gb.SHARD_FILE).write_text(json.dumps({**m, "limits": {"cell_timeout": 5.0}}))
    _refused(dirs, tmp_path / "m", "the limits differ")


def test_merge_refuses_overlapping_students(tmp_path):
    dirs = _make_shards(tmp_path, _full_class(), 2)
    extra = [r for r in _full_class() if r.student == "alice"]  # alice's rows copied into the other shard too
    other = dirs[1] if gb.shard_of("alice", 2) == 1 else dirs[0]
    write_gradebook(other, extra, set())
    _refused(dirs, tmp_path / "m", "'alice' is in two shards|belongs to shard")


def test_merge_refuses_a_shard_that_lost_a_row(tmp_path):
    dirs = _make_shards(tmp_path, _full_class(), 2)
    book = json.loads((dirs[0] / "gradebook.json").read_text())
    book["rows"] = book["rows"][:-1]  # one test cell's row dropped
    (dirs[0] / "gradebook.json").write_text(json.dumps(book))
    _refused(dirs, tmp_path / "m", "lacks rows for 1 notebook")


def test_merge_refuses_a_shard_that_lost_a_student(tmp_path):
    dirs = _make_shards(tmp_path, _full_class(), 2, feedback=False)
    book = json.loads((dirs[0] / "gradebook.json").read_text())
    victim = book["rows"][0]["student"]
    book["rows"] = [r for r in book["rows"] if r["student"] != victim]
    (dirs[0] / "gradebook.json").write_text(json.dumps(book))
    _refused(dirs, tmp_path / "m", f"lacks rows .*{victim}/")


@pytest.mark.parametrize("damage, phrase", [
    (lambda d: (d / gb.SHARD_FILE).unlink(), "is not a shard: expected shard.json"),
    (lambda d: (d / gb.SHARD_FILE).write_text("{"), "shard.json is not readable JSON"),
    (lambda d: (d / gb.SHARD_FILE).write_text('{"shard": "1"}'), "expected the fields shard .int."),
    (lambda d: (d / "gradebook.json").unlink(), "expected a gradebook at"),
    (lambda d: (d / "gradebook.json").write_text("[1, 2]"), "row 0 should have the fields"),
    (lambda d: shutil.rmtree(d), "it is not a folder"),
])
def test_merge_refuses_a_malformed_shard_saying_what_was_expected(tmp_path, damage, phrase):
    dirs = _make_shards(tmp_path, _full_class(), 2)
    damage(dirs[0])
    _refused(dirs, tmp_path / "m", phrase)


def test_merge_refuses_a_mislabelled_shard_and_a_non_empty_output(tmp_path):
    dirs = _make_shards(tmp_path, _full_class(), 2)
    nonempty = tmp_path / "used"
    nonempty.mkdir()
    (nonempty / "keep.txt").write_text("x")
    _refused(dirs, nonempty, "is not empty")
    m0, m1 = (json.loads((d / gb.SHARD_FILE).read_text()) for d in dirs)
    (dirs[0] / gb.SHARD_FILE).write_text(json.dumps({**m0, "shard": 2}))
    (dirs[1] / gb.SHARD_FILE).write_text(json.dumps({**m1, "shard": 1}))
    _refused(dirs, tmp_path / "m", "whose name belongs to shard")


def test_cli_merge_reports_a_missing_shard(tmp_path):
    dirs = _make_shards(tmp_path, _full_class(), 3)
    proc = subprocess.run([*COURSE, "merge", str(dirs[0]), str(dirs[2]), "--out", str(tmp_path / "m")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "missing shard(s) 2/3" in proc.stderr


@pytest.mark.skipif(not SOLUTIONS.is_dir(), reason="no solutions/ (the learners' public copy): nothing to grade")
def test_the_grader_fingerprint_does_not_depend_on_where_the_checkout_is(tmp_path):
    copy = tmp_path / "elsewhere" / "solutions"
    shutil.copytree(SOLUTIONS / A3, copy / A3)
    assert _grader_fingerprint({A3}, copy) == _grader_fingerprint({A3}, SOLUTIONS)
    (copy / A3 / next(p.name for p in (copy / A3).glob("*.ipynb"))).write_text("{}")
    assert _grader_fingerprint({A3}, copy) != _grader_fingerprint({A3}, SOLUTIONS)


# =========================================================================== a real class, single run vs shards (slow)


def _class_folder(dest: Path) -> None:
    """5 students (3 shards of 3 get 1, 1 and 3 of them): solutions, an exercise, a missing and a corrupt notebook."""
    for student, source in (("alice", "solutions"), ("bob", "exercises"), ("dave", "solutions")):
        (dest / student / A3).mkdir(parents=True)
        for nb in (ROOT / source / A3).glob("*.ipynb"):
            shutil.copy(nb, dest / student / A3 / nb.name)
    (dest / "carol" / A3).mkdir(parents=True)  # nothing submitted
    (dest / "erin" / A3).mkdir(parents=True)
    for nb in (ROOT / "solutions" / A3).glob("*.ipynb"):
        (dest / "erin" / A3 / nb.name).write_text("{not a notebook")
    (dest / "x.txt").write_text("not a student")  # a row of its own, in the shard its name hashes to


def _visible(path: Path) -> str:
    """A page's text without its markup and whitespace."""
    import re

    return re.sub(r"\s+", "", re.sub(r"<[^>]*>", "", path.read_text(encoding="utf-8")))


@pytest.mark.skipif(not SOLUTIONS.is_dir(), reason="no solutions/ (the learners' public copy): nothing to grade")
@pytest.mark.slow
def test_a_sharded_run_merged_equals_a_single_run(tmp_path):
    from course_lib.grading.grader import grade

    subs = tmp_path / "subs"
    _class_folder(subs)
    limits = Limits(cell_timeout=120)
    seed = 2026  # the checks' inputs (and so some messages) depend on the run's seed: one for all
    single = grade(subs, tmp_path / "single", limits, seed=seed)
    shards = []
    for k in (1, 2, 3):
        out = tmp_path / f"shard{k}"
        if k == 2:  # through the command line once
            proc = subprocess.run([*COURSE, "grade", str(subs), "--out", str(out), "--shard", "2/3", "--quiet",
                                   "--cell-timeout", "120", "--seed", str(seed)], capture_output=True, text=True, cwd=ROOT)
            assert proc.returncode == 1, proc.stdout + proc.stderr  # x.txt is not gradeable, as in the single run
            assert "(max)" in proc.stdout and "summary.csv" in proc.stdout
        else:
            grade(subs, out, limits, shard=(k, 3), seed=seed)
        shards.append(out)
    assert {gb.shard_of(s, 3) for s in ("alice", "bob", "carol", "dave", "erin")} == {1, 2, 3}
    assert not single.ok  # x.txt
    proc = subprocess.run([*COURSE, "merge", *map(str, shards), "--out", str(tmp_path / "merged")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the same exit status as the single run
    one, merged = tmp_path / "single", tmp_path / "merged"
    assert _strip(gb.read_rows(merged)) == _strip(gb.read_rows(one))
    assert (merged / "summary.csv").read_text() == (one / "summary.csv").read_text()
    strip_time = lambda p: [line.rsplit(",", 1)[0] for line in p.read_text().splitlines()]  # noqa: E731 - graded_at is last
    assert strip_time(merged / "gradebook.csv") == strip_time(one / "gradebook.csv")
    files = lambda root: sorted(p.relative_to(root) for p in (root / "feedback").rglob("*") if p.is_file())  # noqa: E731
    assert files(merged) == files(one)
    assert sorted(str(p) for p in files(one) if p.suffix == ".html" and A3 in p.parts) == [
        f"feedback/{s}/{A3}/scaled_dot_product.html" for s in ("alice", "bob", "dave")]  # the notebooks that ran
    for rel in files(one):
        # the merge copies each shard's file as it is
        shard = next(d for d in shards if (d / rel).is_file())
        assert (merged / rel).read_bytes() == (shard / rel).read_bytes(), rel
        # and it shows what the single run's does: the same text; only how nbclient chunked a cell's
        # printed output into stream outputs (markup between the chunks) varies from one execution to the next
        if rel.suffix == ".html":
            assert _visible(merged / rel) == _visible(one / rel), rel
        else:
            assert (merged / rel).read_bytes() == (one / rel).read_bytes(), rel
    summary = {r[0]: r for r in _csv((one / "summary.csv").read_text())[1:]}
    assert summary["alice"][1] == summary["alice"][3] == summary["dave"][1] != "0"
    assert summary["bob"][1] == summary["carol"][1] == summary["erin"][1] == "0"
