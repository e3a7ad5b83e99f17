"""Launch buttons (Colab, Binder): the repository URL and the chapters' install cell.

The repository URL is ONE setting, `repository.url` in _config.yml. The book's launch and
repository buttons read it, and so does the install cell at the top of every chapter (cell 1,
after the title), which Colab runs from a copy of the notebook that knows nothing of _config.yml.
After forking the course, set it once and commit the result:

    python -m course_lib.book.launch https://github.com/<you>/<repository>

That rewrites _config.yml's `repository.url` and every chapter's install cell;
tests/test_launch.py checks that they agree and that binder/ pins the CPU build of torch.

The install cell does nothing where course_lib is importable (the book's build, a clone after
`make book`, Binder, whose binder/postBuild installs the package). On Colab it installs the
learner's set: course_lib's light core and the `chapters` extra (what the chapter notebooks
import), never the book's or the grader's toolchain, and keeps Colab's own torch (the core asks
for a range that it satisfies).
"""

from __future__ import annotations

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = ROOT / "_config.yml"
CHAPTERS = ROOT / "chapters"
INSTALL_TAG = "course-install"  # marks the install cell (with remove-cell: the book does not show it)

_URL_LINE = re.compile(r"^(repository:\s*\n(?:[ \t]+.*\n)*?[ \t]+url:[ \t]*)(\S+)", re.M)


def repository_url(config: pathlib.Path = CONFIG) -> str:
    """`repository.url` from _config.yml."""
    match = _URL_LINE.search(config.read_text(encoding="utf-8"))
    if not match:
        raise ValueError(f"{config} has no `repository: url:` setting")
    return match.group(2)


def install_cell_source(url: str) -> str:
    """The code of the install cell for a repository at `url`."""
    return (
        "# Set-up: does nothing where course_lib is installed (the book, a clone after\n"
        "# `make book`, Binder). On Colab it installs the course's learner set (~1 min).\n"
        "try:\n"
        "    import course_lib\n"
        "except ImportError:\n"
        f'    %pip install --quiet "course_lib[chapters] @ git+{url}"'
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
