"""Repository hygiene: notebooks without outputs, the book's table of contents complete."""

import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for d in ("chapters", "exercises", "solutions") for p in (ROOT / d).rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.relative_to(ROOT)}: cells {dirty} have outputs; clear them (the book executes notebooks)"


def test_toc_lists_every_chapter_notebook():
    toc = (ROOT / "_toc.yml").read_text()
    for nb in sorted((ROOT / "chapters").glob("*.ipynb")):
        assert f"chapters/{nb.stem}" in toc, f"{nb.name} is not in _toc.yml"
    for part in ("seq2seq", "query_key_value", "scaled_dot_product", "multi_head", "positional", "masking", "transformer", "bert"):
        assert part in toc, f"the table of contents misses the {part} chapter"


def test_chapter_notebooks_exist_for_the_toc():
    import re

    toc = (ROOT / "_toc.yml").read_text()
    for entry in re.findall(r"file:\s*(\S+)", toc):
        assert any((ROOT / (entry + ext)).exists() for ext in (".ipynb", ".md")), f"_toc.yml names {entry}, which does not exist"


# ------------------------------------------------------------------ the learner's core (issue 14, item 5)

EXTRA_PACKAGES = ["bertviz", "pandas", "nbformat", "nbgrader", "nbclient", "nbconvert", "jupyter_client", "sphinx", "myst_nb"]
LEARNER_MODULES = [
    "course_lib.attention", "course_lib.masks", "course_lib.positional", "course_lib.seq2seq", "course_lib.transformer",
    "course_lib.bert", "course_lib.tokenization", "course_lib.train", "course_lib.plotting", "course_lib.viz",
    "course_lib.data.dates", "course_lib.data.corpus", "course_lib.data.synthetic", "course_lib.toy_models",
    "course_lib.pretrain", "course_lib.checks",
]  # fmt: skip


def _without_extras(code: str) -> "subprocess.CompletedProcess":
    import subprocess
    import sys

    hide = f"import sys\nfor m in {EXTRA_PACKAGES!r}:\n    sys.modules[m] = None  # as if not installed\n"
    return subprocess.run([sys.executable, "-c", hide + code], capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_learner_modules_and_checks_import_with_the_core_alone():
    """What learners import (course_lib's modules, every exercise check) needs only the core dependencies."""
    code = (
        "import importlib, pkgutil\n"
        f"for m in {LEARNER_MODULES!r}:\n    importlib.import_module(m)\n"
        "import course_lib.checks as c\n"
        "for m in pkgutil.iter_modules(c.__path__):\n    importlib.import_module('course_lib.checks.' + m.name)\n"
    )
    result = _without_extras(code)
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_missing_extra_is_named():
    result = _without_extras("from course_lib.viz import _bertviz_js\n_bertviz_js('head_view')")
    assert "bertviz is not installed" in result.stderr and "course_lib[chapters]" in result.stderr, result.stderr[-2000:]
    result = _without_extras("import course_lib.cli")
    assert result.returncode != 0 and "course_lib[grade]" in result.stderr, result.stderr[-2000:]


def test_core_dependencies_stay_light():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"]).lower()
    for heavy in ("nbgrader", "jupyter-book", "pytest", "playwright", "onnx", "bertviz", "pandas"):
        assert heavy not in core, f"{heavy} belongs in an extra, not in the learners' core"
    assert "torch>=" in core and "torch==" not in core, "the core asks for a torch range (Colab keeps its own); the Makefile pins"
    extras = project["optional-dependencies"]
    assert {"chapters", "book", "grade", "test"} <= set(extras)
    assert "nbgrader" in " ".join(extras["grade"]) and "jupyter-book" in " ".join(extras["book"]).lower()


def test_nbgrader_instructor_tools_are_off_in_this_environment():
    """nbgrader turns on Formgrader, Create assignment, Validate ... in JupyterLab when installed;
    the Makefile turns them off in .venv (a learner's JupyterLab shows none of them)."""
    import sys

    pytest.importorskip("nbgrader")
    from jupyter_server.config_manager import BaseJSONConfigManager

    etc = pathlib.Path(sys.prefix, "etc", "jupyter")
    server = BaseJSONConfigManager(config_dir=str(etc), read_directory=True).get("jupyter_server_config")
    enabled = {k: v for k, v in server.get("ServerApp", {}).get("jpserver_extensions", {}).items() if k.startswith("nbgrader") and v}
    assert not enabled, f"nbgrader server extensions still enabled in {etc}: {sorted(enabled)}; run `make lab` or `make test`"
    page = json.loads((etc / "labconfig" / "page_config.json").read_text()) if (etc / "labconfig" / "page_config.json").exists() else {}
    assert page.get("disabledExtensions", {}).get("@jupyter/nbgrader"), "nbgrader's JupyterLab extension is not disabled"
