"""Launch buttons (Colab, Binder): the repository URL and the chapters' install cell.

The repository URL is ONE setting, `repository.url` in _config.yml. The book's launch and
repository buttons read it, and so does the install cell at the top of every chapter (cell 1,
after the title), which Colab runs from a copy of the notebook that knows nothing of _config.yml.
After forking the course, set it once and commit the result:

    python -m course_lib.book.launch https://github.com/<you>/<repository>

That rewrites _config.yml's `repository.url` and every chapter's install cell;
tests/test_launch.py checks that they agree and that binder/ pins the CPU build of torch.

Until then the URL is the placeholder :data:`PLACEHOLDER_URL`, a repository that may not exist
or may be someone else's. This module is also a Sphinx extension (listed in _config.yml): with
the placeholder, the build shows no launch (Binder, Colab) and no repository buttons, and says
once in its log how to set the URL (tests/test_launch_buttons.py builds a tiny book both ways).

The install cell installs what is missing, and says what it installs. Where course_lib is
importable (the book's build, a clone after `make lab` or `make book`, Binder, whose
binder/postBuild installs the package) it checks the `chapters` extra's packages (pandas,
bertviz, ...) and installs only those that are missing (`course_lib.extras.install_missing`):
a venv made without `[chapters]` would otherwise stop later at `No module named 'pandas'`. On
Colab it installs the learner's set: course_lib's light core and the `chapters` extra, never the
book's or the grader's toolchain, and keeps Colab's own torch (the core asks for a range that
it satisfies).
"""

from __future__ import annotations

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = ROOT / "_config.yml"
CHAPTERS = ROOT / "chapters"
#: The URL the course ships with: not a repository to send learners to.
PLACEHOLDER_URL = "https://github.com/attention-course/attention-course"
INSTALL_TAG = "course-install"  # marks the install cell (with remove-cell: the book does not show it)

_URL_LINE = re.compile(r"^(repository:\s*\n(?:[ \t]+.*\n)*?[ \t]+url:[ \t]*)(\S+)", re.M)


def repository_url(config: pathlib.Path = CONFIG) -> str:
    """`repository.url` from _config.yml."""
    match = _URL_LINE.search(config.read_text(encoding="utf-8"))
    if not match:
        raise ValueError(f"{config} has no `repository: url:` setting")
    return match.group(2)


def is_placeholder(url: str | None) -> bool:
    """True when `url` is unset or still the course's placeholder."""
    return not url or url.rstrip("/").removesuffix(".git") == PLACEHOLDER_URL


#: What the build log says when the URL is the placeholder (once per build).
HOW_TO_SET = (
    "repository.url in _config.yml is the placeholder {url}: the book is built without launch "
    "(Binder, Colab) and repository buttons. To show them, set your repository's URL and commit the "
    "result: `python -m course_lib.book.launch https://github.com/<you>/<repository>` (README, "
    "\"Publishing the book\")."
)


def _buttons_only_for_a_real_repository(app, config) -> None:
    """Sphinx `config-inited`: no launch or repository buttons while the URL is the placeholder."""
    from sphinx.util import logging

    options = dict(config.html_theme_options or {})
    url = options.get("repository_url")
    if not is_placeholder(url):
        return
    for button in ("use_repository_button", "use_edit_page_button", "use_issues_button", "use_source_button"):
        options[button] = False
    options["launch_buttons"] = {}
    options.pop("repository_url", None)  # nothing on the page links to it
    config.html_theme_options = options
    logging.getLogger(__name__).info(HOW_TO_SET.format(url=url or "(unset)"))


def setup(app) -> dict:
    """Sphinx extension: see the module's docstring."""
    app.connect("config-inited", _buttons_only_for_a_real_repository, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def install_cell_source(url: str) -> str:
    """The code of the install cell for a repository at `url`."""
    return (
        "# Set-up: installs what this chapter needs and is missing, and says so. On Colab:\n"
        "# the course's learner set (~1 min). Where course_lib is installed (make lab, Binder):\n"
        "# any of the chapters' packages (pandas, bertviz, ...) that the environment lacks.\n"
        "try:\n"
        "    import course_lib\n"
        "except ImportError:\n"
        f'    print("installing course_lib[chapters] from {url} (about a minute)")\n'
        f'    %pip install --quiet "course_lib[chapters] @ git+{url}"\n'
        "else:\n"
        "    from course_lib.extras import install_missing\n"
        "\n"
        '    install_missing("chapters")'
    )


def install_cell_index(cells) -> int | None:
    """Index of the install cell among a notebook's cells, or None."""
    for i, cell in enumerate(cells):
        if INSTALL_TAG in cell.get("metadata", {}).get("tags", []):
            return i
    return None


def sync_install_cells(url: str, chapters: pathlib.Path = CHAPTERS) -> list[pathlib.Path]:
    """Put the install cell for `url` right after the title of every chapter; returns changed files."""
    import nbformat

    changed = []
    for path in sorted(chapters.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        source = install_cell_source(url)
        i = install_cell_index(nb.cells)
        if i is None:
            cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["remove-cell", INSTALL_TAG]})
            nb.cells.insert(1, cell)
        elif nb.cells[i].source == source:
            continue
        else:
            nb.cells[i].source = source
        nbformat.write(nb, path)
        changed.append(path)
    return changed


def set_repository(url: str, config: pathlib.Path = CONFIG, chapters: pathlib.Path = CHAPTERS) -> None:
    """Set `repository.url` in _config.yml and rewrite every install cell to match."""
    if not re.fullmatch(r"https://[^\s\"'\\]+", url):
        raise ValueError(f"expected a repository URL such as https://github.com/<you>/<repository>, got {url!r}")
    text = config.read_text(encoding="utf-8")
    config.write_text(_URL_LINE.sub(lambda m: m.group(1) + url, text, count=1), encoding="utf-8")
    for path in sync_install_cells(url, chapters):
        print(f"updated {path.name}")
    print(f"repository.url = {repository_url(config)}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m course_lib.book.launch https://github.com/<you>/<repository>")
    set_repository(sys.argv[1])
