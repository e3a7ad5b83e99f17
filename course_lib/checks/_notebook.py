"""What a check can learn from the Jupyter kernel it runs in: notes for the learner, never a verdict.

Outside IPython (the grader's clean verify, pytest, a script) every function here returns None or ""
and costs nothing: IPython is only consulted when it is already imported.

Stale definitions (issue 27). When the answer cell's latest run raised before its ``def`` ran (a
SyntaxError, or an error in a line above the ``def``), the kernel still holds the previous version
of the function, and a check would test that one. Detected from IPython's own records:

1. the execution count of the cell that defined the learner's function or class: the code object's
   ``co_filename`` is the name IPython's compiler gave that cell, and ``get_ipython().compile._filename_map``
   maps it to the cell's execution count (``In[n]``);
2. the source of every cell run since, ``get_ipython().history_manager.input_hist_raw`` (``In``): a later
   cell whose source defines the same name at its top level (``def name`` / ``class name``) must have
   failed before that ``def`` ran, or the function would come from it.

A cell that ran its ``def`` and raised afterwards has defined the new version: then the counts agree
and nothing is said.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import Any, Callable


def _ipython():
    if "IPython" not in sys.modules:
        return None
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return None
    return get_ipython()


def _code_filename(obj: Any) -> str | None:
    """The file (for IPython: the cell name) the function, or the class's first method, was compiled in."""
    code = getattr(obj, "__code__", None)
    if code is not None:
        return code.co_filename
    if isinstance(obj, type):
        for value in vars(obj).values():
            code = getattr(getattr(value, "__func__", value), "__code__", None)
            if code is not None:
                return code.co_filename
    return None


def _defines(source: str, name: str) -> bool:
    return re.search(rf"^(?:async\s+def|def|class)\s+{re.escape(name)}\b", source, re.M) is not None


def stale_definition_note(student: Any) -> str | None:
    """A note when ``student`` is older than the latest run of a cell that defines its name (see the module doc)."""
    ip = _ipython()
    name, filename = getattr(student, "__name__", None), _code_filename(student)
    if ip is None or not name or not filename:
        return None
    defined_in = getattr(getattr(ip, "compile", None), "_filename_map", {}).get(filename)
    history = getattr(getattr(ip, "history_manager", None), "input_hist_raw", None)
    if not isinstance(defined_in, int) or not isinstance(history, list):
        return None
    failed = [n for n in range(defined_in + 1, len(history)) if _defines(history[n], name)]
    if not failed:
        return None
    return (f"\u26a0 The cell that defines {name} did not run to its end the last time (In [{failed[-1]}]: it raised an error "
            f"before `{name}` was redefined), so this check tests the previous version of {name}, from In [{defined_in}].\n"
            f"  Fix the error that cell shows, run it again, then run this check.")


def later_cell_hint(name: str) -> str:
    """For a NameError: when a code cell of the learner's notebook (read from disk) defines ``name``, say to run
    the cells in order; "" when the notebook is unknown or nothing there defines it (a typo, say)."""
    ip = _ipython()
    path = os.environ.get("JPY_SESSION_NAME") or (ip.user_ns.get("__session__") if ip is not None else None)
    if not name or not isinstance(path, str) or not path.endswith(".ipynb") or not os.path.isfile(path):
        return ""
    try:
        with open(path, encoding="utf-8") as f:
            cells = json.load(f).get("cells", [])
    except (OSError, ValueError):
        return ""
    pattern = re.compile(rf"^(?:(?:async\s+)?def|class)\s+{re.escape(name)}\b|^{re.escape(name)}\s*(?::[^=]*)?=[^=]"
                         rf"|^(?:from\s+\S+\s+)?import\s.*\b{re.escape(name)}\b", re.M)
    for cell in cells:
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        if cell.get("cell_type") == "code" and pattern.search(source):
            return (f"`{name}` is defined in a cell of this notebook that has not run yet (probably one further down): "
                    "run the cells in order, from the top (Run > Run All Above Selected Cell)")
    return ""


#: a note when the learner's code takes this many times the reference's time on the check's inputs
SLOW_FACTOR = 100
#: below this many seconds nothing is timed twice: a fast answer costs nothing extra
SLOW_FLOOR_S = 0.2


def slow_note(run: Callable[[Any], Any], reference: Callable | None, elapsed_s: float) -> str | None:
    """A note with both times when the learner's run took ``SLOW_FACTOR`` times the reference's or more.
    ``run(fn)`` runs the check's calls on ``fn``; ``reference`` has the learner's signature (None: no note)."""
    if reference is None or elapsed_s < SLOW_FLOOR_S:
        return None
    start = time.perf_counter()
    run(reference)
    ref_s = max(time.perf_counter() - start, 1e-6)
    if elapsed_s < SLOW_FACTOR * ref_s:
        return None
    return (f"Note: your code took {elapsed_s:.2f} s on this check's inputs, the reference {ref_s * 1000:.1f} ms "
            f"({elapsed_s / ref_s:.0f}x slower). It earns the points, but look for Python loops that a tensor "
            "operation (a matrix product, a broadcast) could replace: longer inputs will make the gap grow.")
