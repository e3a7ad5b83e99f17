"""What a learner sees: feedback pages in Chromium, and the messages of `course check` and the gradebook.

Planted submissions of ch03 (built from the released notebook, like tests/fixtures/ch03_submissions.py)
are graded for real, in the sandbox: a correct one, a syntax error, an import error, an exception
and a timeout, each in one answer cell, and a function that raises when the check calls it (the
source's test cells carry hidden tests). Then:

- every feedback page, served on 127.0.0.1 and opened in Chromium, shows formatted prose (no raw
  ``<h1``, ``<p>``, ``<thead`` in its visible text), typeset maths (MathJax output elements, from the
  copy staged beside the pages), a box per part, and makes no request outside 127.0.0.1;
- no page holds hidden-test source text, or the names of the hidden checks;
- the timed-out answer shows its code and "timed out after"; the syntax error its line and caret;
- each error is named for what it is, with its line, in the gradebook, the feedback and
  ``course check`` (not the NameError of the test cell that follows it);
- ``course check`` on the solutions warns, still scores it, and its ``--html`` page renders.

Fast tests at the end cover the sanitiser, the traceback reader and the solutions detector.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_lib.grading.grader import Limits, grade

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
import ch03_submissions as ch03

COURSE = [sys.executable, "-m", "course_lib.cli"]
CELL_TIMEOUT = 15  # generous for a loaded machine (every check runs in well under a second), short for the timeout
LIMITS = Limits(cell_timeout=CELL_TIMEOUT, total_timeout=150, memory_mb=2048)
PAGE = f"{ch03.ASSIGNMENT}/{ch03.NAME}.html"

SYNTAX_ERROR = '''
def attention_weights(q, k):
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k
    return scores.softmax(dim=-1)
'''
IMPORT_ERROR = '''
from attention_helpers import masked_softmax

def scaled_dot_product_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return masked_softmax(scores, mask) @ v, masked_softmax(scores, mask)
'''
EXCEPTION = '''
trial = torch.randn(3, 4) @ torch.randn(3, 4)  # a quick try first

def dot_product_variance(d_k, n_samples):
    q, k = torch.randn(n_samples, d_k), torch.randn(n_samples, d_k)
    return (q * k).sum(-1).var().item()
'''
RAISES_WHEN_CALLED = '''
def scaled_dot_product_attention(q, k, v, mask=None):
    scores = q @ k / math.sqrt(q.shape[-1])  # k not transposed: (..., T, D) @ (..., S, D)
    weights = scores.softmax(dim=-1)
    return weights @ v, weights
'''
TIMEOUT = '''
while True:  # waiting for something that never comes
    pass

def attention_entropy(weights):
    return -torch.special.xlogy(weights, weights).sum(dim=-1)
'''

PLANTED = {
    "correct": {},
    "syntax_error": {ch03.SA: SYNTAX_ERROR},
    "import_error": {ch03.SB: IMPORT_ERROR},
    "exception": {ch03.SC: EXCEPTION},
    "timeout": {ch03.SD: TIMEOUT},
    "raises_when_called": {ch03.SB: RAISES_WHEN_CALLED},
}

# what each planted error must be reported as: (student, graded cell, status, phrases the message contains, in order)
SYNTAX_LINE = "    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k"
EXPECTED_ERRORS = {
    "syntax_error": (ch03.A, "error", ["SyntaxError in the answer cell 'attention_weights', line 3: '(' was never closed",
                                        SYNTAX_LINE, "^"]),
    "import_error": (ch03.B, "error", [("ModuleNotFoundError in the answer cell 'scaled_dot_product_attention', line 1: "
                                         "No module named 'attention_helpers'"), "from attention_helpers import masked_softmax"]),
    "exception": (ch03.C, "error", ["RuntimeError in the answer cell 'dot_product_variance', line 1: mat1 and mat2 shapes cannot be multiplied",
                                     "trial = torch.randn(3, 4) @ torch.randn(3, 4)"]),
    "timeout": (ch03.D, "timeout", [f"The answer cell 'attention_entropy' timed out after {CELL_TIMEOUT} s"]),
    "raises_when_called": (ch03.B, "failed", ["scaled_dot_product_attention(q, k, v) raised RuntimeError",
                                              "Your code raised it in scaled_dot_product_attention, line 2",
                                              "scores = q @ k / math.sqrt(q.shape[-1])"]),
}


def _in_order(text: str, phrases: list[str]) -> bool:
    at = 0
    for phrase in phrases:
        at = text.find(phrase, at)
        if at < 0:
            return False
        at += len(phrase)
    return True


def hidden_test_texts() -> list[str]:
    """Source text of every hidden-test block of the ch03 source, line by line, and the names of the checks they call."""
    from course_lib import checks
    from course_lib.grading.notebooks import called_check_functions

    texts: list[str] = ["BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "__r.begin"]
    source = nbformat.read(ch03.SOURCE, as_version=4)
    for cell in source.cells:
        for block in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", cell.source, re.DOTALL):
            texts += [line.strip() for line in block.splitlines() if line.strip()]
            for fname in called_check_functions(block):
                texts += [fname, getattr(checks, fname).check_name]
    assert len(texts) > 6, "the ch03 source should have hidden tests"
    return texts


def _wait_for_mathjax(page) -> None:
    """Wait (30 s at most) for MathJax's first output; the tests then assert on what is there."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function("document.querySelectorAll('mjx-container').length > 0", timeout=30_000)
    except PlaywrightTimeout:
        pass


