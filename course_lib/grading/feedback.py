"""Per-student feedback: the graded notebook, hidden tests removed, a grade under each test cell.

The notebook shown is the one that ran: the learner's answers and the source's
locked cells, with their outputs. Before rendering:

- the grader's own cells and prefix lines are removed, and the source of every
  hidden-test block is cleared (nbgrader's ClearHiddenTests);
- tracebacks of graded cells are cut to their last line (a traceback quotes the
  lines around the failing call, which could be hidden tests), and so is any
  other traceback that passes through a graded cell;
- the lines the grading kernel prints for each recorded check are dropped (they
  would name the hidden checks); the grade box under the cell says it all.

Every part gets a box under its test cell: points, status and the grader's
message (for a syntax error: the line and its caret; for a timeout: "timed out
after N s"), the same words as the gradebook.

Rendering is nbconvert's ``lab`` HTML with three changes (``course_feedback.html.j2``):

- nothing is loaded from a CDN: no require.js, no widget manager, no mermaid,
  and MathJax 3 comes from the course's own ``node_modules/mathjax`` (the copy
  ``make book`` installs, see ``course_lib.book.assets``), staged in
  ``feedback/<student>/_assets/`` and loaded by a relative URL, so that a
  student's folder works when copied elsewhere, from a web server or as files.
  Without it the maths is left as TeX and the page says so;
- HTML is sanitised with an allow-list that keeps what Markdown produces
  (nbconvert's own ``sanitize_html`` escapes ``<h1>``, ``<p>``, ``<thead>``...: every
  Markdown cell showed its raw tags). Markup a submission printed or wrote
  cannot run scripts in the reader's browser: no script survives the
  allow-list, images must be ``data:`` URLs, and a Content-Security-Policy
  allows only scripts from the page's own origin (no inline script, no other host);
- a style for the grade boxes.
"""

from __future__ import annotations

import copy
import html
import os
import re
import shutil
import threading
from pathlib import Path

import nbformat

from course_lib.files import replace_atomically
from course_lib.grading.notebooks import (
    GRADER_TAG,
    Prepared,
    SourceNotebook,
    strip_for_feedback,
    traceback_lines,
)

_ICON = {"passed": "\u2714", "failed": "\u2718", "error": "\u2718", "timeout": "\u2718", "tampered": "\u26a0", "not_own_work": "\u26a0",
         "missing": "\u2718", "unreadable": "\u2718"}

#: the line the grading kernel prints per recorded check (course_lib.grading.kernel.record_only)
_RECORDED = re.compile(r"^\u2022 \S+: outputs recorded; the grader verifies them\n?", re.MULTILINE)
_CELL_IN = re.compile(r"Cell In\[(\d+)\]")

#: where the staged assets go, beside the pages that use them
ASSETS_DIR = "_assets"
#: the MathJax component the pages load: TeX in, SVG out, every TeX extension included (nothing else to fetch)
MATHJAX_FILE = "tex-svg-full.js"
MATHJAX_CONFIG = """/* written by course_lib/grading/feedback.py: MathJax 3 for the feedback pages */
window.MathJax = {
  tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']],
        processEscapes: true, processEnvironments: true},
  options: {ignoreHtmlClass: 'tex2jax_ignore', enableMenu: false},
  svg: {fontCache: 'global'}
};
"""


def _pre(text: str) -> str:
    """Text for a <pre> inside a Markdown HTML block: escaped, and on one source line (a blank line would end the block)."""
    return html.escape(text).replace("\n", "&#10;")


def _grade_box(row) -> str:
    status = html.escape(row.status)
    title = (f'<p class="course-grade-title">{_ICON.get(row.status, "")} <strong>{html.escape(row.grade_id)}</strong>: '
             f'{row.points:g} / {row.max_points:g} points <span class="course-status">{status}</span></p>')
    message = f'<pre class="course-grade-message">{_pre(row.message)}</pre>' if row.message else ""
    return f'<div class="course-grade course-grade-{status} tex2jax_ignore">{title}{message}</div>'


