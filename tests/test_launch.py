"""Launch buttons: the repository URL is one setting, every chapter's install cell follows it,
and Binder installs the pinned CPU build of torch (course_lib/book/launch.py)."""

import re

import nbformat
import pytest

from course_lib.book import launch
from course_lib.book.timing import ROOT

CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))


def _pyproject_torch_pin() -> str:
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(r"torch==([0-9][0-9.]*)", makefile)
    assert match, "the Makefile pins torch==X.Y.Z"
    return match.group(1)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_starts_with_the_install_cell(path):
    nb = nbformat.read(path, as_version=4)
    index = launch.install_cell_index(nb.cells)
    assert index == 1, f"{path.name}: the install cell (tag {launch.INSTALL_TAG!r}) must follow the title, found at {index}"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), f"{path.name}: cell 0 is the title"
    cell = nb.cells[index]
    assert cell.source == launch.install_cell_source(launch.repository_url()), (
        f"{path.name}: the install cell does not match _config.yml's repository.url; run "
        "`python -m course_lib.book.launch <url>`"
    )
    assert "remove-cell" in cell.metadata.get("tags", []), "the book does not show the install cell"


def test_install_cell_installs_the_learner_set_only():
    source = launch.install_cell_source("https://example.org/r")
    assert "import course_lib" in source and "except ImportError" in source, "a no-op where course_lib is installed"
    assert '"course_lib[chapters] @ git+https://example.org/r"' in source
    for toolchain in ("book", "grade", "test", "jupyter-book", "nbgrader", "torch"):
        assert f"[{toolchain}" not in source and f" {toolchain}" not in source.split("%pip", 1)[1]


def test_set_repository_rewrites_config_and_cells(tmp_path):
    config = tmp_path / "_config.yml"
    config.write_text((ROOT / "_config.yml").read_text())
    chapters = tmp_path / "chapters"
    chapters.mkdir()
    for path in CHAPTERS[:2]:
        (chapters / path.name).write_text(path.read_text())
    url = "https://github.com/someone/their-fork"
    launch.set_repository(url, config, chapters)
    assert launch.repository_url(config) == url
    assert config.read_text().count(url) == 1
    for path in chapters.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        assert nb.cells[launch.install_cell_index(nb.cells)].source == launch.install_cell_source(url)
        assert sum(launch.INSTALL_TAG in c.metadata.get("tags", []) for c in nb.cells) == 1, "one install cell, replaced"


def test_set_repository_refuses_a_non_url():
    with pytest.raises(ValueError, match="expected a repository URL"):
        launch.set_repository("not a url")
    with pytest.raises(ValueError, match="expected a repository URL"):
        launch.set_repository('https://x/y" ; rm -rf ~ ; "')


def test_binder_pins_cpu_torch():
    env = (ROOT / "binder" / "environment.yml").read_text()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in env
    assert f"torch=={_pyproject_torch_pin()}+cpu" in env, "Binder pins the same torch as the Makefile, CPU build"
    post = (ROOT / "binder" / "postBuild").read_text()
    assert 'pip install --no-cache-dir -e ".[chapters]"' in post


def test_install_cell_checks_the_chapters_extra_where_course_lib_imports():
    """A venv with course_lib but without [chapters] (an old `make lab`): the cell installs the
    missing packages and says so, instead of doing nothing until `No module named 'pandas'`."""
    source = launch.install_cell_source("https://example.org/r")
    assert "else:" in source and 'install_missing("chapters")' in source
    assert "print(" in source.split("except ImportError", 1)[1], "Colab's install says what it installs"


def test_install_missing_installs_only_what_is_missing_and_says_so(monkeypatch, capsys):
    from course_lib import extras

    monkeypatch.setattr(extras, "extra_requirements", lambda extra: ["numpy", "course-no-such-package==1.0", "course_lib[x]"])
    assert extras.missing_requirements("chapters") == ["course-no-such-package==1.0"]
    ran = []

    class FakePip:
        def __init__(self, command, **kwargs):
            ran.append(command)
            self.stdout, self.returncode = iter(["Collecting course-no-such-package==1.0\n"]), 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr("subprocess.Popen", FakePip)
    assert extras.install_missing("chapters") == ["course-no-such-package==1.0"]
    assert ran and ran[0][1:4] == ["-m", "pip", "install"] and ran[0][-1] == "course-no-such-package==1.0"
    out = capsys.readouterr().out
    assert "installing what course_lib[chapters] needs" in out and "Collecting" in out and "installed:" in out


def test_the_chapters_extra_is_read_from_pyproject_in_a_clone():
    from course_lib import extras

    assert "pandas" in extras.extra_requirements("chapters") and "bertviz" in extras.extra_requirements("chapters")
