"""Per-student feedback: the graded notebook, hidden tests removed, a grade under each test cell.

The notebook shown is the one that ran: the learner's answers and the source's
locked cells (their text taken from the notebook the grader built, never from
what came back from the sandbox), with the outputs that came back. Before rendering:

- the grader's own cells and prefix lines are removed, and the source of every
  hidden-test block is cleared (nbgrader's ClearHiddenTests);
- a test cell that runs hidden tests shows **no output at all**: only the grader's
  verdict, in the box under it. Any other output that quotes a hidden check's
  name or a line of hidden-test source has that text replaced by ``[hidden]``;
- tracebacks of graded cells are cut to their last line (a traceback quotes the
  lines around the failing call), and so is any other traceback that passes
  through a graded cell.

Every part gets a box under its test cell: points, status and the grader's
message (for a syntax error: the line and its caret; for a timeout: "timed out
after N s"), the same words as the gradebook, with absolute paths shortened.

**What a student cannot do to their page.** Everything a submission controls
(markdown, outputs, code) goes through renderers written here, never through a
template that writes it raw:

- outputs by an allow-list of MIME types (``_render_data``): text/plain, streams and
  tracebacks escaped; image/png, image/jpeg and image/svg+xml as ``data:`` images
  whose width and height are whole numbers; text/html through the sanitiser;
  text/markdown rendered by mistune, then sanitised; text/latex escaped (MathJax
  typesets it). Anything else (mermaid, JavaScript, widgets) is shown as escaped text;
- the sanitiser (``clean_html``) is linear in its input: one pass of the standard
  library's tokenizer, an allow-list of tags and attributes, at most
  ``MAX_DEPTH`` open elements (deeper tags are dropped, their text kept), every
  element it opens closed by itself, so the markup cannot close or reach out of
  its container. No ``<meta>``, ``<form>``, ``<base>``, ``<style>``, ``<iframe>``;
  no style attribute except a table cell's ``text-align``; images only as
  ``data:`` URLs with numeric sizes; classes only of the kind Markdown's code
  highlighting produces (never the page's own ``course-`` classes);
- the Content-Security-Policy allows nothing by default: scripts, styles,
  images and fonts from the page itself (and ``data:`` images), no form target,
  no ``<base>``, no frames, no connections (and ``navigate-to 'none'`` where a
  browser supports it);
- the grade is drawn by the page, above the notebook, in a sticky header; the
  notebook is a separate box (``contain: paint; overflow: hidden``, its own
  stacking context) that nothing inside can draw outside of, nor over the header;
- the page carries a digest of its grade (``<meta name="course-feedback-digest">``:
  SHA-256 over student, assignment, notebook, points, maximum and the graded
  rows) that ``verify_feedback_page(path, rows)`` checks against the gradebook.

A notebook the grader failed on gets no score: the page says "not graded" and
that the instructor has been told. Nothing on a page addresses the instructor.

Rendering: each cell's HTML is made by ``feedback_notebook`` (in the grader's
worker thread, no lock held); the page is nbconvert's ``lab`` HTML frame (its CSS)
around those pieces (``course_feedback.html.j2``), with MathJax 3 from the course's
own ``node_modules/mathjax``, staged in ``feedback/<student>/_assets/`` and loaded by
a relative URL (without it the maths stays TeX, and the page says only that).
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import html
import json
import os
import re
import secrets
import shutil
import threading
from html.parser import HTMLParser
from pathlib import Path

import nbformat

from course_lib.files import replace_atomically
from course_lib.grading.notebooks import (
    GRADER_TAG,
    Prepared,
    SourceNotebook,
    called_check_functions,
    strip_for_feedback,
    traceback_lines,
)

_ICON = {"passed": "\u2714", "failed": "\u2718", "error": "\u2718", "timeout": "\u2718", "tampered": "\u26a0", "not_own_work": "\u26a0",
         "missing": "\u2718", "unreadable": "\u2718"}

#: the line older grading kernels printed per recorded check (it would name hidden checks)
_RECORDED = re.compile(r"^\u2022 \S+: outputs recorded; the grader verifies them\n?", re.MULTILINE)
_CELL_IN = re.compile(r"Cell In\[(\d+)\]")

#: what a student reads when the grader failed on their notebook (no score: it was not graded)
NOT_GRADED = "not graded: the grader could not grade this notebook; your instructor has been told"
#: what a test cell that runs hidden tests shows instead of its output
HIDDEN_OUTPUT_NOTE = "The output of this test cell is not shown: it runs hidden tests. Its grade is in the box below."
#: what replaces a hidden check's name or a line of hidden-test source quoted in any output
HIDDEN = "[hidden]"

#: bounds on what is rendered from a submission (each piece is then linear to render)
MAX_DEPTH = 64  # open elements in one piece of HTML; deeper tags are dropped, their text kept
MAX_HTML_CHARS = 1_000_000  # one piece of markdown or HTML; beyond it, shown as escaped text
MAX_TEXT_CHARS = 400_000  # one piece of text shown escaped
MAX_HIGHLIGHT_CHARS = 100_000  # a code cell beyond this is shown without colours
MAX_IMAGE_SIDE = 4000  # pixels; a width or height beyond it (or not a whole number) is dropped

#: where the staged assets go, beside the pages that use them
ASSETS_DIR = "_assets"
#: the MathJax component the pages load: TeX in, SVG out, every TeX extension included (nothing else to fetch)
MATHJAX_FILE = "tex-svg-full.js"
#: without html (\\class, \\style, \\cssId, \\href), bbox (CSS in \\bbox[...]), require and action, TeX cannot style the page
MATHJAX_CONFIG = """/* written by course_lib/grading/feedback.py: MathJax 3 for the feedback pages */
window.MathJax = {
  tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']],
        processEscapes: true, processEnvironments: true, packages: {'[-]': ['html', 'bbox', 'require', 'action']}},
  options: {ignoreHtmlClass: 'tex2jax_ignore', enableMenu: false},
  svg: {fontCache: 'global'}
};
"""
#: the page's Content-Security-Policy (a <meta>, first in <head>)
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
       "connect-src 'none'; form-action 'none'; base-uri 'none'; frame-src 'none'; object-src 'none'; manifest-src 'none'; "
       "worker-src 'none'; media-src 'none'")

#: marks the cell HTML made here, in this process (a submission cannot forge it)
_TRUST = secrets.token_hex(16)


# --------------------------------------------------------------------------- what students are shown

_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])(?:/[\w.@+~-]+){2,}/?")


def shorten_paths(text: str) -> str:
    """``text`` with every absolute path cut to its last part (``/tmp/course-grading-x/job/in/run.ipynb`` -> ``.../run.ipynb``)."""
    return _ABSOLUTE_PATH.sub(lambda m: ".../" + m.group(0).rstrip("/").rsplit("/", 1)[-1], text)


def _not_graded(row) -> bool:
    """A row of a notebook the grader failed on (the flag, or the gradebook's "grader failure" message)."""
    return bool(getattr(row, "grader_failure", False)) or str(getattr(row, "message", "") or "").startswith("grader failure")


def _student_message(row) -> str:
    if _not_graded(row):
        return NOT_GRADED
    return shorten_paths(str(row.message or ""))


def _pre(text: str) -> str:
    return html.escape(text)


def _grade_box(row) -> str:
    if _not_graded(row):
        return (f'<div class="course-grade course-grade-notgraded tex2jax_ignore"><p class="course-grade-title">'
                f'<strong>{html.escape(row.grade_id or "this notebook")}</strong>: {html.escape(NOT_GRADED)}</p></div>')
    status = html.escape(row.status)
    title = (f'<p class="course-grade-title">{_ICON.get(row.status, "")} <strong>{html.escape(row.grade_id)}</strong>: '
             f'{row.points:g} / {row.max_points:g} points <span class="course-status">{status}</span></p>')
    message = _student_message(row)
    message = f'<pre class="course-grade-message">{_pre(message)}</pre>' if message else ""
    return f'<div class="course-grade course-grade-{status} tex2jax_ignore">{title}{message}</div>'


def _rows_payload(rows: list) -> list[list]:
    return [[r.grade_id, r.status, float(r.points), float(r.max_points), str(r.message or "")] for r in sorted(rows, key=lambda r: r.grade_id)]


def grade_digest(student: str, assignment: str, notebook: str, rows: list) -> str:
    """SHA-256 over who, what, the points, the maximum and the graded rows: what a page's grade must match."""
    payload = {"student": student, "assignment": assignment, "notebook": notebook,
               "points": float(sum(r.points for r in rows)), "max_points": float(sum(r.max_points for r in rows)),
               "rows": _rows_payload(rows)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=True).encode()).hexdigest()


