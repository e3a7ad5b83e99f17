"""Facts about the built book that tests and benchmarks read (not imported by the chapters).

``chapter_execution_seconds()`` reads the execution times that myst-nb's
jupyter-cache stored when the book was built (``make book``).
"""

from __future__ import annotations

import json
import pathlib
import re
import sqlite3

from course_lib.runtime import CHAPTER_BUDGET_S  # noqa: F401  (re-exported for bench/book_times.py)

ROOT = pathlib.Path(__file__).resolve().parents[2]


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
