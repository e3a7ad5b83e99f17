"""Notebook handling for the grader: sources, submissions, tamper checks, what runs.

Nothing here executes learner code; it only reads JSON.

- ``SourceNotebook``: ``solutions/<assignment>/<name>.ipynb``, the source of truth:
  its graded cells, their points, the checks each calls (found statically),
  and the released form of every cell (nbgrader's ClearSolutions and
  ClearHiddenTests applied, as in ``exercises/``).
- ``load_released``: the same from the released ``exercises/<assignment>/<name>.ipynb``, for
  a copy of the course without ``solutions/`` (the learners' public copy): the visible tests
  only, since the hidden ones are not in it (``SourceNotebook.hidden_tests`` is False).
- ``read_submission``: parses a learner's file, or raises ``Unreadable`` saying why.
- ``prepare``: matches the submission's cells to the source's by
  ``nbgrader.grade_id``, keeps the learner's answer cells (and extra cells) as
  written, restores every locked cell from the source (with its hidden tests)
  and reports the ones that were edited or deleted, then builds the notebook
  the runner executes.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode
from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions
from nbgrader.utils import compute_checksum, is_grade, is_locked, is_solution

from course_lib.grading.release import EXERCISES, ROOT, SOLUTIONS

#: first line of every graded test cell in the notebook that runs
PREFIX = 'import course_lib.grading.recorder as __r; __r.begin({grade_id!r})'
#: a cell the grader inserts after each graded cell: recordings outside graded cells are dropped
END_CELL = "import course_lib.grading.recorder as __r; __r.end()"
GRADER_TAG = "course_grader"


class Unreadable(Exception):
    """A submission file that cannot be graded as the expected notebook (the message says why)."""


class SourceError(Exception):
    """A problem in solutions/ itself (an instructor's bug, not the learner's)."""


@dataclass(frozen=True)
class GradedCell:
    grade_id: str
    points: float
    checks: tuple[str, ...]  # registered check names, in call order


@dataclass
class SourceNotebook:
    assignment: str
    name: str
    path: Path
    nb: NotebookNode
    graded: list[GradedCell]
    released: dict[str, NotebookNode] = field(repr=False)  # grade_id -> released cell
    #: False for a released exercise used as the source (``load_released``): no hidden tests, no solutions
    hidden_tests: bool = True
    #: where a released source's text came from (``load_released``), for the learner's notice
    origin: str = ""

    @property
    def max_points(self) -> float:
        return sum(g.points for g in self.graded)


def grade_id(cell: NotebookNode) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader")
    if isinstance(meta, dict) and isinstance(meta.get("grade_id"), str):
        return meta["grade_id"]
    return None


def called_check_functions(source: str) -> list[str]:
    """Names of ``check_*`` functions called in ``source`` (hidden tests included), in order."""
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise SourceError(f"the test cell does not parse: {err}") from err
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            fn = node.func
            name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else None
            if name and name.startswith("check_") and name not in names:
                names.append(name)
    return names


def resolve_checks(function_names: list[str]) -> tuple[str, ...]:
    """Map ``check_*`` function names to registered check names (course_lib.checks)."""
    import course_lib.checks as checks

    resolved = []
    for fname in function_names:
        fn = getattr(checks, fname, None)
        name = getattr(fn, "check_name", None)
        if name is None or name not in checks.REGISTRY:
            raise SourceError(f"{fname} is not a check registered in course_lib.checks")
        resolved.append(name)
    return tuple(resolved)


def _released_cells(nb: NotebookNode) -> dict[str, NotebookNode]:
    """Each cell as nbgrader releases it: solutions replaced by stubs, hidden tests removed."""
    released = copy.deepcopy(nb)
    released, _ = ClearSolutions().preprocess(released, {})
    released, _ = ClearHiddenTests().preprocess(released, {})
    return {gid: cell for cell in released.cells if (gid := grade_id(cell))}


def load_source(assignment: str, name: str, solutions_dir: Path = SOLUTIONS) -> SourceNotebook:
    path = solutions_dir / assignment / f"{name}.ipynb"
    return _source(assignment, name, path, nbformat.read(path, as_version=4))


def has_source(assignment: str, name: str, solutions_dir: Path = SOLUTIONS) -> bool:
    """Whether ``solutions/`` holds this notebook's source (it does not in the learners' public copy)."""
    return (solutions_dir / assignment / f"{name}.ipynb").is_file()


def _pristine_release(path: Path, checked: Path | None) -> tuple[NotebookNode, str] | None:
    """The released notebook at ``path`` as the course shipped it, and where it came from.

    A learner usually edits ``exercises/`` in place, so the file on disk may be their work:
    the committed version (``git show HEAD:...``, in a clone) comes first, then the file on
    disk unless it is the notebook being checked. None when neither is available.
    """
    import subprocess

    try:
        shown = subprocess.run(["git", "-C", str(path.parent), "show", f"HEAD:./{path.name}"],
                               capture_output=True, timeout=30, check=False)
        if shown.returncode == 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return nbformat.reads(shown.stdout.decode("utf-8"), as_version=4), f"the committed {_shown(path)} (git HEAD)"
    except (OSError, subprocess.SubprocessError, UnicodeDecodeError, ValueError):
        pass
    if path.is_file() and not (checked is not None and path.resolve() == checked.resolve()):
        return nbformat.read(path, as_version=4), _shown(path)
    return None


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def load_released(assignment: str, name: str, exercises_dir: Path = EXERCISES, checked: Path | None = None) -> SourceNotebook:
    """The released exercise ``exercises_dir/<assignment>/<name>.ipynb`` as the source, for a copy without solutions/.

    Its nbgrader metadata gives the graded cells, their points and the locked cells; its test
    cells hold the visible tests only (release strips the hidden ones), so a score against it
    can be higher than the instructor's. ``checked``: the notebook being scored, which must
    not serve as its own reference; when it is the released file itself and no committed copy
    exists, its locked cells cannot be restored (``origin`` says so).
    """
    path = exercises_dir / assignment / f"{name}.ipynb"
    found = _pristine_release(path, checked)
    if found is None:
        if not path.is_file():
            raise SourceError(f"no released notebook {_shown(path)} (and no solutions/ to grade against)")
        nb, origin = nbformat.read(path, as_version=4), ""
    else:
        nb, origin = found
    source = _source(assignment, name, path, nb)
    source.hidden_tests, source.origin = False, origin
    return source


def _source(assignment: str, name: str, path: Path, nb: NotebookNode) -> SourceNotebook:
    graded = []
    seen: set[str] = set()
    for cell in nb.cells:
        gid = grade_id(cell)
        if gid is None:
            continue
        if gid in seen:
            raise SourceError(f"{path}: grade_id {gid!r} is used twice")
        seen.add(gid)
        if is_grade(cell):
            if cell.cell_type != "code" or is_solution(cell):
                raise SourceError(f"{path}: graded cell {gid!r} must be a locked code cell that calls checks")
            checks = resolve_checks(called_check_functions(cell.source))
            if not checks:
                raise SourceError(f"{path}: graded cell {gid!r} calls no check_* function, so it cannot be autograded")
            graded.append(GradedCell(gid, float(cell.metadata.nbgrader.get("points", 0)), checks))
    return SourceNotebook(assignment, name, path, nb, graded, _released_cells(nb))


def source_names(assignment: str, solutions_dir: Path = SOLUTIONS) -> list[str]:
    return sorted(p.stem for p in (solutions_dir / assignment).glob("*.ipynb"))


# --------------------------------------------------------------------------- reading submissions


def read_submission(path: Path, source: SourceNotebook) -> NotebookNode:
    """Parse a submitted notebook; raise Unreadable with a clear reason if it cannot be graded."""
    import os
    import stat

    limit = 32 * 2**20
    try:  # never through a symlink, never a FIFO or device (O_NONBLOCK: opening a FIFO cannot hang)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        why = "it is a symbolic link (not followed)" if path.is_symlink() else err.strerror
        raise Unreadable(f"cannot read the file: {why}") from err
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise Unreadable("not a regular file (a FIFO, socket or device): it was not read")
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise Unreadable(f"the file is larger than {limit // 2**20} MiB: not a notebook this assignment produces")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise Unreadable(f"not a notebook: the file is not valid JSON ({err})") from err
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        raise Unreadable(f"not a notebook: expected a JSON object with 'cells', got {type(data).__name__}")
    version = data.get("nbformat")
    if version != 4:
        raise Unreadable(f"wrong notebook format: nbformat {version!r}; expected 4 (save it with Jupyter 4 or later)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. duplicate cell ids from copied cells: harmless here
            nb = nbformat.reads(json.dumps(data), as_version=4)
    except Exception as err:  # noqa: BLE001 - nbformat raises many kinds
        raise Unreadable(f"not a valid notebook: {err}") from err
    if not isinstance(nb.get("cells"), list) or not all(isinstance(c, dict) and "source" in c and "cell_type" in c for c in nb.cells):
        raise Unreadable("not a valid notebook: malformed cells")
    meta = nb.metadata.get("course", {}) if isinstance(nb.metadata.get("course"), dict) else {}
    claimed = meta.get("assignment"), meta.get("notebook")
    if claimed[0] and (claimed[0], claimed[1]) != (source.assignment, source.name):
        raise Unreadable(
            f"this is the notebook {claimed[1]!r} of assignment {claimed[0]!r}, "
            f"not {source.name!r} of {source.assignment!r}: submit the right file"
        )
    ids = {gid for c in nb.cells if (gid := grade_id(c))}
    if not ids & set(source.released):
        others = ", ".join(sorted(ids)[:4])
        raise Unreadable(
            "none of its cells belongs to this assignment's notebook "
            + (f"(it has cells {others}...: another assignment?)" if ids else "(no nbgrader cell metadata: was it re-created or saved by a tool that drops metadata?)")
        )
    return nb


# --------------------------------------------------------------------------- matching and restoring


@dataclass
class Prepared:
    run_nb: NotebookNode
    run_index: dict[str, int]  # graded grade_id -> index of its cell in run_nb
    tampered: dict[str, list[str]]  # graded grade_id -> reasons
    notes: list[str]  # other observations for the feedback


def _checksum(cell: NotebookNode) -> str | None:
    try:
        return compute_checksum(cell)
    except Exception:  # noqa: BLE001 - malformed metadata counts as a change
        return None


def _describe_change(student: NotebookNode, released: NotebookNode) -> str:
    if student.cell_type != released.cell_type:
        return f"its type was changed to {student.cell_type}"
    if student.source != released.source:
        return "its source was edited"
    return "its nbgrader metadata (locked, grade, points or id) was changed"


def prepare(source: SourceNotebook, submission: NotebookNode) -> Prepared:
    """Build the notebook to run and list the tampering found (see the module docstring)."""
    # the learner's cells, matched by grade_id (first occurrence); the rest are extra cells
    matched: dict[str, NotebookNode] = {}
    extras_after: dict[str | None, list[NotebookNode]] = {}
    anchor: str | None = None
    for cell in submission.cells:
        gid = grade_id(cell)
        if gid in source.released and gid not in matched:
            matched[gid] = cell
            anchor = gid
            continue
        extra = copy.deepcopy(cell)
        extra.metadata.pop("nbgrader", None)  # a copied cell's id must not count as the original's
        if extra.cell_type == "code":
            extra.outputs, extra.execution_count = [], None
        extras_after.setdefault(anchor, []).append(extra)

    graded_ids = [g.grade_id for g in source.graded]
    tampered: dict[str, list[str]] = {gid: [] for gid in graded_ids}
    notes: list[str] = []
    cells: list[NotebookNode] = [*extras_after.get(None, [])]
    run_index: dict[str, int] = {}
    for position, src in enumerate(source.nb.cells):
        gid = grade_id(src)
        if gid is None:  # an unmarked cell in the source: part of the notebook as given
            cells.append(copy.deepcopy(src))
            cells[-1].metadata["course_source"] = True  # not the learner's (course_lib.grading.ownwork)
            continue
        released = source.released[gid]
        mine = matched.get(gid)
        if is_solution(src):
            if mine is None:
                cell = copy.deepcopy(released)
                notes.append(f"the answer cell {gid!r} was missing; the empty template was run instead")
            else:
                cell = copy.deepcopy(released)
                cell.source = mine.source  # the learner's answer, as written
        else:
            cell = copy.deepcopy(src)  # locked: the source's version, hidden tests included
            if is_locked(src):
                problem = None
                if mine is None:
                    problem = f"the locked cell {gid!r} was deleted; it was restored from the source"
                elif _checksum(mine) not in (_checksum(released), _checksum(src)):  # src: the full cell, hidden tests included
                    problem = f"the locked cell {gid!r} was modified ({_describe_change(mine, released)}); it was restored from the source"
                if problem:
                    if is_grade(src):
                        tampered[gid].append(problem)
                    elif src.cell_type == "code":
                        # a locked set-up cell: every graded cell after it ran on the restored version
                        for g in graded_ids[_graded_before(source, position):]:
                            tampered[g].append(problem)
                    else:
                        notes.append(problem)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if is_grade(src):
            cell.source = PREFIX.format(grade_id=gid) + "\n" + cell.source
            run_index[gid] = len(cells)
            cells.append(cell)
            end = nbformat.v4.new_code_cell(END_CELL, metadata={GRADER_TAG: "end"})
            cells.append(end)
        else:
            cells.append(cell)
        cells.extend(extras_after.get(gid, []))

    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i}"  # unique ids, whatever the learner's copies carried (before nbformat validates)
    run_nb = nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(source.nb.metadata))
    return Prepared(run_nb, run_index, {g: r for g, r in tampered.items() if r}, notes)


def _graded_before(source: SourceNotebook, position: int) -> int:
    """How many graded cells come before cell ``position`` of the source."""
    return sum(1 for cell in source.nb.cells[:position] if is_grade(cell))


def strip_for_feedback(cell_source: str) -> str:
    """A graded cell's source as the learner may see it: no grader prefix, no hidden tests."""
    lines = cell_source.split("\n")
    if lines and lines[0].startswith("import course_lib.grading.recorder as __r; __r.begin("):
        lines = lines[1:]
    cell = nbformat.v4.new_code_cell("\n".join(lines))
    ClearHiddenTests(enforce_metadata=False)._remove_hidden_test_region(cell)
    return cell.source


