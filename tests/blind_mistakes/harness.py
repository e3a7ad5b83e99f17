"""Run one blind mistake against the VISIBLE check of its exercise part.

A mistake is a dict {"id", "assignment", "part", "category", "description", "source"}; ``part`` is
the check function the visible test cell calls.  ``run_mistake`` builds a script from the exercise
notebook:

1. every code cell before the part's answer cell that is not a test cell (the set-up cells and the
   ungraded exploration cells), where earlier *answer* cells are taken from the solutions notebook
   (so that a later part that uses an earlier one, e.g. ch01 (d) calling part (b), sees a correct
   earlier part and only the planted mistake differs);
2. the mistake's source in place of the answer cell;
3. the statements of the part's visible test cell that call the part's check (the ch04 split/merge
   cell calls two checks; only the one named by ``part`` runs),

runs it in a fresh Python subprocess (timeout 60 s, OMP_NUM_THREADS=1) and classifies the result:
"rejected" (CheckFailed escaped), "accepted" (the check returned) or "crashed" (any other
exception, or a timeout).  The exception class is recognised by its name, so this file never
imports the check modules.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"
TIMEOUT_S = 60

NOTEBOOKS = {
    "ch01_seq2seq": "seq2seq_attention.ipynb",
    "ch02_qkv": "query_key_value.ipynb",
    "ch03_scaled_dot_product": "scaled_dot_product.ipynb",
    "ch04_multi_head": "multi_head.ipynb",
    "ch05_positional_encoding": "positional_encoding.ipynb",
    "ch06_masking": "masking.ipynb",
    "ch07_transformer": "transformer.ipynb",
    "ch08_bert": "bert.ipynb",
}

_MARK = "@@BLIND_MISTAKE_RESULT@@"

_RUNNER = (
    r"""
import json, sys, traceback, io, contextlib
_cells = json.load(open(sys.argv[1]))
_ns = {"__name__": "__main__"}
_stage = "setup"
def _report(outcome, message):
    sys.__stdout__.write("\n"""
    + _MARK
    + r"""" + json.dumps({"outcome": outcome, "message": message, "stage": _stage}) + "\n")
    sys.__stdout__.flush()
try:
    for _src in _cells["setup"]:
        exec(compile(_src, "<setup cell>", "exec"), _ns)
    _stage = "answer"
    exec(compile(_cells["answer"], "<answer cell>", "exec"), _ns)
    _stage = "test"
    _buf = io.StringIO()
    with contextlib.redirect_stdout(_buf):
        exec(compile(_cells["test"], "<test cell>", "exec"), _ns)
    _out = _buf.getvalue()
    sys.stdout.write(_out)
    _lines = [l for l in _out.splitlines() if "\u2714" in l]
    _report("accepted", "\n".join(_lines) if _lines else _out.strip())
except BaseException as _e:  # noqa: BLE001
    _names = [c.__name__ for c in type(_e).__mro__]
    if _stage == "test" and "CheckFailed" in _names:
        _report("rejected", str(_e))
    else:
        _report("crashed", f"[{_stage}] " + "".join(traceback.format_exception(_e)))
"""
)


def _load(path: pathlib.Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _grader(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _src(cell: dict) -> str:
    s = cell["source"]
    return s if isinstance(s, str) else "".join(s)


def _calls(source: str, check: str) -> bool:
    return re.search(rf"\b{re.escape(check)}\s*\(", source) is not None


def build_cells(m: dict, root: pathlib.Path = ROOT) -> dict:
    """The set-up sources, the answer source and the test source for mistake m."""
    name = NOTEBOOKS[m["assignment"]]
    ex = _load(root / "exercises" / m["assignment"] / name)
    sol = _load(root / "solutions" / m["assignment"] / name)
    sol_answers = {
        _grader(c).get("grade_id"): _src(c) for c in sol if _grader(c).get("solution")
    }
    check = m["part"]
    test_idx = next(
        (
            i
            for i, c in enumerate(ex)
            if c["cell_type"] == "code"
            and _grader(c).get("grade")
            and _calls(_src(c), check)
        ),
        None,
    )
    if test_idx is None:
        raise ValueError(f"no visible test cell of {m['assignment']} calls {check}")
    answer_idx = max(i for i in range(test_idx) if _grader(ex[i]).get("solution"))
    setup = []
    for c in ex[:answer_idx]:
        if c["cell_type"] != "code":
            continue
        g = _grader(c)
        if g.get("grade") and not g.get("solution"):
            continue  # an earlier part's test cell: not needed
        if g.get("solution"):
            setup.append(
                sol_answers[g["grade_id"]]
            )  # an earlier part, answered correctly
        else:
            setup.append(_src(c))
    # only the statements of the test cell that call this part's check (one per line)
    test_lines = [
        line
        for line in _src(ex[test_idx]).splitlines()
        if not re.search(r"\bcheck_\w+\s*\(", line) or _calls(line, check)
    ]
    return {"setup": setup, "answer": m["source"], "test": "\n".join(test_lines) + "\n"}


def run_mistake(m: dict, root: pathlib.Path = ROOT, timeout: float = TIMEOUT_S) -> dict:
    """Execute mistake m in a fresh subprocess; {"outcome": "rejected"|"accepted"|"crashed", "message": str}."""
    cells = build_cells(m, root)
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONPATH=str(root),
        MPLBACKEND="Agg",
    )
    with tempfile.TemporaryDirectory() as tmp:
        cells_path = pathlib.Path(tmp) / "cells.json"
        cells_path.write_text(json.dumps(cells))
        runner = pathlib.Path(tmp) / "runner.py"
        runner.write_text(_RUNNER)
        try:
            proc = subprocess.run(
                [str(PYTHON), str(runner), str(cells_path)],
                cwd=str(root / "exercises" / m["assignment"]),
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {"outcome": "crashed", "message": f"timeout after {timeout} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_MARK):
            result = json.loads(line[len(_MARK) :])
            return {"outcome": result["outcome"], "message": result["message"]}
    return {
        "outcome": "crashed",
        "message": f"no result (exit {proc.returncode}): {proc.stderr[-3000:]}",
    }


if __name__ == "__main__":  # python -m tests.blind_mistakes.harness set1 <id>
    import importlib

    mod = importlib.import_module(f"tests.blind_mistakes.{sys.argv[1]}")
    for m in mod.MISTAKES:
        if m["id"] in sys.argv[2:]:
            print(m["id"], json.dumps(run_mistake(m), indent=1, ensure_ascii=False))