def _header(source: SourceNotebook, prepared: Prepared, rows: list) -> str:
    got = sum(r.points for r in rows)
    total = sum(r.max_points for r in rows)
    parts = "".join(
        f'<tr class="course-part course-part-{html.escape(r.status)}"><td><code>{html.escape(r.grade_id)}</code></td>'
        f"<td>{r.points:g} / {r.max_points:g}</td><td>{_ICON.get(r.status, '')} {html.escape(r.status)}</td>"
        f"<td>{html.escape(r.message.splitlines()[0].rstrip(':') if r.message else '')}</td></tr>"
        for r in rows
    )
    lines = [
        f"# Feedback: {source.assignment} / {source.name}",
        "",
        f'<div class="course-feedback-summary tex2jax_ignore"><p class="course-score">Score: <strong>{got:g} / {total:g}</strong></p>'
        f"<table><thead><tr><th>part</th><th>points</th><th>status</th><th>message</th></tr></thead><tbody>{parts}</tbody></table>"
        + "".join(f"<p>{html.escape(n)}</p>" for n in prepared.notes)
        + "<p>Hidden tests are not shown; their results are included in each part's grade. "
        "The box under each test cell gives its points, status and the grader's message.</p>"
        + "</div>",
    ]
    return "\n".join(lines)


def _cut_traceback(out) -> None:
    out["traceback"] = [f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"]


def feedback_notebook(executed: nbformat.NotebookNode, source: SourceNotebook, prepared: Prepared, rows: list) -> nbformat.NotebookNode:
    by_id = {r.grade_id: r for r in rows}
    index_to_id = {i: gid for gid, i in prepared.run_index.items()}
    graded_counts = {str(c.get("execution_count")) for i, c in enumerate(executed.cells)
                     if i in index_to_id and c.get("execution_count") is not None}
    cells = [nbformat.v4.new_markdown_cell(_header(source, prepared, rows), metadata={"course_header": True})]
    for i, cell in enumerate(executed.cells):
        if cell.get("metadata", {}).get(GRADER_TAG):
            continue
        cell = copy.deepcopy(cell)
        gid = index_to_id.get(i)
        if gid is not None:
            cell.source = strip_for_feedback(cell.source)
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                cells_named = set(_CELL_IN.findall("\n".join(traceback_lines(out))))
                if gid is not None or cells_named & graded_counts:  # it could quote a graded cell's lines
                    _cut_traceback(out)
            elif gid is not None and out.get("output_type") == "stream":
                out["text"] = _RECORDED.sub("", "".join(out.get("text", "")))
        if gid is not None:
            cell["outputs"] = [o for o in cell.get("outputs", []) if not (o.get("output_type") == "stream" and not o.get("text"))]
        cells.append(cell)
        if gid is not None and gid in by_id:
            cells.append(nbformat.v4.new_markdown_cell(_grade_box(by_id[gid])))
    metadata = copy.deepcopy(executed.metadata)
    metadata.pop("widgets", None)  # no widget manager on the page
    nb = nbformat.v4.new_notebook(cells=cells, metadata=metadata)
    nb.metadata["title"] = f"Feedback: {source.assignment} / {source.name}"
    for j, cell in enumerate(nb.cells):
        cell["id"] = f"feedback-{j}"
    return nb


# --------------------------------------------------------------------------- sanitising


_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "col", "colgroup", "dd", "del", "details", "div", "dl", "dt",
    "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p",
    "pre", "q", "s", "samp", "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead",
    "tr", "u", "ul", "var",
}


def _attribute_allowed(tag: str, name: str, value: str) -> bool:
    if name in ("class", "id", "title"):
        return True
    if tag == "a" and name == "href":
        return bool(re.match(r"(https?:|mailto:|#)", value.strip(), re.IGNORECASE))
    if tag == "img":
        return name in ("alt", "width", "height") or name == "src" and value.strip().lower().startswith("data:image/")
    if tag in ("td", "th"):
        return name in ("align", "colspan", "rowspan", "style")
    return tag == "ol" and name == "start"