# --------------------------------------------------------------------------- what a learner is told about errors


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_FRAME = re.compile(r"^\s*Cell In\[(\d+)\], line (\d+)(?:, in (\S+))?")
_ARROW = re.compile(r"^-+> ?(\d+)(?: (.*))?$")
_CARET = re.compile(r"^\s*[\^~]+\s*$")
_SYNTAX = ("SyntaxError", "IndentationError", "TabError")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def traceback_lines(output: dict) -> list[str]:
    """The lines of an error output's traceback (nbformat ``error``), without terminal colours."""
    return strip_ansi("\n".join(str(t) for t in output.get("traceback", []) or [])).splitlines()


def error_details(output: dict, count: int | None) -> dict:
    """Where an error output (nbformat ``error``) points in its own cell: line number, the line, a caret.

    ``count`` is the cell's execution count (IPython names the cell ``Cell In[count]`` in
    tracebacks). For a syntax error IPython prints the line and a caret under the fault;
    for an exception, the deepest frame in this cell (``----> L code``) is taken. Returns
    ``{}`` when the traceback names no line of this cell.
    """
    lines = traceback_lines(output)
    ename = str(output.get("ename", ""))
    found: dict = {}
    for i, line in enumerate(lines):
        frame = _FRAME.match(line)
        if not frame or (count is not None and int(frame.group(1)) != count):
            continue
        found = {"line": int(frame.group(2))}
        if ename in _SYNTAX:
            rest = lines[i + 1 : i + 3]
            if rest and not rest[0].startswith(ename):
                found["code"] = rest[0].rstrip()
                if len(rest) > 1 and _CARET.match(rest[1]):
                    found["caret"] = rest[1].rstrip()
        else:
            for follow in lines[i + 1 :]:
                if _FRAME.match(follow):
                    break
                arrow = _ARROW.match(follow.strip())
                if arrow:
                    found["code"] = (arrow.group(2) or "").rstrip()
                    break
    return found