def _header(title: str, rows: list, notes: list[str], student: str, assignment: str, notebook: str) -> str:
    """The page's own header (outside the notebook's box): title, grade, summary table, notes."""
    failed = any(_not_graded(r) for r in rows)
    got = sum(r.points for r in rows)
    total = sum(r.max_points for r in rows)
    if failed:
        score = f'<p class="course-score course-score-notgraded">{html.escape(NOT_GRADED[0].upper() + NOT_GRADED[1:])}</p>'
        parts = ""
    else:
        score = f'<p class="course-score">Score: <strong>{got:g} / {total:g}</strong></p>'
        parts = "".join(
            f'<tr class="course-part course-part-{html.escape(r.status)}"><td><code>{html.escape(r.grade_id)}</code></td>'
            f"<td>{r.points:g} / {r.max_points:g}</td><td>{_ICON.get(r.status, '')} {html.escape(r.status)}</td>"
            f"<td>{html.escape(_student_message(r).splitlines()[0].rstrip(':') if r.message else '')}</td></tr>"
            for r in rows)
    table = (f'<table class="course-summary-table"><thead><tr><th>part</th><th>points</th><th>status</th><th>message</th></tr></thead>'
             f"<tbody>{parts}</tbody></table>") if parts else ""
    digest = grade_digest(student, assignment, notebook, rows)
    return (
        f'<header class="course-header tex2jax_ignore" data-course-student="{html.escape(student)}" '
        f'data-course-assignment="{html.escape(assignment)}" data-course-notebook="{html.escape(notebook)}" '
        f'data-course-points="{"" if failed else f"{got:g}"}" data-course-max="{total:g}" data-course-digest="{digest}">'
        f'<h1 class="course-title">{html.escape(title)}</h1>{score}</header>'
        f'<section class="course-summary tex2jax_ignore">{table}'
        + "".join(f"<p>{html.escape(shorten_paths(n))}</p>" for n in notes)
        + "<p>Hidden tests are not shown; their results are included in each part's grade. "
        "The box under each test cell gives its points, status and the grader's message.</p></section>"
    )


