"""Launch buttons that lead somewhere (#27 item 7): a book whose repository.url is still the
placeholder shows no Binder, Colab or repository button and says once in its build log how to
set the URL; once set, the buttons point at that repository.

Builds a tiny book in tmp_path (a page and a notebook, not executed) with the course's
_config.yml settings for the repository and launch buttons, and the extension that hides them
(course_lib.book.launch); the whole book's build is too slow for this.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from course_lib.book import launch
from course_lib.book.timing import ROOT

REAL_URL = "https://github.com/someone/their-fork"


def _config(url: str) -> str:
    """The course's settings that the buttons read, with `url` as repository.url."""
    return textwrap.dedent(f"""\
        title: tiny
        only_build_toc_files: true
        execute:
          execute_notebooks: "off"
        repository:
          url: {url}
          branch: main
          path_to_book: ""
        launch_buttons:
          notebook_interface: classic
          binderhub_url: https://mybinder.org
          colab_url: https://colab.research.google.com
        html:
          use_repository_button: true
          use_issues_button: false
        sphinx:
          extra_extensions:
            - course_lib.book.launch
        """)


def _build(tmp_path: Path, url: str) -> tuple[str, str]:
    """Build the tiny book; returns (the notebook page's HTML, the build log)."""
    book = tmp_path / "book"
    book.mkdir()
    (book / "_config.yml").write_text(_config(url))
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n- file: nb\n")
    (book / "intro.md").write_text("# Intro\n\nA page.\n")
    notebook = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# A chapter"]},
            {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": ["1 + 1"]},
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (book / "nb.ipynb").write_text(json.dumps(notebook))
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    done = subprocess.run([str(jupyter_book), "build", str(book), "--builder", "html"], capture_output=True, text=True, timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 0, f"the tiny book did not build:\n{log[-3000:]}"
    return (book / "_build" / "html" / "nb.html").read_text(), log


def test_the_course_config_uses_the_extension_and_the_placeholder_is_known():
    config = (ROOT / "_config.yml").read_text()
    assert "- course_lib.book.launch" in config, "_config.yml lists course_lib.book.launch in sphinx.extra_extensions"
    assert launch.is_placeholder(launch.PLACEHOLDER_URL) and launch.is_placeholder(launch.PLACEHOLDER_URL + "/")
    assert launch.is_placeholder(None) and not launch.is_placeholder(REAL_URL)


@pytest.mark.slow
def test_placeholder_url_hides_the_buttons_and_says_how_to_set_it(tmp_path):
    html, log = _build(tmp_path, launch.PLACEHOLDER_URL)
    for where in ("mybinder.org", "colab.research.google.com", "attention-course/attention-course"):
        assert where not in html, f"a placeholder book links to {where}"
    hint = "python -m course_lib.book.launch"
    assert log.count(hint) == 1, f"the build log should say once how to set the URL ({log.count(hint)} times):\n{log[-3000:]}"


@pytest.mark.slow
def test_a_real_url_shows_buttons_that_point_at_it(tmp_path):
    html, log = _build(tmp_path, REAL_URL)
    assert "colab.research.google.com/github/someone/their-fork/blob/main/nb.ipynb" in html
    assert "mybinder.org/v2/gh/someone/their-fork/main" in html
    assert f'href="{REAL_URL}"' in html, "the repository button"
    assert "attention-course/attention-course" not in html
    assert "python -m course_lib.book.launch" not in log
