"""The house: course_lib's imports run one way, with no cycle, and a learner never loads the book's build.

Layers, lowest first (``LAYERS``): the base (files, the runtime flag, the npm catalogue, data),
the concepts, the models trained on them, the checks, the grader, the command line. A module
may import its own layer or a lower one. The book's build (``course_lib.book``) stands beside
them: it may import the base, the concepts and the models, and nothing outside it imports it.
Every ``import`` counts, at module level or inside a function: a lazy import is still a tie
(except a module's import of its own ancestor package, which Python imports first anyway).
"""

from __future__ import annotations

import ast
import json
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LIB = ROOT / "course_lib"

#: (layer name, module prefixes), lowest first
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("course_lib", "course_lib.files", "course_lib.runtime", "course_lib.assets", "course_lib.extras",
              "course_lib.source", "course_lib.data")),
    ("concepts", ("course_lib.attention", "course_lib.masks", "course_lib.positional", "course_lib.seq2seq",
                  "course_lib.transformer", "course_lib.bert", "course_lib.train", "course_lib.tokenization",
                  "course_lib.demo_inputs", "course_lib.plotting", "course_lib.viz", "course_lib.explorers",
                  "course_lib.search", "course_lib.ood")),
    ("models", ("course_lib.toy_models", "course_lib.pretrain", "course_lib.pretrained")),
    ("checks", ("course_lib.checks",)),
    ("grading", ("course_lib.grading",)),
    ("cli", ("course_lib.cli",)),
]
BOOK = "course_lib.book"
BOOK_MAY_IMPORT = ("base", "concepts", "models")


def module_name(path: pathlib.Path, lib: pathlib.Path) -> str:
    parts = list(path.relative_to(lib.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(lib: pathlib.Path = LIB) -> dict[str, set[str]]:
    """module -> the course_lib modules it imports (anywhere in its body), resolved to modules that exist."""
    files = {module_name(p, lib): p for p in lib.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for t in targets:
                while t and t not in files:  # `from course_lib.x import name`: the module is course_lib.x
                    t = t.rpartition(".")[0]
                # a module's own ancestor packages are imported before it anyway: not a tie
                if t and t != name and t.startswith(lib.name) and not name.startswith(t + "."):
                    deps.add(t)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer_of(module: str) -> str:
    if module == BOOK or module.startswith(BOOK + "."):
        return "book"
    best, best_len = None, -1
    for layer, prefixes in LAYERS:
        for p in prefixes:
            # the package itself matches only exactly: a new top-level module must be placed in a layer
            if (module == p or (p != "course_lib" and module.startswith(p + "."))) and len(p) > best_len:
                best, best_len = layer, len(p)
    if best is None:
        raise AssertionError(f"{module} is in no layer of tests/test_package_layout.py: add it to LAYERS")
    return best


def wrong_way(graph: dict[str, set[str]]) -> list[str]:
    rank = {layer: i for i, (layer, _) in enumerate(LAYERS)}
    problems = []
    for module, deps in sorted(graph.items()):
        mine = layer_of(module)
        for dep in sorted(deps):
            theirs = layer_of(dep)
            if mine == "book":
                ok = theirs == "book" or theirs in BOOK_MAY_IMPORT
            elif theirs == "book":
                ok = False  # nothing outside the book imports it
            else:
                ok = rank[theirs] <= rank[mine]
            if not ok:
                problems.append(f"{module} ({mine}) imports {dep} ({theirs})")
    return problems


def test_course_lib_has_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles in course_lib: " + "; ".join(" <-> ".join(c) for c in found)


def test_course_lib_imports_point_down_only():
    problems = wrong_way(import_graph())
    assert not problems, "imports against the layers (concepts <- models <- checks <- grading <- cli, book beside):\n" + \
        "\n".join(problems)


def _planted_copy(tmp_path: pathlib.Path, module: str, line: str) -> pathlib.Path:
    lib = tmp_path / "course_lib"
    shutil.copytree(LIB, lib, ignore=shutil.ignore_patterns("__pycache__", "*.txt", "*.js", "*.css", "*.json"))
    target = lib / (module.replace(".", "/").removeprefix("course_lib/") + ".py")
    target.write_text(target.read_text(encoding="utf-8") + f"\n\ndef _planted():\n    {line}\n", encoding="utf-8")
    return lib


def test_the_cycle_test_catches_a_planted_cycle(tmp_path):
    lib = _planted_copy(tmp_path, "course_lib.grading.gradebook", "from course_lib.grading import grader")
    assert ["course_lib.grading.gradebook", "course_lib.grading.grader"] in cycles(import_graph(lib))


@pytest.mark.parametrize("module, line, expected", [
    ("course_lib.checks._core", "from course_lib.grading import recorder", "course_lib.checks._core (checks) imports course_lib.grading.recorder"),
    ("course_lib.attention", "from course_lib.book import demos", "course_lib.attention (concepts) imports course_lib.book.demos"),
    ("course_lib.grading.feedback", "from course_lib.book.assets import stage", "course_lib.grading.feedback (grading) imports course_lib.book.assets"),
    ("course_lib.book.demos", "from course_lib.checks import get_check", "course_lib.book.demos (book) imports course_lib.checks"),
    ("course_lib.masks", "import course_lib.toy_models", "course_lib.masks (concepts) imports course_lib.toy_models"),
])
def test_the_direction_test_catches_a_planted_import(tmp_path, module, line, expected):
    problems = wrong_way(import_graph(_planted_copy(tmp_path, module, line)))
    assert any(p.startswith(expected) for p in problems), problems


def _import_statements(notebook: pathlib.Path) -> str:
    """Every top-level import statement of the chapter's code cells, in order (imports inside `if` stay out)."""
    lines = []
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        try:
            tree = ast.parse(source)
        except SyntaxError:  # IPython magics: not imports
            continue
        lines += [ast.get_source_segment(source, n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    return "\n".join(lines)


def test_a_learner_never_imports_the_books_build(tmp_path):
    """`import course_lib`, then every chapter's imports in a live kernel: no course_lib.book module is loaded."""
    chapters = sorted((ROOT / "chapters").glob("*.ipynb"))
    assert len(chapters) >= 9
    script = ["import sys, os", "os.environ.pop('COURSE_BOOK_BUILD', None)", "import course_lib",
              "def book(): return sorted(m for m in sys.modules if m == 'course_lib.book' or m.startswith('course_lib.book.'))",
              "print('course_lib', book())"]
    for nb in chapters:
        script += [_import_statements(nb), f"print({nb.stem!r}, book())"]
    out = subprocess.run([sys.executable, "-c", "\n".join(script)], capture_output=True, text=True, cwd=ROOT / "chapters",
                         timeout=600, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                           "MPLBACKEND": "Agg", "TOKENIZERS_PARALLELISM": "false"})
    assert out.returncode == 0, out.stderr[-3000:]
    seen = [line.split(" ", 1) for line in out.stdout.splitlines() if line.strip()]
    assert [name for name, _ in seen] == ["course_lib"] + [nb.stem for nb in chapters], out.stdout
    loaded = {name: modules for name, modules in seen if modules != "[]"}
    assert not loaded, f"the book's build machinery was imported: {loaded}"