def _cut_traceback(out) -> None:
    out["traceback"] = [f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"]


def hidden_texts(source: SourceNotebook) -> list[str]:
    """What no output may quote: each hidden-test line, the check functions the hidden tests call and their check names."""
    import course_lib.checks as checks

    texts = {"BEGIN HIDDEN TESTS", "END HIDDEN TESTS"}
    for cell in source.nb.cells:
        for block in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", cell.get("source", ""), re.DOTALL):
            texts.update(line.strip() for line in block.splitlines() if len(line.strip()) >= 6)
            try:
                names = called_check_functions(block)
            except Exception:  # noqa: BLE001 - the source's own test cells parse (load_source checked)
                names = []
            for fname in names:
                texts.add(fname)
                if (name := getattr(getattr(checks, fname, None), "check_name", None)):
                    texts.add(name)
    return sorted(texts, key=len, reverse=True)


def _scrub(value, texts: list[str]):
    if isinstance(value, str):
        for t in texts:
            if t in value:
                value = value.replace(t, HIDDEN)
        return value
    if isinstance(value, list):
        return [_scrub(v, texts) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v, texts) for k, v in value.items()}
    return value


def _runs_hidden_tests(source: SourceNotebook, gid: str) -> bool:
    return any(c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == gid and "BEGIN HIDDEN TESTS" in c.get("source", "")
               for c in source.nb.cells)


def feedback_notebook(executed: nbformat.NotebookNode, source: SourceNotebook, prepared: Prepared, rows: list) -> nbformat.NotebookNode:
    """The page as a notebook of ready-made HTML cells (made here, in the worker, with no lock held).

    Cell text comes from ``prepared.run_nb`` (what the grader built); outputs from ``executed``
    (what came back from the sandbox, trusted for nothing), when it has the same cells.
    """
    by_id = {r.grade_id: r for r in rows}
    index_to_id = {i: gid for gid, i in prepared.run_index.items()}
    built = prepared.run_nb.cells
    ran = executed.cells if len(executed.cells) == len(built) else [{} for _ in built]
    graded_counts = {str(c.get("execution_count")) for i, c in enumerate(ran)
                     if i in index_to_id and c.get("execution_count") is not None}
    texts = hidden_texts(source) if source.hidden_tests else []
    failed = any(_not_graded(r) for r in rows)
    cells = []
    for i, cell in enumerate(built):
        if cell.get("metadata", {}).get(GRADER_TAG):
            continue
        gid = index_to_id.get(i)
        shown = nbformat.v4.new_code_cell() if cell.cell_type == "code" else nbformat.v4.new_markdown_cell()
        shown.cell_type = cell.cell_type
        shown.source = strip_for_feedback(cell.source) if gid is not None else cell.source
        outputs = copy.deepcopy(ran[i].get("outputs", [])) if cell.cell_type == "code" else []
        outputs = outputs if isinstance(outputs, list) else []
        outputs = [o for o in outputs if isinstance(o, dict)]
        hidden_cell = gid is not None and source.hidden_tests and _runs_hidden_tests(source, gid)
        if hidden_cell:
            outputs = [nbformat.v4.new_output("stream", name="stdout", text=HIDDEN_OUTPUT_NOTE + "\n")]
        else:
            for out in outputs:
                if out.get("output_type") == "error":
                    cells_named = set(_CELL_IN.findall("\n".join(traceback_lines(out))))
                    if gid is not None or cells_named & graded_counts:  # it could quote a graded cell's lines
                        _cut_traceback(out)
                elif gid is not None and out.get("output_type") == "stream":
                    out["text"] = _RECORDED.sub("", "".join(out.get("text", "")) if isinstance(out.get("text"), list) else str(out.get("text", "")))
            outputs = [_scrub(o, texts) for o in outputs if not (o.get("output_type") == "stream" and not o.get("text"))]
        count = ran[i].get("execution_count") if isinstance(ran[i].get("execution_count"), int) else None
        cells.append(_trusted_cell(_render_cell(shown.cell_type, shown.source, outputs, count)))
        if gid is not None and gid in by_id:
            cells.append(_trusted_cell(_grade_box(by_id[gid])))
    student = rows[0].student if rows else ""
    title = f"Feedback: {source.assignment} / {source.name}"
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["title"] = title
    nb.metadata["course_feedback"] = {"trust": _TRUST, "not_graded": failed, "header": _header(
        title, rows, list(prepared.notes), student, source.assignment, source.name)}
    for j, cell in enumerate(nb.cells):
        cell["id"] = f"feedback-{j}"
    return nb


