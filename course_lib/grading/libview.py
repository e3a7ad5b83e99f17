"""The course_lib a sandbox sees: a copy in which the assignment's references are withheld.

An answer must be the learner's own, so the kernel that runs a submission has no
copy of what the checks compare against (``build``):

- **the references of the assignment being graded**: every function, or
  ``nn.Module`` class, that its check module imports from another course_lib
  module (``from course_lib.attention import scaled_dot_product_attention as
  reference_sdpa``), unless one of the assignment's locked cells imports it too
  (a building block the exercise hands out, such as ``MultiHeadAttention`` in
  chapter 7) or the checks' ``run`` needs it in the sandbox (chapter 4's part (c)
  hands the course's ``MultiHeadAttention`` to the learner's converter). In the copy, its definition is replaced by a stub that raises
  ``WITHHELD``: neither the object nor its source text is in the sandbox.
- **every check's ``verify``** (all assignments): its body becomes a ``raise``,
  and module-level functions and constants that only ``verify`` used are removed
  (``_reference_entropy``, hint tables, answer keys). In the sandbox the checks
  only run the learner's code and record (``course_lib.grading.kernel``); the
  grader verifies outside, with the full course_lib.

``references`` lists the withheld names; the grader's static check of answer
cells (``course_lib.grading.ownwork``) uses the same list.
"""

from __future__ import annotations

import ast
import compileall
import importlib
import inspect
import shutil
from pathlib import Path

from course_lib.grading.release import ROOT

LIB = ROOT / "course_lib"
def imported_package() -> Path:
    """Where Python imports course_lib from (the checkout for an editable install, else site-packages):
    the sandbox binds its copy there, over everything else."""
    import course_lib

    return Path(course_lib.__file__).resolve().parent


#: the message of the stub that replaces a withheld reference (the grader looks for it)
WITHHELD = "is course_lib's reference for this assignment and is withheld while grading"


def _course_lib_imports(tree: ast.AST) -> list[tuple[str, str]]:
    """(module, name) for every ``from course_lib.X import name`` in ``tree`` (X not checks)."""
    return [(module, name) for module, name, _ in _course_lib_imports_as(tree)]


def _course_lib_imports_as(tree: ast.AST) -> list[tuple[str, str, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("course_lib."):
            if node.module.startswith(("course_lib.checks", "course_lib.grading")):
                continue
            found += [(node.module, a.name, a.asname or a.name) for a in node.names]
    return found


def _loads(nodes) -> set[str]:
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name)}


#: methods of a check that run in the grader, never in the sandbox (verify, and choosing inputs)
GRADER_METHODS = ("verify", "make_inputs", "vary_inputs", "mutation_cases")
#: class attributes only the grader's side reads: the reference as steps for the diagnosis by
#: mutation (``steps``), and the course's answer timed for the slow note (``reference``)
GRADER_ATTRIBUTES = ("steps", "reference")
#: calls that build the diagnosis engine's programs (``course_lib.checks._mutants``)
DIAGNOSIS_CALLS = ("Program", "step")


def _assigned_attributes(node: ast.AST) -> set[str]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
    return {t.attr for t in targets if isinstance(t, ast.Attribute)} | {t.id for t in targets if isinstance(t, ast.Name)}


def _grader_side(item: ast.AST) -> bool:
    """A class-body item the sandbox does not need: a grader-side method or attribute."""
    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return item.name in GRADER_METHODS
    return bool(_assigned_attributes(item) & set(GRADER_ATTRIBUTES))


def _diagnosis(node: ast.AST) -> bool:
    """A module-level statement that only serves the grader's diagnosis: ``Check.steps = ...``,
    ``Check.reference = ...``, or a value built with ``Program(...)`` / ``step(...)``."""
    if not isinstance(node, (ast.Assign, ast.AnnAssign, ast.Expr)):
        return False
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
    if any(isinstance(t, ast.Attribute) and t.attr in GRADER_ATTRIBUTES for t in targets):
        return True
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in DIAGNOSIS_CALLS
               for n in ast.walk(node))


def _run_side_names(tree: ast.Module) -> set[str]:
    """Names the sandbox needs: used by checks' ``run`` (and other methods but ``verify`` and
    ``make_inputs``, which run in the grader) or at module level, closed over module-level functions."""
    functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    roots: list[ast.AST] = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            roots += node.bases
            roots += [item for item in node.body if not _grader_side(item)]
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Import, ast.ImportFrom)) \
                and not _diagnosis(node):
            roots.append(node)
    used = _loads(roots)
    todo = [f for f in used if f in functions]
    while todo:
        name = todo.pop()
        for new in _loads([functions[name]]) - used:
            used.add(new)
            if new in functions:
                todo.append(new)
    return used