# =========================================================================== one grading run (slow)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    subs = tmp_path_factory.mktemp("planted")
    out = tmp_path_factory.mktemp("planted_grades")
    for student, answers in PLANTED.items():
        folder = subs / student / ch03.ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(ch03.answered(answers), folder / f"{ch03.NAME}.ipynb")
    run = grade(subs, out, LIMITS, jobs=2)
    assert run.ok, [r.message for r in run.rows if r.grader_failure]
    correct = [r for r in run.rows if r.student == "correct"]
    assert correct and all(r.status == "passed" for r in correct), [(r.grade_id, r.status, r.message) for r in correct]
    return run, out


@pytest.fixture(scope="module")
def pages(graded, browser_context):
    """Each student's page opened in Chromium (served on 127.0.0.1): (page, request log, visible text)."""
    from browser import open_page, serve

    _, out = graded
    url, server = serve(out / "feedback")
    opened = {}
    for student in PLANTED:
        page, log = open_page(browser_context, f"{url}{student}/{PAGE}")
        _wait_for_mathjax(page)
        page.wait_for_timeout(300)  # MathJax typesets every formula in one pass; let late requests show
        opened[student] = (page, log, page.inner_text("body"))
    yield opened
    for page, _, _ in opened.values():
        page.close()
    server.shutdown()
    server.server_close()


@pytest.mark.slow
@pytest.mark.parametrize("student", list(EXPECTED_ERRORS))
def test_gradebook_names_the_first_cause_with_its_line(graded, student):
    run, out = graded
    gid, status, phrases = EXPECTED_ERRORS[student]
    rows = {r.grade_id: r for r in run.rows if r.student == student}
    row = rows[gid]
    assert row.status == status and row.points == 0, (row.status, row.message)
    assert _in_order(row.message, phrases), row.message
    assert not row.message.startswith("NameError"), row.message  # the consequence, not the cause
    others = [r for g, r in rows.items() if g != gid]
    assert all(r.status == "passed" for r in others), [(r.grade_id, r.status, r.message) for r in others]
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as f:
        written = [r for r in csv.DictReader(f) if r["student"] == student and r["grade_id"] == gid]
    assert len(written) == 1 and written[0]["message"] == row.message and written[0]["status"] == status


@pytest.mark.slow
@pytest.mark.parametrize("student", list(PLANTED))
def test_feedback_page_renders_offline_in_chromium(pages, student):
    page, log, text = pages[student]
    for raw in ("<h1", "<p>", "<thead", "<table", "<strong>", "&lt;"):
        assert raw not in text, f"{student}'s page shows raw markup {raw!r}"
    assert not log.outside, f"requests outside 127.0.0.1: {log.outside}"
    assert not log.failed, log.failed
    assert not log.errors, log.errors
    assert page.locator("h1").count() >= 2 and page.locator("table thead").count() >= 2  # the header's table and the intro's
    assert page.locator("mjx-container svg").count() >= 10, "the maths is not typeset"
    assert all("/_assets/" in r for r in log.requests if r.endswith(".js")), log.requests
    assert "\\sqrt{d_k}" not in text, "TeX left untypeset"
    boxes = page.locator(".course-grade")
    assert boxes.count() == len(ch03.POINTS)
    for gid, points in ch03.POINTS.items():
        assert re.search(rf"{gid}: \d+ / {points} points", text), f"no grade box for {gid}"
    assert re.search(r"Score: \d+ / 10", text)


@pytest.mark.slow
def test_no_page_holds_hidden_test_source(graded):
    _, out = graded
    texts = hidden_test_texts()
    for student in PLANTED:
        html = (out / "feedback" / student / PAGE).read_text(encoding="utf-8")
        shown = [t for t in texts if t in html]
        assert not shown, f"{student}'s feedback shows hidden-test text {shown}"


