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