def _locked_imports(assignment: str, solutions_dir: Path) -> set[tuple[str, str]]:
    import nbformat

    allowed: set[tuple[str, str]] = set()
    for path in sorted((solutions_dir / assignment).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if cell.cell_type != "code" or meta.get("solution"):
                continue
            try:
                allowed |= set(_course_lib_imports(ast.parse(cell.source)))
            except SyntaxError:
                continue
    return allowed


def references(assignment: str, solutions_dir: Path | None = None, in_answers: bool = False) -> list[tuple[str, str]]:
    """The (module, name) pairs withheld from the sandbox when ``assignment`` is graded.

    ``in_answers``: also those the sandbox must keep for the checks' ``run``: an answer
    that imports them is still not the learner's own (``course_lib.grading.ownwork``).
    """
    from course_lib.grading.release import SOLUTIONS

    path = LIB / "checks" / f"{assignment}.py"
    if not path.is_file():
        return []
    allowed = _locked_imports(assignment, solutions_dir or SOLUTIONS)
    tree = ast.parse(path.read_text())
    needed = _run_side_names(tree)
    withheld = []
    for module, name, alias in _course_lib_imports_as(tree):
        if (module, name) in allowed or (module, name) in withheld or (alias in needed and not in_answers):
            continue
        obj = getattr(importlib.import_module(module), name, None)
        if inspect.isfunction(obj) or (inspect.isclass(obj) and _is_module_class(obj)):
            withheld.append((module, name))
    return withheld


def _is_module_class(cls) -> bool:
    import torch

    return issubclass(cls, torch.nn.Module)


def _stub(name: str, qualified: str, is_class: bool) -> list[ast.stmt]:
    message = f"{qualified} {WITHHELD}: write it yourself"
    if is_class:
        code = (
            f"class {name}(__import__('torch').nn.Module):\n"
            f"    def __init__(self, *args, **kwargs):\n"
            f"        raise RuntimeError({message!r})\n"
        )
    else:
        code = f"def {name}(*args, **kwargs):\n    raise RuntimeError({message!r})\n"
    return ast.parse(code).body


def _withhold(path: Path, module: str, names: set[str]) -> None:
    tree = ast.parse(path.read_text())
    body = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in names:
            body += _stub(node.name, f"{module}.{node.name}", isinstance(node, ast.ClassDef))
        else:
            body.append(node)
    tree.body = body
    path.write_text(ast.unparse(ast.fix_missing_locations(tree)) + "\n")


def _defined_names(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return [t.id for t in targets if isinstance(t, ast.Name)]
    return []


def _strip_verify(path: Path) -> None:
    """verify() bodies become a raise; then module-level defs nothing else uses are dropped."""
    tree = ast.parse(path.read_text())
    raise_stmt = ast.parse("raise RuntimeError('verified by the grader, outside the sandbox')").body
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            # the diagnosis by mutation and the slow note's reference are the grader's: not in the copy
            node.body = [item for item in node.body if not (_grader_side(item) and not isinstance(item, ast.FunctionDef))]
            node.body = [item for item in node.body
                         if not (isinstance(item, ast.FunctionDef) and item.name in ("mutation_cases",))] or [ast.Pass()]
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "verify":
                    item.body = list(raise_stmt)
    tree.body = [node for node in tree.body if not _diagnosis(node)]
    while True:
        used: dict[str, int] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                used[node.id] = used.get(node.id, 0) + 1
            elif isinstance(node, ast.Attribute):
                used[node.attr] = used.get(node.attr, 0) + 1
        keep = []
        for node in tree.body:
            names = _defined_names(node)
            if names and not any(n.startswith("check_") or n.startswith("__") or used.get(n) for n in names):
                continue  # defined here, used nowhere once verify() is gone
            keep.append(node)
        if len(keep) == len(tree.body):
            break
        tree.body = keep
    path.write_text(ast.unparse(ast.fix_missing_locations(tree)) + "\n")


def build(assignment: str, dest: Path, solutions_dir: Path | None = None) -> Path:
    """Write the sandbox's course_lib for ``assignment`` under ``dest``; return the package folder."""
    pkg = dest / "course_lib"
    shutil.copytree(LIB, pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    by_module: dict[str, set[str]] = {}
    for module, name in references(assignment, solutions_dir):
        by_module.setdefault(module, set()).add(name)
    for module, names in by_module.items():
        _withhold(pkg / (module.split(".", 1)[1].replace(".", "/") + ".py"), module, names)
    for check_module in sorted((pkg / "checks").glob("ch*.py")):
        _strip_verify(check_module)
    compileall.compile_dir(pkg, quiet=1, workers=1)
    for p in [pkg, *pkg.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return pkg