@pytest.mark.slow
def test_timed_out_answer_shows_its_code_and_the_limit(pages):
    page, _, text = pages["timeout"]
    assert "waiting for something that never comes" in text, "the learner's code of the timed-out cell is not shown"
    assert f"timed out after {CELL_TIMEOUT} s" in text
    box = page.locator(".course-grade-timeout").inner_text()
    assert "test_attention_entropy" in box and f"timed out after {CELL_TIMEOUT} s" in box


@pytest.mark.slow
def test_syntax_error_feedback_shows_the_line_and_the_caret(pages):
    page, _, text = pages["syntax_error"]
    box = page.locator(".course-grade-error").inner_text()
    assert _in_order(box, EXPECTED_ERRORS["syntax_error"][2]), box
    lines = box.splitlines()
    at = next(i for i, line in enumerate(lines) if line.rstrip() == SYNTAX_LINE.rstrip())
    caret = lines[at + 1]
    assert caret.strip() == "^" and caret.index("^") == SYNTAX_LINE.index("(d_k"), (SYNTAX_LINE, caret)
    assert "SyntaxError" in text and "NameError" in box  # the consequence is named too, after the cause


@pytest.mark.slow
@pytest.mark.parametrize("student", ["import_error", "exception", "raises_when_called"])
def test_errors_in_answer_cells_are_named_in_the_feedback(pages, student):
    page, _, _ = pages[student]
    box = page.locator(f".course-grade-{EXPECTED_ERRORS[student][1]}").inner_text()
    assert _in_order(box, EXPECTED_ERRORS[student][2]), box


@pytest.mark.slow
def test_a_copied_feedback_folder_renders_from_file_urls(graded, browser_context, tmp_path):
    """The student's folder alone (page + _assets/), opened as a file: MathJax still typesets, nothing else is fetched."""
    _, out = graded
    shutil.copytree(out / "feedback" / "exception", tmp_path / "elsewhere")
    page = browser_context.new_page()
    requests: list[str] = []

    def route(r):
        requests.append(r.request.url)
        r.continue_() if r.request.url.startswith(("file:", "data:")) else r.abort()

    page.route("**/*", route)
    page.goto((tmp_path / "elsewhere" / PAGE).as_uri())
    _wait_for_mathjax(page)
    assert page.locator("mjx-container svg").count() >= 10, "the maths is not typeset"
    assert all(r.startswith(("file:", "data:")) for r in requests), requests
    page.close()


# =========================================================================== course check (slow)


def _check(notebook: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([*COURSE, "check", str(notebook), "--cell-timeout", str(CELL_TIMEOUT), *extra],
                          capture_output=True, text=True, cwd=ROOT, timeout=600, check=False)


@pytest.mark.slow
def test_course_check_names_each_error_kind(tmp_path):
    nb = tmp_path / ch03.ASSIGNMENT / f"{ch03.NAME}.ipynb"
    nb.parent.mkdir()
    nbformat.write(ch03.answered({ch03.SA: SYNTAX_ERROR, ch03.SB: IMPORT_ERROR, ch03.SC: EXCEPTION, ch03.SD: TIMEOUT}), nb)
    proc = _check(nb)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "total: 0/10" in out, out
    for student in ("syntax_error", "import_error", "exception", "timeout"):  # one per part, in this one notebook
        gid, status, phrases = EXPECTED_ERRORS[student]
        part = out[out.index(f"  {gid}"):]
        assert part.split("\n")[0].split()[-1] == status, part[:300]
        assert _in_order(part, [p.strip() for p in phrases]), f"{student}: {part[:600]}"
    # the caret sits under the unclosed parenthesis, as in the notebook (the check indents messages by 6)
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.rstrip().endswith("math.sqrt(d_k"))
    assert lines[at + 1].index("^") == lines[at].index("(d_k")
    assert "course's solutions" not in out