def _trusted_cell(fragment: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_raw_cell("", metadata={"course_html": fragment, "course_trust": _TRUST})


# --------------------------------------------------------------------------- sanitising

_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "col", "colgroup", "dd", "del", "details", "div", "dl", "dt",
    "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p",
    "pre", "q", "s", "samp", "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead",
    "tr", "u", "ul", "var",
}
_VOID = {"br", "hr", "img", "col", "wbr"}
#: elements whose content is dropped with them (not shown as text)
_DROP_CONTENT = {"script", "style", "template", "title", "textarea", "iframe", "noscript", "noembed", "noframes", "xmp",
                 "object", "svg", "math", "select", "head", "frameset", "plaintext"}
#: the classes Markdown's code highlighting (pygments) and headings' anchors produce; nothing of the page's own
_CLASS = re.compile(r"(?:highlight|hll|anchor-link|[a-z]{1,2}[0-9]?|language-[a-z0-9_+-]{1,20})")
_ID = re.compile(r"[A-Za-z][\w.:-]{0,80}")
_DATA_IMAGE = re.compile(r"data:image/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/=]+")
_ALIGN = re.compile(r"\s*text-align\s*:\s*(left|right|center|justify)\s*;?\s*", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x20\x7f]+")


def _size(value) -> int | None:
    """A width or height as a whole number of pixels (1..MAX_IMAGE_SIDE), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and value == value and 1 <= value <= MAX_IMAGE_SIDE:
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\d{1,4}(?:px)?", value.strip()) and 1 <= int(value.strip().removesuffix("px")) <= MAX_IMAGE_SIDE:
        return int(value.strip().removesuffix("px"))
    return None


def _attributes(tag: str, attrs: list[tuple[str, str | None]]) -> str:
    kept: dict[str, str] = {}
    for name, value in attrs:
        name, value = name.lower(), value or ""
        if name in kept:
            continue
        if name == "title":
            kept[name] = value[:500]
        elif name == "class":
            classes = [c for c in value.split() if _CLASS.fullmatch(c)]
            if classes:
                kept[name] = " ".join(classes[:8])
        elif name == "id":
            if _ID.fullmatch(value) and not value.lower().startswith("course"):
                kept[name] = value
        elif tag == "a" and name == "href":
            url = _CONTROL.sub("", value)
            if re.match(r"(https?:|mailto:|#)", url, re.IGNORECASE):
                kept[name] = url
        elif tag == "img" and name == "src":
            url = _CONTROL.sub("", value)
            if _DATA_IMAGE.fullmatch(url):
                kept[name] = url
        elif tag == "img" and name == "alt":
            kept[name] = value[:500]
        elif tag == "img" and name in ("width", "height"):
            if (n := _size(value)) is not None:
                kept[name] = str(n)
        elif tag in ("td", "th") and name == "align":
            if value.lower() in ("left", "right", "center", "justify"):
                kept[name] = value.lower()
        elif tag in ("td", "th") and name in ("colspan", "rowspan"):
            if re.fullmatch(r"\d{1,2}", value):
                kept[name] = value
        elif tag in ("td", "th") and name == "style":
            if (m := _ALIGN.fullmatch(value)):
                kept[name] = f"text-align: {m.group(1).lower()};"
        elif tag == "ol" and name == "start":
            if re.fullmatch(r"-?\d{1,6}", value):
                kept[name] = value
    if tag == "img" and "src" not in kept:
        return None  # an image from anywhere but the page itself is dropped
    if tag == "a" and "href" in kept:
        kept["rel"] = "noopener noreferrer nofollow"
    return "".join(f' {k}="{html.escape(v, quote=True)}"' for k, v in kept.items())


class _Sanitiser(HTMLParser):
    """One pass over the tokens: allowed tags (at most MAX_DEPTH open), allowed attributes, text escaped."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.stack: list[str] = []
        self.dropping: list[str] = []  # open elements whose content is dropped

    def handle_starttag(self, tag, attrs):
        if self.dropping:
            if tag in _DROP_CONTENT:
                self.dropping.append(tag)
            return
        if tag in _DROP_CONTENT:
            self.dropping.append(tag)
            return
        if tag not in _TAGS:
            return
        if tag not in _VOID and len(self.stack) >= MAX_DEPTH:
            return
        attributes = _attributes(tag, attrs)
        if attributes is None:
            return
        self.out.append(f"<{tag}{attributes}>")
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if self.dropping:
            if tag == self.dropping[-1]:
                self.dropping.pop()
            return
        if tag in _VOID or tag not in self.stack:
            return
        while self.stack:
            top = self.stack.pop()
            self.out.append(f"</{top}>")
            if top == tag:
                break

    def handle_data(self, data):
        if not self.dropping:
            self.out.append(html.escape(data, quote=False))

    def finish(self) -> str:
        self.close()
        while self.stack:
            self.out.append(f"</{self.stack.pop()}>")
        return "".join(self.out)


