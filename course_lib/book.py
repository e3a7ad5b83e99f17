"""Facts about the built book that tests and benchmarks read.

``chapter_execution_seconds()`` reads the execution times that myst-nb's
jupyter-cache stored when the book was built (``make book``).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import sqlite3

ROOT = pathlib.Path(__file__).resolve().parents[1]

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


def toc_files(root: pathlib.Path = ROOT) -> list[str]:
    """Every `file:` entry of _toc.yml plus the root page, in order."""
    text = (root / "_toc.yml").read_text()
    root_page = re.search(r"^root:\s*(\S+)", text, re.M)
    return ([root_page.group(1)] if root_page else []) + re.findall(r"file:\s*(\S+)", text)


def chapter_execution_seconds(build_dir: pathlib.Path | None = None) -> dict[str, float]:
    """{chapter stem: seconds} for the notebooks executed in the last build."""
    build_dir = build_dir or ROOT / "_build"
    db = build_dir / ".jupyter_cache" / "global.db"
    if not db.exists():
        return {}
    con = sqlite3.connect(db)
    try:
        rows = con.execute("select uri, data, created from nbcache order by created").fetchall()
    finally:
        con.close()
    times: dict[str, float] = {}
    for uri, data, _created in rows:  # later rows overwrite earlier ones
        seconds = json.loads(data or "{}").get("execution_seconds")
        if seconds is not None and pathlib.Path(uri).parent.name == "chapters":
            times[pathlib.Path(uri).stem] = float(seconds)
    return times