@pytest.mark.slow
def test_course_check_warns_on_solutions_scores_them_and_renders_html(tmp_path, browser_context):
    from browser import open_page, serve

    nb = tmp_path / ch03.ASSIGNMENT / f"{ch03.NAME}.ipynb"
    nb.parent.mkdir()
    shutil.copyfile(ch03.SOURCE, nb)
    html = tmp_path / "html" / "feedback.html"
    proc = _check(nb, "--html", str(html))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "WARNING" in out and "contains the course's solutions" in out and "BEGIN SOLUTION" in out, out
    assert out.index("WARNING") < out.index("total:")  # said before the scores, not buried after them
    assert "total: 10/10" in out
    url, server = serve(html.parent)
    try:
        page, log = open_page(browser_context, url + html.name)
        _wait_for_mathjax(page)
        assert page.locator("mjx-container svg").count() >= 10, "the maths is not typeset"
        text = page.inner_text("body")
        assert not [raw for raw in ("<h1", "<p>", "<thead") if raw in text]
        assert not log.outside and not log.failed and not log.errors, (log.outside, log.failed, log.errors)
        assert "Score: 10 / 10" in text
        page.close()
    finally:
        server.shutdown()
        server.server_close()
    page_html = html.read_text(encoding="utf-8")
    assert not [t for t in hidden_test_texts() if t in page_html]


# =========================================================================== the pieces (fast)


def test_sanitiser_keeps_markdown_markup_and_drops_scripts():
    from course_lib.grading.feedback import clean_html

    kept = clean_html('<h1 id="x">T</h1><p>a <strong>b</strong></p><table><thead><tr><th style="text-align: left">h</th>'
                      "</tr></thead><tbody><tr><td>1</td></tr></tbody></table><pre><code>x</code></pre>")
    for tag in ("<h1", "<p>", "<strong>", "<thead>", "<th", "<tbody>", "<pre>", "<code>"):
        assert tag in kept, (tag, kept)
    assert 'style="text-align: left;"' in kept or 'style="text-align: left"' in kept
    dropped = clean_html('<script>alert(1)</script><img src="https://example.org/x.png" onerror="alert(2)">'
                         '<a href="javascript:alert(3)">x</a><iframe src="https://example.org"></iframe>'
                         '<img src="data:image/png;base64,iVBO">')
    for bad in ("<script", "onerror", "javascript:", "<iframe", "example.org"):
        assert bad not in dropped, (bad, dropped)
    assert 'src="data:image/png;base64,iVBO"' in dropped


def test_page_loads_nothing_from_a_cdn_and_allows_only_its_own_scripts(tmp_path):
    from course_lib.grading.feedback import render_feedback_html

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T\n\n$x^2$"),
                                         nbformat.v4.new_code_cell("1", outputs=[nbformat.v4.new_output(
                                             "display_data", data={"text/html": "<script>alert(1)</script><b>b</b>",
                                                                   "application/javascript": "alert(2)"})])])
    page = render_feedback_html(nb, "../_assets/mathjax/tex-svg-full.js", "../_assets/mathjax-config.js")
    srcs = re.findall(r"<script[^>]*\bsrc=\"([^\"]+)\"", page)
    assert srcs == ["../_assets/mathjax-config.js", "../_assets/mathjax/tex-svg-full.js"], srcs
    uncommented = re.sub(r"<!--.*?-->|/\*.*?\*/", "", page, flags=re.DOTALL)  # the lab CSS credits its sources in comments
    assert not re.search(r"https?://(?!www\.w3\.org)", uncommented), re.findall(r"https?://[^\s\"')]+", uncommented)[:5]
    assert "alert(1)" not in page and "alert(2)" not in page
    assert "Content-Security-Policy" in page and "script-src 'self'" in page
    without = render_feedback_html(nb, None)
    assert "<script src" not in without


def test_error_details_read_ipython_tracebacks():
    from course_lib.grading.notebooks import clean_evalue, error_details

    syntax = {"ename": "SyntaxError", "evalue": "'(' was never closed (1234.py, line 3)", "traceback": [
        "\x1b[36m  Cell \x1b[39m\x1b[32mIn[2]\x1b[39m\x1b[32m, line 3\x1b[39m",
        "\x1b[31m    scores = math.sqrt(d_k\x1b[39m", "                      ^", "\x1b[31mSyntaxError\x1b[39m: '(' was never closed"]}
    assert error_details(syntax, 2) == {"line": 3, "code": "    scores = math.sqrt(d_k", "caret": "                      ^"}
    assert clean_evalue("SyntaxError", syntax["evalue"]) == "'(' was never closed"
    raised = {"ename": "ValueError", "evalue": "no", "traceback": [
        "\x1b[31m-----\x1b[39m", "Cell \x1b[32mIn[7]\x1b[39m, line 5", "      3 a = 1", "----> 5 f()", "",
        "Cell \x1b[32mIn[7]\x1b[39m, line 2, in f", "      1 def f():", "----> 2     raise ValueError('no')", "", "ValueError: no"]}
    assert error_details(raised, 7) == {"line": 2, "code": "    raise ValueError('no')"}
    assert error_details(raised, 8) == {}