def clean_html(element) -> str:
    """Sanitise HTML from Markdown cells and outputs (linear in its size; see the module docstring)."""
    text = element.decode("utf-8", "replace") if isinstance(element, bytes) else str(element)
    if len(text) > MAX_HTML_CHARS:
        return _text_block(text, "the HTML")
    parser = _Sanitiser()
    parser.feed(text)
    return parser.finish()


def _text_block(text: str, what: str = "the text") -> str:
    note = ""
    if len(text) > MAX_TEXT_CHARS:
        note = f"\n[{what} goes on for {len(text) - MAX_TEXT_CHARS} more characters, not shown]"
        text = text[:MAX_TEXT_CHARS]
    return f"<pre>{html.escape(text)}{html.escape(note)}</pre>"


# --------------------------------------------------------------------------- rendering the pieces


def _markdown(text: str) -> str:
    if len(text) > MAX_HTML_CHARS:
        return _text_block(text, "the Markdown")
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    return clean_html(markdown2html_mistune(text))


def _ansi(text: str) -> str:
    from nbconvert.filters.ansi import ansi2html

    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS] + f"\n[{len(text) - MAX_TEXT_CHARS} more characters not shown]"
    return ansi2html(text)  # escapes the text; adds only colour spans


def _joined(value) -> str:
    return "".join(str(v) for v in value) if isinstance(value, list) else str(value if value is not None else "")


def _image(mime: str, data, metadata) -> str | None:
    payload = re.sub(r"\s+", "", _joined(data))
    if mime == "image/svg+xml":
        payload = base64.b64encode(_joined(data).encode("utf-8")).decode("ascii")
    elif not re.fullmatch(r"[A-Za-z0-9+/=]+", payload):
        return None
    try:
        base64.b64decode(payload[:4096 - 4096 % 4] or "", validate=True)
    except (binascii.Error, ValueError):
        return None
    meta = metadata.get(mime, metadata) if isinstance(metadata, dict) else {}
    meta = meta if isinstance(meta, dict) else {}
    size = "".join(f' {k}="{n}"' for k in ("width", "height") if (n := _size(meta.get(k))) is not None)
    return f'<img src="data:{mime};base64,{payload}"{size} alt="">'


#: the MIME types shown, in order of preference
_MIME_ORDER = ("text/html", "image/png", "image/jpeg", "image/svg+xml", "text/markdown", "text/latex", "text/plain")


def _render_data(data: dict, metadata) -> str:
    data = data if isinstance(data, dict) else {}
    for mime in _MIME_ORDER:
        if mime not in data:
            continue
        value = data[mime]
        if mime == "text/html":
            return f'<div class="jp-RenderedHTMLCommon jp-RenderedHTML jp-OutputArea-output" data-mime-type="text/html">{clean_html(_joined(value))}</div>'
        if mime.startswith("image/"):
            img = _image(mime, value, metadata)
            if img is None:
                continue
            return f'<div class="jp-RenderedImage jp-OutputArea-output">{img}</div>'
        if mime == "text/markdown":
            return f'<div class="jp-RenderedHTMLCommon jp-RenderedMarkdown jp-OutputArea-output" data-mime-type="text/markdown">{_markdown(_joined(value))}</div>'
        if mime == "text/latex":
            return f'<div class="jp-RenderedLatex jp-OutputArea-output" data-mime-type="text/latex">{html.escape(_joined(value)[:MAX_TEXT_CHARS])}</div>'
        return f'<div class="jp-RenderedText jp-OutputArea-output" data-mime-type="text/plain"><pre>{_ansi(_joined(value))}</pre></div>'
    for mime, value in data.items():  # none of the allowed types: the first one, as text
        return (f'<div class="jp-RenderedText jp-OutputArea-output" data-mime-type="text/plain"><pre>'
                f'{html.escape(f"[{mime} output, shown as text]")}\n{html.escape(_joined(value)[:MAX_TEXT_CHARS])}</pre></div>')
    return ""


