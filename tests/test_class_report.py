"""`course report GRADES` (issue #22, item 7): the class's named mistakes per check, and the parts most often lost.

Fast: gradebooks written here, with messages as the grader writes them (``<check>: <CheckFailed message>``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from course_lib.grading import report
from course_lib.grading.gradebook import Row, write_gradebook

ROOT = Path(__file__).resolve().parents[1]
COURSE = [sys.executable, "-m", "course_lib.cli"]
A3 = "ch03_scaled_dot_product"
AXIS = ("scaled_dot_product_attention: weights rows should sum to 1, got row sums {}\n"
        "Hint: each query needs a softmax over the keys (the last axis)")
SCALE = "scaled_dot_product_attention: values differ by a factor {}\nHint: divide the scores by sqrt(d_k), not d_k"


def _row(student, gid, status, message="", points=None):
    return Row(student, A3, "scaled_dot_product", gid, status, 2.0 if status == "passed" else (points or 0.0), 2.0, message, "t")


def _class() -> list[Row]:
    return [
        _row("ann", "test_sdpa", "failed", AXIS.format("0.31, 0.5")), _row("ann", "test_weights", "passed"),
        _row("bob", "test_sdpa", "failed", AXIS.format("0.8, 1.7")), _row("bob", "test_weights", "passed"),
        _row("cyd", "test_sdpa", "failed", SCALE.format("2.83")), _row("cyd", "test_weights", "passed"),
        _row("<b>eve</b>", "test_sdpa", "error", "NameError: name 'torch' is not defined"),
        _row("<b>eve</b>", "test_weights", "failed", "attention_weights: <script>alert(1)</script> got 3\nHint: <img src=x onerror=alert(1)>"),
        _row("dan", "test_sdpa", "passed"), _row("dan", "test_weights", "missing", "not submitted"),
    ]


def test_mistakes_are_counted_per_check_with_the_students_who_made_them():
    rows = [r.to_dict() for r in _class()]
    mistakes, parts = report.analyse(rows)
    top = mistakes[0]
    assert (top.check, top.name, top.students) == ("scaled_dot_product_attention",
                                                   "each query needs a softmax over the keys (the last axis)", {"ann", "bob"})
    names = {(m.check, m.name): m.students for m in mistakes}
    assert names[("scaled_dot_product_attention", "divide the scores by sqrt(d_k), not d_k")] == {"cyd"}
    assert names[("test_sdpa", "error: NameError: name 'torch' is not defined")] == {"<b>eve</b>"}
    assert not any("not submitted" in m.name for m in mistakes)  # missing is no mistake
    assert [(p.part, len(p.students), len(p.graded)) for p in parts] == [("test_sdpa", 4, 5), ("test_weights", 2, 5)]


def test_terminal_table_and_html_page_escaped(tmp_path):
    write_gradebook(tmp_path, _class(), set())
    proc = subprocess.run([*COURSE, "report", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Mistakes, per check" in out and "Parts most often lost" in out
    first = out.splitlines()[3]
    assert first.split()[0] == "2" and "softmax over the keys" in first
    assert "4/5" in out and "test_sdpa" in out
    page = (tmp_path / "report.html").read_text()
    assert "<script>" not in page and "<img" not in page and "<b>eve" not in page
    assert "&lt;img src=x" in page and "&lt;b&gt;eve&lt;/b&gt;" in page
    assert "default-src 'none'" in page


def test_report_of_a_missing_gradebook_says_what_was_expected(tmp_path):
    proc = subprocess.run([*COURSE, "report", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "expected a gradebook" in proc.stderr
