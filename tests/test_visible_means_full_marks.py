"""A ✔ means full marks: no planted mistake passes a part's visible checks and then loses points to its hidden tests.

Every planted mistake in tests/ (the tables of ``tests/test_checks_*.py`` and the wrong answers of
``tests/fixtures/ch03_submissions.py``) goes through the test cell of the part it belongs to, as the
solutions notebook writes that cell: first the visible lines (what a learner runs), then the lines
between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` (what the grader adds). The other answer
cells hold the solution, so only the planted mistake differs.

A mistake that the visible lines accept and the hidden ones reject means that a learner saw ✔ and
then lost the part's points: a requirement the instructions state is tested only in secret. That
fails here, unless the mistake is in ``ALLOWED``, the deliberate anti-hard-coding cases (an answer
written for the visible test's sizes, seeds or ids), each with its reason.

Runs in-process, without the grader's sandbox or kernel: the verdicts are the check functions' own.

    .venv/bin/python tests/test_visible_means_full_marks.py     # prints every mistake's verdicts
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import re
import sys
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
CHECK_MODULES = sorted(p.stem for p in Path(__file__).parent.glob("test_checks_ch0*.py"))

#: (test cell's grade_id, the mistake's name) -> why the visible check may accept it: only
#: deliberate anti-hard-coding cases, i.e. answers that fit the visible inputs' sizes, seeds or ids.
ALLOWED: dict[tuple[str, str], str] = {
    ("test_attention_weights", "ch03_submissions.HIDDEN_WRONG[attention_weights]"):
        "divides by sqrt(6), the visible inputs' d_k, instead of sqrt(q.shape[-1]): only other sizes can tell",
    ("test_scaled_dot_product_attention", "ch03_submissions.HIDDEN_WRONG[scaled_dot_product_attention]"):
        "divides by sqrt(6), the visible inputs' d_k, instead of sqrt(q.shape[-1]): only other sizes can tell",
    ("test_embeddings", "TwoSegments"):
        "rewrites the given __init__ to hard-code n_segments=2, the visible check's (and BERT's) value: only another "
        "number of segments can tell",
    ("test_key_map", "<lambda: layers.2>"):
        "returns the map for 2 layers whatever n_layers is, the visible check's number; the instructions say that the "
        "hidden check uses 3 layers",
}


class Cell(NamedTuple):
    assignment: str
    grade_id: str
    visible: str
    hidden: str
    calls: dict[str, str]  # check function name -> the answer name it is called on


class Mistake(NamedTuple):
    check: str  # the check function whose table (or fixture) planted it
    name: str  # the wrong answer's __name__ (or the fixture's label)
    wrong: Any  # the object to bind, or source code (str) to execute in the notebook's namespace
    is_source: bool


def _cells() -> list[Cell]:
    cells = []
    for path in sorted(SOLUTIONS.glob("*/*.ipynb")):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            meta = cell["metadata"].get("nbgrader", {})
            if cell["cell_type"] != "code" or not meta.get("grade"):
                continue
            src = "".join(cell["source"])
            visible, _, rest = src.partition(HIDDEN_BEGIN)
            hidden = rest.partition(HIDDEN_END)[0]
            calls = dict(re.findall(r"\b(check_\w+)\((\w+)\)", src))
            cells.append(Cell(path.parent.name, meta["grade_id"], visible, hidden, calls))
    return cells


def _namespace(assignment: str) -> dict:
    """The solutions notebook run up to the end, test cells left out: every answer right."""
    path = next((SOLUTIONS / assignment).glob("*.ipynb"))
    ns: dict = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code" and not cell["metadata"].get("nbgrader", {}).get("grade"):
                exec(compile("".join(cell["source"]), f"<{assignment} {cell.get('id')}>", "exec"), ns)
    return ns


def _tables(module) -> Iterator[tuple]:
    for value in vars(module).values():
        if isinstance(value, list) and value and all(isinstance(r, tuple) and len(r) == 3 for r in value):
            if all(callable(r[0]) and hasattr(r[0], "check_name") and isinstance(r[2], list) for r in value):
                yield from value


def planted_mistakes() -> list[Mistake]:
    sys.path.insert(0, str(Path(__file__).parent))
    sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
    mistakes, seen = [], set()
    for name in CHECK_MODULES:
        module = importlib.import_module(name)
        for check, _right, wrongs in _tables(module):
            for wrong, phrase in wrongs:
                label = getattr(wrong, "__name__", None) or repr(wrong)
                if label == "<lambda>":
                    label = f"<lambda: {phrase}>"
                key = (check.__name__, id(wrong))
                if key not in seen:
                    seen.add(key)
                    mistakes.append(Mistake(check.__name__, label, wrong, False))
    ch03 = importlib.import_module("ch03_submissions")
    for table_name in ("WRONG", "HIDDEN_WRONG"):
        for answer, source in getattr(ch03, table_name).items():
            cell = next(c for c in _cells() if c.assignment == ch03.ASSIGNMENT and answer in c.calls.values())
            check = next(c for c, a in cell.calls.items() if a == answer)
            mistakes.append(Mistake(check, f"ch03_submissions.{table_name}[{answer}]", source, True))
    return mistakes


def _run(source: str, ns: dict) -> str | None:
    """None when ``source`` runs, else the exception's first line."""
    if not source.strip():
        return None
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(source, "<test cell>", "exec"), ns)
    except Exception as err:  # noqa: BLE001 - any error costs the points
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return None