def _render_output(out: dict, count: int | None) -> str:
    kind = out.get("output_type")
    if kind == "stream":
        mime = "application/vnd.jupyter.stderr" if out.get("name") == "stderr" else "text/plain"
        inner = f'<div class="jp-RenderedText jp-OutputArea-output" data-mime-type="{mime}"><pre>{_ansi(_joined(out.get("text", "")))}</pre></div>'
    elif kind == "error":
        tb = out.get("traceback") if isinstance(out.get("traceback"), list) else []
        text = "\n".join(str(line) for line in tb) or f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"
        inner = f'<div class="jp-RenderedText jp-OutputArea-output" data-mime-type="application/vnd.jupyter.stderr"><pre>{_ansi(text)}</pre></div>'
    elif kind in ("display_data", "execute_result"):
        inner = _render_data(out.get("data", {}), out.get("metadata", {}))
    else:
        return ""
    prompt = f"Out[{count}]:" if kind == "execute_result" and count is not None else ""
    extra = " jp-OutputArea-executeResult" if kind == "execute_result" else ""
    return f'<div class="jp-OutputArea-child{extra}"><div class="jp-OutputPrompt jp-OutputArea-prompt">{prompt}</div>{inner}</div>'


def _highlight(code: str) -> str:
    if len(code) > MAX_HIGHLIGHT_CHARS:
        return f'<div class="highlight hl-ipython3">{_text_block(code, "the code")}</div>'
    from nbconvert.filters.highlight import Highlight2HTML

    return Highlight2HTML(pygments_lexer="ipython3")(code)  # pygments escapes every token


def _render_cell(cell_type: str, source: str, outputs: list, count: int | None) -> str:
    if cell_type == "markdown":
        return ('<div class="jp-Cell jp-MarkdownCell jp-Notebook-cell"><div class="jp-Cell-inputWrapper"><div class="jp-InputArea jp-Cell-inputArea">'
                '<div class="jp-InputPrompt jp-InputArea-prompt"></div>'
                f'<div class="jp-RenderedHTMLCommon jp-RenderedMarkdown jp-MarkdownOutput" data-mime-type="text/markdown">{_markdown(source)}</div>'
                "</div></div></div>")
    if cell_type != "code":
        return ""
    prompt = f"In&nbsp;[{count}]:" if count is not None else "In&nbsp;[&nbsp;]:"
    body = "".join(_render_output(o, count) for o in outputs)
    no_output = "" if body else " jp-mod-noOutputs"
    out_html = (f'<div class="jp-Cell-outputWrapper"><div class="jp-OutputArea jp-Cell-outputArea">{body}</div></div>' if body else "")
    return (f'<div class="jp-Cell jp-CodeCell jp-Notebook-cell{no_output}"><div class="jp-Cell-inputWrapper">'
            f'<div class="jp-InputArea jp-Cell-inputArea"><div class="jp-InputPrompt jp-InputArea-prompt">{prompt}</div>'
            f'<div class="jp-CodeMirrorEditor jp-Editor jp-InputArea-editor" data-type="inline"><div class="cm-editor cm-s-jupyter">'
            f"{_highlight(source)}</div></div></div></div>{out_html}</div>")


