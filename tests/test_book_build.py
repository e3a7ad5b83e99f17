"""The built book: every toc page exists, and each chapter was executed.

Runs after `make book` (as `make test` does); skipped when no build exists.
"""

import pytest

from course_lib.book.timing import CHAPTER_BUDGET_S, ROOT, chapter_execution_seconds, toc_files

HTML = ROOT / "_build" / "html"
pytestmark = pytest.mark.skipif(not (HTML / "index.html").exists(), reason="the book is not built (run `make book`)")


@pytest.mark.parametrize("page", toc_files())
def test_every_toc_page_is_built(page):
    assert (HTML / f"{page}.html").exists(), f"{page}.html missing from the built book"


# How long each chapter took is measured, not asserted: wall time depends on the CPU, the
# thread count and what else runs (a timed test would fail a fresh clone on a slower or busier
# machine). bench/book_times.py prints every chapter's time against its budget, and pytest's
# terminal summary repeats it (tests/conftest.py). Here: each chapter executed, to the end.
@pytest.mark.parametrize("chapter", sorted(CHAPTER_BUDGET_S))
def test_chapter_was_executed(chapter):
    if "This chapter is being written." in (ROOT / "chapters" / f"{chapter}.ipynb").read_text():
        pytest.skip(f"{chapter} is still a placeholder")  # identical placeholders share one cache record
    times = chapter_execution_seconds()
    assert chapter in times, f"no execution record for {chapter} in _build/.jupyter_cache"
    assert times[chapter] > 0, f"{chapter}: the execution record says {times[chapter]} s"