def clean_evalue(ename: str, evalue: str) -> str:
    """An exception's message without the file name IPython gives a cell (``'(' was never closed (123.py, line 3)``)."""
    if ename in _SYNTAX:
        return re.sub(r"\s*\([^()]*, line \d+\)$", "", evalue)
    return evalue


def cell_roles(run_nb: NotebookNode, run_index: dict[str, int]) -> dict[int, tuple[str, str]]:
    """For each cell of the notebook that ran: (role, description). Roles: answer, extra, test, locked, grader."""
    graded = {i: gid for gid, i in run_index.items()}
    roles: dict[int, tuple[str, str]] = {}
    last_gid: str | None = None
    for i, cell in enumerate(run_nb.cells):
        gid = grade_id(cell)
        if cell.get("metadata", {}).get(GRADER_TAG):
            roles[i] = ("grader", "a cell the grader added")
        elif i in graded:
            roles[i] = ("test", f"the test cell {graded[i]!r}")
        elif gid is not None and is_solution(cell):
            roles[i] = ("answer", f"the answer cell {gid!r}")
        elif gid is None and not cell.get("metadata", {}).get("course_source"):
            roles[i] = ("extra", "a cell you added" + (f" (after {last_gid!r})" if last_gid else " (at the top)"))
        else:
            roles[i] = ("locked", f"the cell {gid!r}" if gid else "a cell of the notebook")
        if gid is not None:
            last_gid = gid
    return roles


