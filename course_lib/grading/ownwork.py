"""Is each answer the learner's own? A static look at the cells the learner wrote.

The sandbox already withholds the assignment's references and every check's
``verify`` (``course_lib.grading.libview``), so a copied answer fails there with
an error naming the withheld reference. This check reads the learner's cells
(answer cells and cells they added) before anything runs and names, for the
instructor to review, what is plainly not the learner's work:

- importing or calling course_lib's reference for a part of this assignment
  (``from course_lib.attention import scaled_dot_product_attention``);
- reaching into the check machinery: anything from ``course_lib.checks`` but its
  ``check_*`` functions (answer keys, reference helpers, ``Check``, ``REGISTRY``),
  or the grader's recorder (``course_lib.grading``).

A finding in a cell applies to the graded parts that cell answers (those after it,
up to the next answer cell); a finding about the check machinery applies to every
part of the notebook. The parts get status ``not_own_work`` and 0 points.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from nbgrader.utils import is_grade, is_solution

_MACHINERY = {"Check", "REGISTRY", "get_check", "recorder", "CheckFailed", "set_output_hook", "_output_hook"}


@dataclass(frozen=True)
class Finding:
    cell: str  # how the cell is named in messages
    line: int
    text: str
    why: str
    everywhere: bool  # applies to every part, not only the cell's own


def _line(source: str, lineno: int) -> str:
    lines = source.split("\n")
    return lines[lineno - 1].strip()[:120] if 0 < lineno <= len(lines) else ""


#: a cell longer than this is not parsed whole (parsing costs time and memory that grow with it, outside
#: the sandbox): only its import lines are, one by one
MAX_PARSED_CHARS = 100_000
_IMPORT_LINE = re.compile(r"^[ \t]*(?:from[ \t]+\S+[ \t]+)?import[ \t].*$", re.MULTILINE)


def _parse(source: str) -> ast.AST | None:
    """The cell's syntax tree; for a cell too long or too nested to parse within bounds, a tree of its import lines."""
    if len(source) <= MAX_PARSED_CHARS:
        try:
            return ast.parse(source)
        except SyntaxError:
            return None  # the kernel reports it
        except (RecursionError, MemoryError, ValueError):  # e.g. 100,000 nested unary minus signs
            pass
    body: list[ast.stmt] = []
    for match in _IMPORT_LINE.finditer(source):
        line = match.group(0).strip()[:1000]
        try:
            stmts = ast.parse(line).body
        except (SyntaxError, RecursionError, MemoryError, ValueError):
            continue
        lineno = source.count("\n", 0, match.start()) + 1
        for node in ast.walk(ast.Module(body=stmts, type_ignores=[])):
            if hasattr(node, "lineno"):
                node.lineno = lineno
        body += stmts
    return ast.Module(body=body, type_ignores=[])


def findings_in(source: str, cell_name: str, refs: list[tuple[str, str]]) -> list[Finding]:
    tree = _parse(source)
    if tree is None:
        return []
    ref_modules = {m for m, _ in refs}
    ref_names = {n for _, n in refs}
    aliases: dict[str, str] = {}  # local name -> the course_lib module it stands for
    out: list[Finding] = []

    def add(node, why, everywhere=False):
        out.append(Finding(cell_name, node.lineno, _line(source, node.lineno), why, everywhere))

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            mod = node.module
            if mod.startswith("course_lib.grading") or (mod == "course_lib" and any(a.name == "grading" for a in node.names)):
                add(node, "imports the grader (course_lib.grading)", True)
            elif mod.startswith("course_lib.checks"):
                bad = [a.name for a in node.names if not a.name.startswith("check_")]
                if bad:
                    add(node, f"imports {', '.join(bad)} from the checks: only check_* functions are for learners", True)
            elif mod in ref_modules:
                for a in node.names:
                    if a.name in ref_names and (mod, a.name) in refs:
                        add(node, f"uses {mod}.{a.name}, course_lib's reference for this part")
                    elif a.name == "*":
                        add(node, f"imports * from {mod}, which holds a reference for this part")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("course_lib.grading"):
                    add(node, "imports the grader (course_lib.grading)", True)
                elif a.name.startswith("course_lib.checks.") and a.name.split(".")[2].startswith("_"):
                    add(node, "imports the check machinery (course_lib.checks._core)", True)
                elif a.name in ref_modules:
                    aliases[a.asname or a.name] = a.name
        elif isinstance(node, ast.Attribute):
            chain, base = [node.attr], node.value
            while isinstance(base, ast.Attribute):
                chain.append(base.attr)
                base = base.value
            if isinstance(base, ast.Name):
                dotted = ".".join([base.id, *reversed(chain)])
                head = aliases.get(base.id, base.id)
                full = ".".join([head, *reversed(chain)])
                if any(full == f"{m}.{n}" or full.startswith(f"{m}.{n}.") for m, n in refs):
                    add(node, f"uses {full.split('.')[0]}...{node.attr}: course_lib's reference for this part")
                elif ("checks" in chain or base.id == "checks") and (node.attr in _MACHINERY or node.attr.startswith("_")
                                                                    or node.attr == "__call__"):
                    add(node, f"reaches into the check machinery ({dotted})", True)
                elif node.attr == "__call__" and "Check" in dotted:
                    add(node, f"patches the checks ({dotted})", True)
        elif isinstance(node, ast.Name) and node.id in ("__r",):
            add(node, "uses the grader's recorder (__r)", True)
    # one finding per (line, why)
    seen, unique = set(), []
    for f in out:
        if (f.line, f.why) not in seen:
            seen.add((f.line, f.why))
            unique.append(f)
    return unique