def _prerendered(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` as trusted HTML cells: as made by feedback_notebook, or (any other notebook) rendered here now."""
    cells = []
    for cell in nb.cells:
        meta = cell.get("metadata", {})
        if cell.get("cell_type") == "raw" and meta.get("course_trust") == _TRUST and isinstance(meta.get("course_html"), str):
            cells.append(cell)
            continue
        source = _joined(cell.get("source", ""))
        outputs = [o for o in cell.get("outputs", []) if isinstance(o, dict)] if cell.get("cell_type") == "code" else []
        count = cell.get("execution_count") if isinstance(cell.get("execution_count"), int) else None
        cells.append(_trusted_cell(_render_cell(cell.get("cell_type", ""), source, outputs, count)))
    out = nbformat.v4.new_notebook(cells=cells)
    fb = nb.metadata.get("course_feedback")
    if isinstance(fb, dict) and fb.get("trust") == _TRUST:
        out.metadata["course_feedback"] = fb
    out.metadata["title"] = str(nb.metadata.get("title", "Feedback"))
    for j, cell in enumerate(out.cells):
        cell["id"] = f"feedback-{j}"
    return out


# --------------------------------------------------------------------------- the page


_CSS = """
<style type="text/css">
body.jp-Notebook { max-width: 60rem; margin: 0 auto; padding: 0 0.5rem; overflow-wrap: anywhere; }
.course-header { position: sticky; top: 0; z-index: 2147483647; background: #fff; border-bottom: 0.2rem solid #1565c0;
  padding: 0.3rem 0.6rem; display: flex; flex-wrap: wrap; align-items: baseline; column-gap: 1.5rem; }
.course-header .course-title { font-size: 1.3rem; margin: 0.2rem 0; }
.course-score { font-size: 1.2rem; margin: 0.2rem 0; padding: 0.1rem 0.5rem; background: #e3f2fd; border-radius: 0.2rem; }
.course-score-notgraded { background: #fff3e0; }
.course-summary { padding: 0.3rem 0.6rem; }
.course-summary-table { border-collapse: collapse; width: 100%; table-layout: auto; }
.course-summary-table td, .course-summary-table th { text-align: left; vertical-align: top; padding: 0.2rem 0.6rem; }
@media (max-width: 40rem) {
  .course-summary-table, .course-summary-table tbody, .course-summary-table tr, .course-summary-table td { display: block; width: auto; }
  .course-summary-table thead { display: none; }
  .course-summary-table tr { border-top: 1px solid #ddd; padding: 0.2rem 0; }
  .course-summary-table td { padding: 0 0.3rem; }
  .jp-InputPrompt, .jp-OutputPrompt { display: none; }
}
.course-student { position: relative; z-index: 0; isolation: isolate; contain: paint; overflow: hidden; max-width: 100%; }
.course-student .jp-Cell, .course-student .jp-OutputArea-output, .course-student .jp-InputArea-editor { max-width: 100%; overflow-x: auto; }
.course-student img { max-width: 100%; height: auto; }
.course-grade { border-left: 0.35rem solid #777; background: #f6f6f6; margin: 0.3rem 0 1.2rem 0; padding: 0.4rem 0.8rem; }
.course-grade-title { margin: 0.2rem 0; font-size: 1rem; }
.course-grade-message { white-space: pre-wrap; background: transparent; margin: 0.3rem 0; font-size: 0.85rem; }
.course-status { font-family: var(--jp-code-font-family, monospace); padding: 0 0.3rem; border-radius: 0.2rem; background: #e3e3e3; }
.course-grade-passed { border-left-color: #2e7d32; }
.course-grade-failed, .course-grade-error, .course-grade-missing, .course-grade-unreadable { border-left-color: #c62828; }
.course-grade-timeout, .course-grade-tampered, .course-grade-not_own_work, .course-grade-notgraded { border-left-color: #ef6c00; }
</style>
"""

_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}
<meta http-equiv="Content-Security-Policy" content=\"""" + CSP + """\">
<meta name="referrer" content="no-referrer">
{%- if resources.course_digest %}
<meta name="course-feedback-digest" content="{{ resources.course_digest }}">
{%- endif %}
{%- endblock html_head_js -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}
{%- if resources.course_mathjax %}
<script src="{{ resources.course_mathjax_config | escape_html }}"></script>
<script src="{{ resources.course_mathjax | escape_html }}" defer></script>
{%- endif %}
{%- endblock html_head_js_mathjax -%}
{% block extra_css %}""" + _CSS + """{% endblock extra_css %}
{%- block body_header -%}
<body class="jp-Notebook" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
{{ resources.course_header }}
<main class="course-student">
{%- endblock body_header -%}
{% block any_cell %}{{ cell.metadata.course_html }}{% endblock any_cell %}
{% block body_footer %}
</main>
</body>
{% endblock body_footer %}
"""

_local = threading.local()  # one exporter per thread (building one is the slow part); no lock is shared


def _exporter():
    if not hasattr(_local, "exporter"):
        from jinja2 import DictLoader
        from nbconvert import HTMLExporter

        exporter = HTMLExporter(template_name="lab", template_file="course_feedback.html.j2", sanitize_html=True,
                                extra_loaders=[DictLoader({"course_feedback.html.j2": _TEMPLATE})])
        exporter.register_filter("clean_html", clean_html)
        _local.exporter = exporter
    return _local.exporter


def mathjax_source() -> Path | None:
    """The MathJax component in the course's node_modules (installed by ``make book``), or None."""
    from course_lib.assets import node_modules_dir

    path = node_modules_dir() / "mathjax" / "es5" / MATHJAX_FILE
    return path if path.is_file() else None


def _place(src: Path, dst: Path) -> None:
    """Put a copy of ``src`` at ``dst`` (a hard link when possible: one copy on disk for a whole class)."""
    if dst.is_file() and dst.stat().st_size == src.stat().st_size:
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def stage_assets(assets_dir: Path) -> bool:
    """Put MathJax and its configuration in ``assets_dir``; False when MathJax is not installed."""
    src = mathjax_source()
    if src is None:
        return False
    _place(src, assets_dir / "mathjax" / MATHJAX_FILE)
    config = assets_dir / "mathjax-config.js"
    if not config.is_file() or config.read_text(encoding="utf-8") != MATHJAX_CONFIG:
        replace_atomically(config, lambda f: f.write(MATHJAX_CONFIG))
    return True


#: what the page says when MathJax was not staged (to the student: nothing for them to do)
TEX_NOTE = "Maths on this page is shown as TeX."


def render_feedback_html(nb: nbformat.NotebookNode, mathjax_url: str | None, config_url: str | None = None) -> str:
    """The page's HTML; ``mathjax_url`` (relative to the page) None: no MathJax, the maths stays TeX (the header says so)."""
    nb = _prerendered(nb)
    fb = nb.metadata.get("course_feedback") or {}
    header = fb.get("header", "")
    if mathjax_url is None:
        note = f'<p class="course-texnote"><em>{html.escape(TEX_NOTE)}</em></p>'
        header = header.replace("</section>", note + "</section>", 1) if "</section>" in header else header + note
    digest = re.search(r'data-course-digest="([0-9a-f]{64})"', header)
    resources = {"course_mathjax": mathjax_url, "course_mathjax_config": config_url, "course_header": header,
                 "course_digest": digest.group(1) if digest else ""}
    body, _ = _exporter().from_notebook_node(nb, resources=resources)
    return body


def write_feedback_html(nb: nbformat.NotebookNode, path: Path, assets_dir: Path | None = None) -> bool:
    """Write the page to ``path``, with MathJax staged in ``assets_dir`` and linked by a relative URL; True if it was.

    ``assets_dir`` defaults to ``_assets/`` in the folder above the page's: for the grader's
    ``feedback/<student>/<assignment>/<name>.html`` that is ``feedback/<student>/_assets/``,
    so each student's folder is complete on its own (the files are hard links where the
    file system allows, so a class costs one copy on disk).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    assets = Path(assets_dir) if assets_dir is not None else path.parent.parent / ASSETS_DIR
    mathjax = config = None
    staged = stage_assets(assets)
    if staged:
        rel = Path(os.path.relpath(assets, path.parent)).as_posix()
        mathjax, config = f"{rel}/mathjax/{MATHJAX_FILE}", f"{rel}/mathjax-config.js"
    page = render_feedback_html(nb, mathjax, config)
    replace_atomically(path, lambda f: f.write(page))
    return staged


# --------------------------------------------------------------------------- checking a page against the gradebook


class _HeaderReader(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.digests: list[str] = []
        self.headers: list[dict] = []
        self.score: list[str] = []
        self._in_score = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "meta" and a.get("name") == "course-feedback-digest":
            self.digests.append(a.get("content") or "")
        if tag == "header" and "course-header" in (a.get("class") or "").split():
            self.headers.append(a)
        if self.headers and tag == "p" and "course-score" in (a.get("class") or "").split() and len(self.headers) == 1:
            self._in_score += 1
        elif self._in_score:
            self._in_score += 0 if tag in _VOID else 1

    def handle_endtag(self, tag):
        if self._in_score:
            self._in_score -= 1

    def handle_data(self, data):
        if self._in_score:
            self.score.append(data)


def verify_feedback_page(path: Path, gradebook_rows) -> tuple[bool, str]:
    """Whether the feedback page at ``path`` shows the grade the gradebook holds: (ok, why).

    ``gradebook_rows``: rows of the gradebook (``Row`` objects or dicts with its fields; the
    whole gradebook will do: the page names its student, assignment and notebook). The page
    must carry exactly one header and one digest, the digest must be that of the gradebook's
    rows for the page, and the score it shows must be their sum (or "not graded").
    """
    text = Path(path).read_text(encoding="utf-8")
    reader = _HeaderReader()
    reader.feed(text)
    reader.close()
    if len(reader.headers) != 1 or len(reader.digests) != 1:
        return False, f"expected one grade header and one digest, found {len(reader.headers)} and {len(reader.digests)}"
    head = reader.headers[0]
    who = (head.get("data-course-student", ""), head.get("data-course-assignment", ""), head.get("data-course-notebook", ""))

    def field(r, name):
        return r[name] if isinstance(r, dict) else getattr(r, name)

    class _R:
        def __init__(self, r):
            self.grade_id, self.status, self.message = str(field(r, "grade_id")), str(field(r, "status")), str(field(r, "message") or "")
            self.points, self.max_points = float(field(r, "points") or 0), float(field(r, "max_points") or 0)

    rows = [_R(r) for r in gradebook_rows
            if (str(field(r, "student")), str(field(r, "assignment")), str(field(r, "notebook"))) == who and str(field(r, "grade_id"))]
    if not rows:
        return False, f"the gradebook has no rows for {'/'.join(who)}"
    expected = grade_digest(*who, rows)
    if reader.digests[0] != expected or head.get("data-course-digest") != expected:
        return False, f"the page's digest does not match the gradebook's rows for {'/'.join(who)}"
    shown = " ".join("".join(reader.score).split())
    if any(_not_graded(r) for r in rows):
        return ("not graded" in shown.lower(), f"shown: {shown!r}")
    want = f"Score: {sum(r.points for r in rows):g} / {sum(r.max_points for r in rows):g}"
    return (shown == want, f"shown: {shown!r}, gradebook: {want!r}")
