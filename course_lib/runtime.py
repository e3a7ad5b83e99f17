"""Where course_lib's code is running: the book's build, or a reader's live kernel.

Chapters show some things differently in the static book (plain-text progress bars,
in-browser demos) and in a live kernel (Jupyter, Colab, VS Code); they ask
``building_book()``. The book's Sphinx extension (``course_lib.book.sphinxext``) sets
:data:`BUILD_ENV` before any chapter executes, and the chapters' kernels inherit it.
:data:`CHAPTER_BUDGET_S` is what chapter 0 tells readers each chapter takes to run.
"""

from __future__ import annotations

import os

__all__ = ["BUILD_ENV", "CHAPTER_BUDGET_S", "building_book"]

#: Seconds each chapter may take to execute on an idle 2-core machine (from the issues).
CHAPTER_BUDGET_S = {
    "00_introduction": 60,
    "01_seq2seq_attention": 90,
    "02_query_key_value": 90,
    "03_scaled_dot_product": 90,
    "04_multi_head": 90,
    "05_positional_encoding": 90,
    "06_masking": 90,
    "07_transformer": 180,
    "08_bert": 330,
}


#: Set to "1" by the book's Sphinx extension (course_lib.sphinxext) before any chapter executes;
#: the chapters' kernels inherit it. Cells that show something different in the static book
#: (plain-text progress bars, in-browser demos) and in a live kernel ask `building_book()`.
BUILD_ENV = "COURSE_BOOK_BUILD"


def building_book() -> bool:
    """True while the book's build executes a chapter (the static HTML page is the audience)."""
    return os.environ.get(BUILD_ENV) == "1"