def check_notebook(run_cells: list, graded_ids: list[str], refs: list[tuple[str, str]]) -> dict[str, list[Finding]]:
    """grade_id -> findings, from the cells the learner wrote in the notebook that runs.

    ``run_cells``: the prepared notebook's cells; learner cells are the answer cells
    (nbgrader ``solution``) and cells without nbgrader metadata that the grader did
    not add (the learner's extra cells).
    """
    from course_lib.grading.notebooks import GRADER_TAG, grade_id

    per_part: dict[str, list[Finding]] = {g: [] for g in graded_ids}
    pending: list[Finding] = []  # findings of cells whose parts come later
    consumed = 0  # pending[:consumed] already went to a graded part
    for cell in run_cells:
        if cell.cell_type != "code":
            continue
        gid = grade_id(cell)
        meta = cell.get("metadata", {})
        if gid in per_part and is_grade(cell):
            per_part[gid] += pending
            consumed = len(pending)
            continue
        learner = is_solution(cell) if gid else not (meta.get(GRADER_TAG) or meta.get("course_source"))
        if not learner:
            continue
        if gid and is_solution(cell):
            pending, consumed = pending[consumed:], 0  # a new answer cell starts a new part
        found = findings_in(cell.source, gid or "a cell you added", refs)
        for f in found:
            if f.everywhere:
                for g in per_part:
                    per_part[g].append(f)
        pending += [f for f in found if not f.everywhere]
    return {g: _dedupe(fs) for g, fs in per_part.items() if fs}


def _dedupe(fs: list[Finding]) -> list[Finding]:
    seen, out = set(), []
    for f in fs:
        key = (f.cell, f.line, f.why)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def message(findings: list[Finding]) -> str:
    parts = [f"{f.cell!r} line {f.line} `{f.text}` {f.why}" for f in findings[:4]]
    more = f" (and {len(findings) - 4} more)" if len(findings) > 4 else ""
    return ("not graded as the learner's own work (0 points; for the instructor to review): "
            + "; ".join(parts) + more)


# --------------------------------------------------------------------------- notes for review (no penalty)

#: library implementations of the course's concepts: (dotted-name suffix, what it is). An answer using one
#: scores what its outputs earn (an output-based grader cannot tell it from the learner's own), but the
#: instructor is told, in the gradebook's message and summary.csv's notes.
LIBRARY_IMPLEMENTATIONS = (
    ("scaled_dot_product_attention", "torch's fused attention (torch.nn.functional.scaled_dot_product_attention)"),
    ("multi_head_attention_forward", "torch's multi-head attention (F.multi_head_attention_forward)"),
    ("MultiheadAttention", "torch's multi-head attention module (nn.MultiheadAttention)"),
    ("TransformerEncoderLayer", "torch's Transformer layer (nn.TransformerEncoderLayer)"),
    ("TransformerDecoderLayer", "torch's Transformer layer (nn.TransformerDecoderLayer)"),
    ("Transformer", "torch's Transformer (nn.Transformer)"),
)
_TORCH_ROOTS = ("torch", "nn", "F", "functional")


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def library_notes(run_cells: list, solution_cells: list = ()) -> list[str]:
    """What the learner's cells take from a library that implements the exercise's concept, one line each.

    torch's fused or multi-head attention (``F.scaled_dot_product_attention``, ``nn.MultiheadAttention``,
    ``F.multi_head_attention_forward``, ``nn.Transformer*``) and anything from ``transformers`` (its
    ``Bert*`` modules...). Read, never run, like ``check_notebook``; bounded the same way (``_parse``).
    What the source's own solution of that answer cell uses is the exercise (chapter 4 converts to
    ``nn.MultiheadAttention``): ``solution_cells`` (the source notebook's cells) are not flagged.
    """
    expected = {(where, found) for where, _, found in _library_uses(solution_cells)}
    notes: list[str] = []
    for where, line, found in _library_uses(run_cells):
        note = f"{where!r} line {line}: {found}"
        if (where, found) not in expected and note not in notes:
            notes.append(note)
    return notes


def _library_uses(cells: list) -> list[tuple[str, int, str]]:
    from course_lib.grading.notebooks import GRADER_TAG, grade_id

    notes: list[tuple[str, int, str]] = []
    for cell in cells:
        if cell.cell_type != "code":
            continue
        meta = cell.get("metadata", {})
        gid = grade_id(cell)
        if not (is_solution(cell) if gid else not (meta.get(GRADER_TAG) or meta.get("course_source"))):
            continue  # locked cells are the course's; only what the learner wrote
        tree = _parse(cell.source)
        if tree is None:
            continue
        where = gid or "a cell you added"
        for node in ast.walk(tree):
            found = None
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "transformers":
                found = f"imports {', '.join(a.name for a in node.names)[:80]} from transformers (a library implementation)"
            elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == "transformers" for a in node.names):
                found = "imports transformers (a library implementation)"
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "torch":
                names = [a.name for a in node.names if any(a.name == s for s, _ in LIBRARY_IMPLEMENTATIONS)]
                if names:
                    found = "imports " + ", ".join(dict(LIBRARY_IMPLEMENTATIONS)[n] for n in names)
            elif isinstance(node, ast.Attribute):
                dotted = _dotted(node)
                head = dotted.split(".")[0]
                for suffix, what in LIBRARY_IMPLEMENTATIONS:
                    if node.attr == suffix and (head in _TORCH_ROOTS or head == "transformers"):
                        found = f"uses {what}"
                        break
                else:
                    if head == "transformers" or node.attr.startswith("Bert") and head in ("transformers", "models"):
                        found = f"uses {dotted[:80]} from transformers (a library implementation)"
            if found:
                notes.append((where, getattr(node, "lineno", 0), found))
    return notes