def test_solutions_are_detected_and_exercises_are_not():
    from course_lib.grading.notebooks import load_source, solution_content

    source = load_source(ch03.ASSIGNMENT, ch03.NAME)
    assert solution_content(ch03.released(), source) == []
    assert solution_content(ch03.answered(ch03.WRONG), source) == []
    reasons = solution_content(nbformat.read(ch03.SOURCE, as_version=4), source)
    assert any("BEGIN SOLUTION" in r for r in reasons) and any("hidden tests" in r for r in reasons)
    copied = solution_content(ch03.answered(), source)  # the solutions without their markers
    assert copied and "identical" in copied[0] and ch03.SA in copied[0]


def test_learner_frame_is_read_from_a_failed_checks_short_traceback():
    from course_lib.grading.notebooks import learner_frame

    out = {"ename": "CheckFailed", "evalue": "your function raised RuntimeError: bad", "traceback": [
        "Your code raised an error here:",
        '  File "/tmp/ipykernel_12/3456.py", line 9, in scaled_dot_product_attention\n    return helper(q)',
        '  File "/tmp/ipykernel_12/3456.py", line 3, in helper\n    return q @ q',
        "RuntimeError: bad", "", "\x1b[0;31mCheckFailed\x1b[0m: your function raised RuntimeError: bad"]}
    assert learner_frame(out) == {"function": "helper", "line": 3, "code": "return q @ q"}
    assert learner_frame({"ename": "CheckFailed", "traceback": ["CheckFailed: wrong values"]}) == {}


def test_a_grader_failure_page_shows_no_score_no_path_and_never_addresses_the_instructor():
    from course_lib.grading.feedback import NOT_GRADED, feedback_notebook, render_feedback_html, verify_feedback_page
    from course_lib.grading.gradebook import Row
    from course_lib.grading.notebooks import load_source, prepare

    source = load_source(ch03.ASSIGNMENT, ch03.NAME)
    prepared = prepare(source, ch03.answered())
    why = "grader failure: the grader's worker ended without a readable result: /tmp/course-grading-x1/job-2/in/run.ipynb"
    rows = [Row("s", ch03.ASSIGNMENT, ch03.NAME, g.grade_id, "error", 0.0, g.points, why, grader_failure=True) for g in source.graded]
    page = render_feedback_html(feedback_notebook(prepared.run_nb, source, prepared, rows), None)
    assert NOT_GRADED in page and "Score:" not in page and " points " not in page
    assert "/tmp/" not in page and "course-grading" not in page
    assert "npm" not in page and "instructor has been told" in page  # maths left as TeX, the student is told nothing to run
    assert "shown as TeX" in page


def test_verify_feedback_page_checks_the_grade_against_the_gradebook(tmp_path):
    from course_lib.grading.feedback import feedback_notebook, write_feedback_html, verify_feedback_page
    from course_lib.grading.gradebook import Row
    from course_lib.grading.notebooks import load_source, prepare

    source = load_source(ch03.ASSIGNMENT, ch03.NAME)
    prepared = prepare(source, ch03.answered())
    rows = [Row("s", ch03.ASSIGNMENT, ch03.NAME, g.grade_id, "passed", g.points, g.points) for g in source.graded]
    path = tmp_path / "s" / ch03.ASSIGNMENT / f"{ch03.NAME}.html"
    write_feedback_html(feedback_notebook(prepared.run_nb, source, prepared, rows), path)
    others = [Row("t", ch03.ASSIGNMENT, ch03.NAME, g.grade_id, "failed", 0, g.points) for g in source.graded]
    assert verify_feedback_page(path, [r.to_dict() for r in others + rows]) == (True, "shown: 'Score: 10 / 10', gradebook: 'Score: 10 / 10'")
    rows[0].points = 0
    assert verify_feedback_page(path, rows)[0] is False


@pytest.mark.parametrize("pattern", ["<div>", "<span><b><i>", "<p><b class=x></p>", "<table><div>"])
def test_a_360_kb_cell_of_nested_tags_renders_in_seconds(pattern):
    """It took 213 s (quadratic, in bleach/html5lib); the sanitiser is now one linear pass, depth capped."""
    import time

    from course_lib.grading.feedback import render_feedback_html

    text = (pattern * (360_000 // len(pattern) + 1))[:360_000]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text),
                                         nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output(
                                             "display_data", data={"text/html": text})])])
    start = time.monotonic()
    page = render_feedback_html(nb, None)
    assert time.monotonic() - start < 10, "rendering is no longer linear"
    assert "course-student" in page
