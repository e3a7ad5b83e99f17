"""The instructor's flow, end to end, as ONE test (issue #22, "done when"): release, grade a class of 10,
export, shard and merge, regrade one student, class report.

Through the ``course`` command, as the guides tell an instructor to run it. The class (ch02 and
ch03, the fastest assignments) mixes honest solutions, blank exercises, planted mistakes, a missing
and a corrupt notebook, a lookup table, and folder names a spreadsheet would run. About 2-3 minutes
with --jobs 2.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib.grading import gradebook as gb
from course_lib.grading.release import SOLUTIONS

ROOT = Path(__file__).resolve().parents[1]
COURSE = [sys.executable, "-m", "course_lib.cli"]
A2, NB2 = "ch02_qkv", "query_key_value"
A3, NB3 = "ch03_scaled_dot_product", "scaled_dot_product"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not SOLUTIONS.is_dir(), reason="no solutions/ (the learners' public copy): nothing to grade")]


def _course(*args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    proc = subprocess.run([*COURSE, *args], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode in ok, f"course {' '.join(args)} -> {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _nb(folder: str, assignment: str, name: str) -> dict:
    return json.loads((ROOT / folder / assignment / f"{name}.ipynb").read_text(encoding="utf-8"))


def _planted(mistake: str) -> dict:
    """ch03's solution with one mistake in attention_weights: softmax over the queries, or scores / d_k."""
    nb = _nb("solutions", A3, NB3)
    for cell in nb["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == "attention_weights":
            text = "".join(cell["source"])
            new = (text.replace("scores.softmax(dim=-1)", "scores.softmax(dim=-2)") if mistake == "axis"
                   else text.replace("/ math.sqrt(d_k)", "/ d_k"))
            assert new != text
            cell["source"] = new
    return nb


def _put(subs: Path, student: str, assignment: str, name: str, content) -> None:
    (subs / student / assignment).mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else json.dumps(content)
    (subs / student / assignment / f"{name}.ipynb").write_text(text, encoding="utf-8")


def _csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


def _class(subs: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_grading_attacks2 import _lookup_table_notebook

    honest2, honest3 = _nb("solutions", A2, NB2), _nb("solutions", A3, NB3)
    blank2, blank3 = _nb("exercises", A2, NB2), _nb("exercises", A3, NB3)
    _put(subs, "s01", A2, NB2, honest2); _put(subs, "s01", A3, NB3, honest3)  # noqa: E702
    _put(subs, "s02", A2, NB2, blank2); _put(subs, "s02", A3, NB3, blank3)  # noqa: E702
    _put(subs, "s03", A2, NB2, honest2); _put(subs, "s03", A3, NB3, _planted("scale"))  # noqa: E702
    _put(subs, "s04", A2, NB2, blank2); _put(subs, "s04", A3, NB3, _planted("axis"))  # noqa: E702
    (subs / "s05" / A2).mkdir(parents=True); _put(subs, "s05", A3, NB3, honest3)  # noqa: E702 - ch02 missing
    _put(subs, "s06", A2, NB2, "{not a notebook"); _put(subs, "s06", A3, NB3, blank3)  # noqa: E702
    _put(subs, "s07", A2, NB2, blank2); _put(subs, "s07", A3, NB3, _lookup_table_notebook(A3, NB3))  # noqa: E702
    _put(subs, "s08", A2, NB2, honest2); _put(subs, "s08", A3, NB3, _planted("axis"))  # noqa: E702
    _put(subs, "=HYPERLINK(1)", A2, NB2, honest2)  # a spreadsheet formula for a name; no ch03: missing
    _put(subs, "*", A2, NB2, blank2)


def _points(grades: Path) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for r in gb.read_rows(grades):
        if r["grade_id"]:
            out.setdefault(r["student"], {}).setdefault(r["assignment"], 0.0)
            out[r["student"]][r["assignment"]] += r["points"]
    return out


def test_release_grade_export_shard_merge_regrade_report(tmp_path):
    # 1. release: the exercises regenerate from solutions/ (into a folder of our own), with no solution left in them
    released = tmp_path / "released"
    _course("release", A2, A3, "--out", str(released))
    for a, n in ((A2, NB2), (A3, NB3)):
        text = (released / a / f"{n}.ipynb").read_text()
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text

    # 2. grade a class of 10
    subs, grades = tmp_path / "submissions", tmp_path / "grades"
    _class(subs)
    proc = _course("grade", str(subs), "--out", str(grades), "--jobs", "2", "--quiet", "--cell-timeout", "120")
    seed = json.loads((grades / "run.json").read_text())["seed"]
    assert f"seed {seed}" in proc.stdout
    got = _points(grades)
    expected = {"s01": {A2: 10, A3: 10}, "s02": {A2: 0, A3: 0}, "s03": {A2: 10, A3: 8}, "s04": {A2: 0, A3: 8},
                "s05": {A2: 0, A3: 10}, "s06": {A2: 0, A3: 0}, "s07": {A2: 0, A3: 0}, "s08": {A2: 10, A3: 8},
                "=HYPERLINK(1)": {A2: 10, A3: 0}, "*": {A2: 0, A3: 0}}
    assert got == expected, got
    statuses = {(r["student"], r["assignment"]): r["status"] for r in gb.read_rows(grades) if r["grade_id"]}
    assert statuses[("s05", A2)] == "missing" and statuses[("s06", A2)] == "unreadable"
    summary = {r[0]: r for r in _csv(grades / "summary.csv")[1:]}
    assert set(summary) == {"s01", "s02", "s03", "s04", "s05", "s06", "s07", "s08", "'=HYPERLINK(1)", "*"}
    assert "to review (not penalised)" in summary["s01"][-1]  # a verbatim copy of the solution, flagged

    # 3. export, with a roster that has one student who submitted nothing
    roster = tmp_path / "roster.csv"
    roster.write_text("student,name,sis_user_id\n" + "".join(f"{s},{s.upper()},ID{i}\n" for i, s in enumerate(
        ["s01", "s02", "s03", "s04", "s05", "s06", "s07", "s08", "=HYPERLINK(1)", "*", "zed"])))
    columns = tmp_path / "columns.csv"
    columns.write_text(f"assignment,column\n{A3},Homework 3 (4242)\n")
    _course("export", "--format", "canvas", "--grades", str(grades), "--roster", str(roster), "--columns", str(columns))
    canvas = _csv(grades / "export-canvas.csv")
    assert canvas[0][5:] == [A2, "Homework 3 (4242)"] and canvas[1][5:] == ["10", "10"]
    rows = {r[2]: r for r in canvas[2:]}
    assert rows["ID10"][5:] == ["0", "0"] and rows["ID3"][5:] == ["0", "8"]
    assert not any(cell.startswith(("=", "+", "-", "@")) for r in canvas for cell in r)

    # 4. shard and merge: the same verdicts as the single run (same seed)
    shards = []
    for k in (1, 2):
        out = tmp_path / f"shard{k}"
        _course("grade", str(subs), "--out", str(out), "--shard", f"{k}/2", "--jobs", "2", "--quiet",
                "--cell-timeout", "120", "--seed", str(seed))
        shards.append(str(out))
    _course("merge", *shards, "--out", str(tmp_path / "merged"))
    strip = lambda rows: sorted((r["student"], r["assignment"], r["grade_id"], r["status"], r["points"], r["message"])  # noqa: E731
                                for r in rows)
    assert strip(gb.read_rows(tmp_path / "merged")) == strip(gb.read_rows(grades))
    assert (tmp_path / "merged" / "summary.csv").read_text() == (grades / "summary.csv").read_text()

    # 5. regrade one student: s03 fixes the mistake; nobody else's rows change, the export follows
    before = {(r["student"], r["assignment"], r["grade_id"]): r for r in gb.read_rows(grades)}
    _put(subs, "s03", A3, NB3, _nb("solutions", A3, NB3))
    _course("grade", str(subs), "--student", "s03", "--out", str(grades), "--quiet", "--cell-timeout", "120")
    after = {(r["student"], r["assignment"], r["grade_id"]): r for r in gb.read_rows(grades)}
    assert set(after) == set(before)
    assert all(after[k] == before[k] for k in after if k[0] != "s03")
    assert _points(grades)["s03"] == {A2: 10, A3: 10}
    assert json.loads((grades / "run.json").read_text())["seed"] == seed
    assert {r[2]: r for r in _csv(grades / "export-canvas.csv")[2:]}["ID2"][5:] == ["10", "10"]

    # 6. the class report: the planted axis mistake twice, named by its hint; the lost parts counted
    proc = _course("report", str(grades))
    mistakes, parts = __import__("course_lib.grading.report", fromlist=["analyse"]).analyse(gb.read_rows(grades))
    axis = [m for m in mistakes if m.assignment == A3 and m.students >= {"s04", "s08"}]
    assert axis, [(m.check, m.name, m.students) for m in mistakes]
    assert axis[0].name.lower() in proc.stdout.lower()
    assert (grades / "report.html").is_file() and "Parts most often lost" in proc.stdout
    shutil.rmtree(subs)