def defines(source: str, name: str) -> bool:
    """Whether ``source`` (which may not parse) plainly defines or imports ``name``."""
    n = re.escape(name)
    return bool(re.search(rf"^\s*(?:async\s+)?def\s+{n}\b|^\s*class\s+{n}\b|^\s*{n}\s*(?::[^=]*)?=[^=]|^\s*(?:from\s+\S+\s+)?import\b.*\b{n}\b",
                          source, re.MULTILINE))


def solution_content(nb: NotebookNode, source: SourceNotebook) -> list[str]:
    """Why ``nb`` looks like the solutions rather than a learner's work (empty list: it does not).

    Read, never run: nbgrader's ``### BEGIN SOLUTION`` / ``### BEGIN HIDDEN TESTS`` markers, and
    answer cells identical to the source's solution (markers removed, whitespace ignored). A
    blank answer (the released cell, or only the stub ``# YOUR CODE HERE`` /
    ``raise NotImplementedError()``) never counts, whatever the layout of the cell; nor does
    any answer when the source is a released exercise (``load_released``: no solutions in it).
    """
    solutions, blanks = {}, {}
    for cell in source.nb.cells:
        if is_solution(cell) and (gid := grade_id(cell)) and source.hidden_tests:
            body = "\n".join(l for l in cell.source.split("\n") if "### BEGIN SOLUTION" not in l and "### END SOLUTION" not in l)
            solutions[gid] = " ".join(body.split())
            blanks[gid] = " ".join(source.released[gid].source.split()) if gid in source.released else ""
    marked, hidden, same = [], [], []
    for cell in nb.get("cells", []):
        text = cell.get("source", "")
        text = "".join(text) if isinstance(text, list) else str(text)
        gid = grade_id(cell) or "?"
        mine = " ".join(text.split())
        if "### BEGIN SOLUTION" in text:
            marked.append(gid)
        elif gid in solutions and solutions[gid] and mine == solutions[gid] and mine != blanks[gid] and not is_stub(text):
            same.append(gid)
        if "### BEGIN HIDDEN TESTS" in text:
            hidden.append(gid)
    reasons = []
    if marked:
        reasons.append(f"'### BEGIN SOLUTION' markers in {len(marked)} cell(s): {', '.join(marked)}")
    if same:
        reasons.append(f"{len(same)} answer cell(s) identical to the course's solution: {', '.join(same)}")
    if hidden:
        reasons.append(f"the hidden tests in {len(hidden)} test cell(s): {', '.join(hidden)}")
    return reasons