def clean_html(element) -> str:
    """Sanitise HTML from Markdown cells and outputs: the tags Markdown and tables produce, no script, no remote image."""
    import bleach
    from bleach.css_sanitizer import CSSSanitizer

    text = element.decode() if isinstance(element, bytes) else str(element)
    return bleach.clean(text, tags=_TAGS, attributes=_attribute_allowed, protocols={"http", "https", "mailto", "data"},
                        css_sanitizer=CSSSanitizer(allowed_css_properties={"text-align"}), strip=True, strip_comments=True)


# --------------------------------------------------------------------------- rendering


_CSS = """
<style type="text/css">
body.jp-Notebook { max-width: 60rem; margin: 0 auto; }
.course-grade { border-left: 0.35rem solid #777; background: #f6f6f6; margin: 0.3rem 0 1.2rem 0; padding: 0.4rem 0.8rem; }
.course-grade-title { margin: 0.2rem 0; font-size: 1rem; }
.course-grade-message { white-space: pre-wrap; background: transparent; margin: 0.3rem 0; font-size: 0.85rem; }
.course-status { font-family: var(--jp-code-font-family, monospace); padding: 0 0.3rem; border-radius: 0.2rem; background: #e3e3e3; }
.course-grade-passed { border-left-color: #2e7d32; }
.course-grade-failed, .course-grade-error, .course-grade-missing, .course-grade-unreadable { border-left-color: #c62828; }
.course-grade-timeout, .course-grade-tampered, .course-grade-not_own_work { border-left-color: #ef6c00; }
.course-feedback-summary table td, .course-feedback-summary table th { text-align: left; vertical-align: top; padding: 0.2rem 0.6rem; }
.course-score { font-size: 1.2rem; }
</style>
"""

_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:">
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
"""

_local = threading.local()  # one exporter per thread: building one (templates, filters) is the slow part


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


def render_feedback_html(nb: nbformat.NotebookNode, mathjax_url: str | None, config_url: str | None = None) -> str:
    """The page's HTML; ``mathjax_url`` (relative to the page) None: no MathJax, the header says the maths stays TeX."""
    nb = copy.deepcopy(nb)
    if nb.cells and nb.cells[0].get("metadata", {}).get("course_header") and mathjax_url is None:
        nb.cells[0].source = _with_tex_note(nb.cells[0].source)
    resources = {"course_mathjax": mathjax_url, "course_mathjax_config": config_url}
    body, _ = _exporter().from_notebook_node(nb, resources=resources)
    return body


def _with_tex_note(header: str) -> str:
    note = ("<p><em>The maths on this page is shown as TeX: MathJax was not installed where this page was made "
            "(run <code>npm ci</code> in the course folder, then make the page again).</em></p>")
    return header[: header.rindex("</div>")] + note + "</div>" if "</div>" in header else header + "\n\n" + note


def write_feedback_html(nb: nbformat.NotebookNode, path: Path, assets_dir: Path | None = None) -> None:
    """Write the page to ``path``, with MathJax staged in ``assets_dir`` and linked by a relative URL.

    ``assets_dir`` defaults to ``_assets/`` in the folder above the page's: for the grader's
    ``feedback/<student>/<assignment>/<name>.html`` that is ``feedback/<student>/_assets/``,
    so each student's folder is complete on its own (the files are hard links where the
    file system allows, so a class costs one copy on disk).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    assets = Path(assets_dir) if assets_dir is not None else path.parent.parent / ASSETS_DIR
    mathjax = config = None
    if stage_assets(assets):
        rel = Path(os.path.relpath(assets, path.parent)).as_posix()
        mathjax, config = f"{rel}/mathjax/{MATHJAX_FILE}", f"{rel}/mathjax-config.js"
    path.write_text(render_feedback_html(nb, mathjax, config), encoding="utf-8")
