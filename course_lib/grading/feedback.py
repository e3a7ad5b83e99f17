"""Per-student feedback: the graded notebook, hidden tests removed, a grade under each test cell.

The notebook shown is the one that ran: the learner's answers and the source's
locked cells, with their outputs. Before rendering, the grader's own cells and
prefix lines are removed, the source of every hidden-test block is cleared
(nbgrader's ClearHiddenTests), and tracebacks of graded cells are cut to their
last line (a traceback quotes the lines around the failing call, which could be
hidden tests). The HTML is rendered by nbconvert with ``sanitize_html`` on, so
markup a submission printed cannot run scripts in the reader's browser.
"""

from __future__ import annotations

import copy
import html
import threading
from pathlib import Path

import nbformat

from course_lib.grading.notebooks import GRADER_TAG, Prepared, SourceNotebook, strip_for_feedback

_ICON = {"passed": "\u2714", "failed": "\u2718", "error": "\u2718", "timeout": "\u231b", "tampered": "\u26a0", "not_own_work": "\u26a0",
         "missing": "\u2718", "unreadable": "\u2718"}


def _grade_markdown(row) -> str:
    text = f"**{_ICON.get(row.status, '')} {row.grade_id}: {row.points:g} / {row.max_points:g} points ({row.status})**"
    if row.message:
        quoted = "\n".join("> " + html.escape(line) for line in row.message.splitlines())
        text += "\n\n" + quoted
    return text


def feedback_notebook(executed: nbformat.NotebookNode, source: SourceNotebook, prepared: Prepared, rows: list) -> nbformat.NotebookNode:
    by_id = {r.grade_id: r for r in rows}
    index_to_id = {i: gid for gid, i in prepared.run_index.items()}
    got = sum(r.points for r in rows)
    total = sum(r.max_points for r in rows)
    header = [f"# Feedback: {source.assignment} / {source.name}", "", f"**Score: {got:g} / {total:g}**", "",
              "| part | points | status |", "|---|---|---|"]
    header += [f"| {r.grade_id} | {r.points:g} / {r.max_points:g} | {r.status} |" for r in rows]
    if prepared.notes:
        header += ["", *("- " + html.escape(n) for n in prepared.notes)]
    header += ["", "Hidden tests are not shown; their results are included in each part's grade."]
    cells = [nbformat.v4.new_markdown_cell("\n".join(header))]
    for i, cell in enumerate(executed.cells):
        if cell.get("metadata", {}).get(GRADER_TAG):
            continue
        cell = copy.deepcopy(cell)
        gid = index_to_id.get(i)
        if gid is not None:
            cell.source = strip_for_feedback(cell.source)
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    out["traceback"] = [f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"]
        cells.append(cell)
        if gid is not None and gid in by_id:
            cells.append(nbformat.v4.new_markdown_cell(_grade_markdown(by_id[gid])))
    nb = nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(executed.metadata))
    for j, cell in enumerate(nb.cells):
        cell["id"] = f"feedback-{j}"
    return nb


_local = threading.local()  # one exporter per thread: building one (templates, filters) is the slow part


def write_feedback_html(nb: nbformat.NotebookNode, path: Path) -> None:
    from nbconvert import HTMLExporter

    if not hasattr(_local, "exporter"):
        _local.exporter = HTMLExporter(template_name="lab", sanitize_html=True)
    body, _ = _local.exporter.from_notebook_node(nb)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