#: what nbgrader's ClearSolutions leaves in an answer (its default code and text stubs)
STUB_LINES = ("# YOUR CODE HERE", "raise NotImplementedError()", "raise NotImplementedError", "YOUR ANSWER HERE")


def is_stub(text: str) -> bool:
    """Whether an answer holds nothing but nbgrader's stub lines (and blank lines): an unanswered cell."""
    return all(line.strip() in STUB_LINES or not line.strip() for line in text.split("\n"))


_RAISED_HERE = "Your code raised an error here:"
_PY_FRAME = re.compile(r'^\s*File "[^"]*", line (\d+), in (\S+)\s*$')


def learner_frame(output: dict) -> dict:
    """The deepest frame of the learner's code in a failed check's short traceback (course_lib.checks._core).

    A check that calls the learner's function turns its exception into ``CheckFailed``, whose
    traceback lists only the learner's own frames after "Your code raised an error here:".
    Returns ``{"function", "line", "code"}`` of the last of them, or ``{}``.
    """
    lines = traceback_lines(output)
    if _RAISED_HERE not in lines:
        return {}
    found: dict = {}
    for i, line in enumerate(lines[lines.index(_RAISED_HERE) + 1 :], start=lines.index(_RAISED_HERE) + 1):
        frame = _PY_FRAME.match(line)
        if frame:
            code = lines[i + 1].strip() if i + 1 < len(lines) and not _PY_FRAME.match(lines[i + 1]) else ""
            found = {"function": frame.group(2), "line": int(frame.group(1)), "code": code}
        elif line and not line.startswith(" "):  # the exception's own line: the frames are over
            break
    return found