class Verdict(NamedTuple):
    cell: Cell
    mistake: Mistake
    visible: str | None  # None: the visible lines pass
    hidden: str | None  # None: the hidden lines pass (or were not run)


def verdicts() -> list[Verdict]:
    cells = _cells()
    by_check = {check: cell for cell in cells for check in cell.calls}
    namespaces: dict[str, dict] = {}
    out = []
    for m in planted_mistakes():
        cell = by_check.get(m.check)
        if cell is None:  # a check no test cell calls (e.g. only used by the book)
            continue
        ns = namespaces.setdefault(cell.assignment, _namespace(cell.assignment))
        answer = cell.calls[m.check]
        saved = ns[answer]
        try:
            if m.is_source:
                exec(compile(m.wrong, f"<{m.name}>", "exec"), ns)
            else:
                ns[answer] = m.wrong
            visible = _run(cell.visible, ns)
            hidden = _run(cell.hidden, ns) if visible is None else None
        finally:
            ns[answer] = saved
        out.append(Verdict(cell, m, visible, hidden))
    return out


@pytest.fixture(scope="module")
def all_verdicts() -> list[Verdict]:
    return verdicts()


def test_every_planted_mistake_was_run(all_verdicts):
    assert len(all_verdicts) > 300
    assert {v.cell.assignment for v in all_verdicts} == {p.name for p in SOLUTIONS.iterdir() if p.is_dir()}


def test_no_mistake_passes_the_visible_checks_and_fails_a_hidden_test(all_verdicts):
    leaks = [v for v in all_verdicts if v.visible is None and v.hidden is not None
             and (v.cell.grade_id, v.mistake.name) not in ALLOWED]
    assert not leaks, "passes every visible check, then fails a hidden test:\n" + "\n".join(
        f"  {v.cell.assignment} {v.cell.grade_id}: {v.mistake.name} (from {v.mistake.check}'s table): {v.hidden}"
        for v in leaks)


def test_every_allowed_case_is_still_needed(all_verdicts):
    """An allow-list entry whose mistake is gone, or now caught by the visible check, is stale."""
    caught_only_by_hidden = {(v.cell.grade_id, v.mistake.name) for v in all_verdicts
                             if v.visible is None and v.hidden is not None}
    assert set(ALLOWED) <= caught_only_by_hidden, set(ALLOWED) - caught_only_by_hidden


if __name__ == "__main__":
    for v in verdicts():
        if v.visible is None:
            flag = "LEAK" if v.hidden is not None else "ok  "
            print(f"{flag} {v.cell.assignment} {v.cell.grade_id}: {v.mistake.name}: visible passes; hidden: {v.hidden}")
