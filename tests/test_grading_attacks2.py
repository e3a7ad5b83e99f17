"""The grader attacked again (issue #22): what a submission can do outside the sandbox, and to its neighbours.

- malformed notebooks (JSON nested 5,000 and 100,000 deep, 150,000 cells, a cell of 100,000 "-")
  are the student's ``unreadable`` row with a reason, never a grader failure, and cost the
  grader little time and memory (they are refused from their bytes, before parsing);
- a notebook that timed out beside others is graded again alone before its timeout is recorded;
- the check inputs of a graded run come from a seed the grader draws per run (and records), so a
  lookup table of the fixed inputs' answers scores 0;
- own-work notes: verbatim copies of the solution and library implementations of the concept are
  flagged for review (not penalised);
- the sandbox's course_lib is where the sandbox's own Python imports it from.

Most tests call the grader's pieces directly (fast); those that run notebooks are marked slow.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from course_lib.grading import grader
from course_lib.grading.grader import Limits, Task
from course_lib.grading.release import SOLUTIONS

ROOT = Path(__file__).resolve().parents[1]
COURSE = [sys.executable, "-m", "course_lib.cli"]
if not SOLUTIONS.is_dir():  # the learners' public copy: nothing to grade against
    pytest.skip("no solutions/ in this copy of the course (the learners' public copy): the grader's attacks need "
                "the instructors' source notebooks", allow_module_level=True)
A2 = "ch02_qkv"
NB2 = "query_key_value"


def _solution(assignment: str = A2, name: str = NB2) -> dict:
    return json.loads((SOLUTIONS / assignment / f"{name}.ipynb").read_text(encoding="utf-8"))


def _malformed(kind: str) -> str:
    """The text of a malformed submission of ch02."""
    if kind.startswith("nested"):
        n = int(kind[len("nested"):])
        return '{"cells": ' + "[" * n + "]" * n + ', "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    nb = _solution()
    if kind == "cells150000":
        nb["cells"] += [{"cell_type": "code", "metadata": {}, "source": "", "outputs": [], "execution_count": None}
                        for _ in range(150_000)]
    elif kind == "dashes":  # 100,000 unary minus signs: Python's parser runs out of memory on it
        answer = next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("solution"))
        answer["source"] = "-" * 100_000 + "1\n"
    return json.dumps(nb)


def _grade_one(path: Path, monkeypatch, run=None) -> grader.Outcome:
    """grade_task on one ch02 file; ``run`` stands for the sandboxed run (default: fail if anything runs)."""
    def no_run(*args, **kwargs):
        raise AssertionError("the notebook was run: it should have been refused before")

    monkeypatch.setattr(grader, "run_notebook", run or no_run)
    work = path.parent / "work"
    work.mkdir(exist_ok=True)
    task = Task("mallory", A2, NB2, path)
    return grader.grade_task(task, Limits(), grader._SourceCache(SOLUTIONS), grader._RunFiles(work, SOLUTIONS))


@pytest.mark.parametrize("kind, phrase", [("nested5000", "nested more than"), ("nested100000", "nested more than"),
                                          ("cells150000", "150")])
def test_malformed_notebooks_are_unreadable_with_a_reason_never_a_grader_failure(tmp_path, monkeypatch, kind, phrase):
    path = tmp_path / f"{NB2}.ipynb"
    path.write_text(_malformed(kind))
    start = time.monotonic()
    outcome = _grade_one(path, monkeypatch)
    assert time.monotonic() - start < 10
    assert outcome.rows and all(r.status == "unreadable" and not r.grader_failure for r in outcome.rows), outcome.rows
    assert all(phrase in r.message for r in outcome.rows), outcome.rows[0].message


def test_a_cell_the_parser_cannot_hold_is_read_without_failing_the_grader(tmp_path, monkeypatch):
    path = tmp_path / f"{NB2}.ipynb"
    path.write_text(_malformed("dashes"))

    def kernel_said(prepared, source, limits, job_dir, *args, **kwargs):  # what the sandbox reports: the cell errored
        index = next(i for i, c in enumerate(prepared.run_nb.cells) if c.source.startswith("-----"))
        return {"started": True, "cells": {str(index): {"status": "error", "ename": "MemoryError", "evalue": ""}},
                "default_status": "error", "default_reason": "not run"}, prepared.run_nb

    outcome = _grade_one(path, monkeypatch, kernel_said)
    assert outcome.rows and not any(r.grader_failure for r in outcome.rows), outcome.rows
    assert not any(r.message.startswith("grader failure") for r in outcome.rows)


def test_the_graders_memory_and_time_on_150000_cells_stay_small(tmp_path):
    path = tmp_path / f"{NB2}.ipynb"
    path.write_text(_malformed("cells150000"))
    code = f"""
import resource, sys, time
from pathlib import Path
from course_lib.grading import grader
from course_lib.grading.release import SOLUTIONS
import course_lib.checks  # what the grader holds anyway (torch): the baseline
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
grader.run_notebook = lambda *a, **k: (_ for _ in ()).throw(SystemExit("ran"))
start = time.monotonic()
work = Path({str(tmp_path)!r}) / "work"; work.mkdir()
out = grader.grade_task(grader.Task("m", {A2!r}, {NB2!r}, Path({str(path)!r})), grader.Limits(),
                        grader._SourceCache(SOLUTIONS), grader._RunFiles(work, SOLUTIONS))
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024, time.monotonic() - start, out.rows[0].status)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    grown_mib, seconds, status = proc.stdout.split()
    assert status == "unreadable"
    assert float(grown_mib) < 200 and float(seconds) < 10, proc.stdout  # before: +430 MiB and 15 s before even running it


def test_a_notebook_that_timed_out_beside_others_is_graded_again_alone(monkeypatch):
    """The first attempt's timeout is never recorded; the rerun comes after the parallel batch, one at a time."""
    from course_lib.grading.gradebook import Row

    events: list[str] = []

    def fake(task, limits, sources, files, sandboxed=True):
        first = f"start {task.student}" not in events
        events.append(f"start {task.student}")
        time.sleep(0.3)
        events.append(f"end {task.student}")
        timed_out = task.student == "honest" and first  # a neighbour's load, the first time only
        row = Row(task.student, A2, NB2, "t", "timeout" if timed_out else "passed", 0 if timed_out else 2, 2,
                  "Cell 3 timed out after 10 s" if timed_out else "", "2026-01-01T00:00:00")
        return grader.Outcome([row])

    monkeypatch.setattr(grader, "grade_task", fake)
    monkeypatch.setattr(grader, "_grader_fingerprint", lambda *a: "x")
    recorded = []
    tasks = [Task("honest", A2, NB2, None), Task("hog", A2, NB2, None)]
    run = grader.grade_tasks(tasks, Limits(), jobs=2, progress=lambda t, o: recorded.append((t.student, o.rows[0].status)),
                             sandboxed=False)
    assert [r.status for r in run.rows] == ["passed", "passed"]
    assert sorted(recorded) == [("hog", "passed"), ("honest", "passed")]  # the timeout was never reported
    # graded again after the batch, alone
    assert events[-2:] == ["start honest", "end honest"] and events.count("start honest") == 2
    assert events.index("end hog") < len(events) - 2
    assert all(r.graded_at != "2026-01-01T00:00:00" for r in run.rows)  # graded_at: when the grade was written


# =========================================================================== a lookup table instead of attention


_TABLE_RUNTIME = '''
import base64 as _b64, hashlib as _hl, io as _io
import torch as _t

def _key(name, args):
    h = _hl.sha256(name.encode())
    for a in args:
        if isinstance(a, _t.Tensor):
            h.update(repr((tuple(a.shape), str(a.dtype))).encode() + a.detach().contiguous().cpu().numpy().tobytes())
        else:
            h.update(repr(a).encode())
    return h.hexdigest()

def _lookup(name, args):
    e = _TABLE[_key(name, args)]  # no attention here: only answers precomputed for the checks' inputs
    outs = [o.clone() if isinstance(o, _t.Tensor) else o for o in e["outs"]]
    leaves = [a for a in args if isinstance(a, _t.Tensor)]
    if any(a.requires_grad for a in leaves) and e.get("grads"):
        lin = sum(((a - a.detach()) * g).sum() for a, g in zip(leaves, e["grads"]) if g is not None and a.requires_grad)
        for j, c in enumerate(e["cot"]):
            if c is not None:
                outs[j] = outs[j] + lin * c / (c * c).sum()  # the backward of <out, c> gives exactly the stored grads
            elif isinstance(outs[j], _t.Tensor) and outs[j].is_floating_point():
                outs[j] = outs[j] + 0 * lin
    return tuple(outs) if e["tuple"] else outs[0]
'''


def _lookup_table_notebook(assignment: str, name: str) -> dict:
    """The released exercise whose answer cells hold only a table: the checks' fixed inputs -> the solution's outputs and gradients.

    The table is computed here, offline, by running every check of every graded cell (hidden ones
    included, as an attacker who read the public check code would) with the solution's functions on
    ``make_inputs()`` (the fixed inputs), capturing outputs, the cotangent each output received and the
    gradients of the inputs. The answer cells contain no attention at all.
    """
    import base64
    import io

    import torch

    from course_lib.checks import get_check
    from course_lib.grading.notebooks import load_source

    source = load_source(assignment, name, SOLUTIONS)
    solution = _solution(assignment, name)
    answers = [c for c in solution["cells"] if c["metadata"].get("nbgrader", {}).get("solution")]
    namespace: dict = {}
    setup = next(c for c in solution["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == "setup")
    exec("".join(setup["source"]), namespace)
    functions: dict[str, list[str]] = {}  # answer cell grade_id -> the functions it defines
    for cell in answers:
        before = set(namespace)
        exec("".join(cell["source"]), namespace)
        functions[cell["metadata"]["nbgrader"]["grade_id"]] = [k for k in namespace if k not in before and callable(namespace[k])]
    exec(_TABLE_RUNTIME, namespace)
    key = namespace["_key"]
    table: dict = {}

    def proxy(fname):
        ref = namespace[fname]

        def call(*args):
            res = ref(*args)
            outs = list(res) if isinstance(res, tuple) else [res]
            entry = table.setdefault(key(fname, args), {"outs": [o.detach().clone() if isinstance(o, torch.Tensor) else o for o in outs],
                                                       "tuple": isinstance(res, tuple), "grads": None, "cot": [None] * len(outs)})
            leaves = [a for a in args if isinstance(a, torch.Tensor)]
            if any(a.requires_grad for a in leaves):
                for j, o in enumerate(outs):
                    if isinstance(o, torch.Tensor) and o.requires_grad:
                        o.register_hook(lambda g, j=j, entry=entry: entry["cot"].__setitem__(j, g.detach().clone()))
                pending.append((entry, leaves))
            return res
        return call

    pending: list = []
    for graded in source.graded:
        for check_name in graded.checks:
            check = get_check(check_name)
            for fname in (f for fs in functions.values() for f in fs):
                try:
                    check.run(proxy(fname), check.make_inputs())
                except Exception:  # noqa: BLE001 - not this check's function
                    continue
                for entry, leaves in pending:
                    entry["grads"] = [a.grad.detach().clone() if a.grad is not None else None for a in leaves]
                pending.clear()
    buf = io.BytesIO()
    torch.save(table, buf)
    blob = base64.b64encode(buf.getvalue()).decode()
    exercise = json.loads((ROOT / "exercises" / assignment / f"{name}.ipynb").read_text(encoding="utf-8"))
    first = True
    for cell in exercise["cells"]:
        gid = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if cell["metadata"].get("nbgrader", {}).get("solution") and gid in functions:
            text = (_TABLE_RUNTIME + f"\n_TABLE = _t.load(_io.BytesIO(_b64.b64decode({blob!r})), weights_only=True)\n") if first else ""
            first = False
            text += "".join(f"\ndef {f}(*args):\n    return _lookup({f!r}, args)\n" for f in functions[gid])
            cell["source"] = text
    assert len(table) >= 5, table.keys()
    return exercise


@pytest.mark.slow
def test_a_lookup_table_of_the_fixed_inputs_scores_nothing(tmp_path):
    """Item 3: ch03 answered by a table of the checks' fixed inputs (10/10 before per-run seeds) scores 0."""
    from course_lib.grading import gradebook as gb

    A3, NB3 = "ch03_scaled_dot_product", "scaled_dot_product"
    subs = tmp_path / "subs"
    (subs / "table" / A3).mkdir(parents=True)
    (subs / "table" / A3 / f"{NB3}.ipynb").write_text(json.dumps(_lookup_table_notebook(A3, NB3)))
    (subs / "honest" / A3).mkdir(parents=True)
    (subs / "honest" / A3 / f"{NB3}.ipynb").write_text((SOLUTIONS / A3 / f"{NB3}.ipynb").read_text())
    run = grader.grade(subs, tmp_path / "grades", Limits(cell_timeout=60), jobs=2)
    assert run.ok, [r.message for r in run.rows if r.grader_failure]
    got = {s: sum(r.points for r in run.rows if r.student == s) for s in ("table", "honest")}
    assert got == {"table": 0, "honest": 10}, [(r.student, r.grade_id, r.status, r.message[:200]) for r in run.rows]
    seed = json.loads((tmp_path / "grades" / "run.json").read_text())["seed"]
    assert isinstance(seed, int)
    # the same seed again reproduces the run's inputs: a regrade with --seed gives the same verdicts
    again = grader.grade(subs, tmp_path / "again", Limits(cell_timeout=60), jobs=2, seed=seed)
    assert [(r.student, r.grade_id, r.status) for r in again.rows] == [(r.student, r.grade_id, r.status) for r in run.rows]
    assert json.loads((tmp_path / "again" / "run.json").read_text())["seed"] == seed
    assert gb.read_rows(tmp_path / "grades")


# =========================================================================== the instructor's path (item 6)


def _tiny_class(root: Path) -> Path:
    """Two students of ch02 whose notebooks are missing: graded without running any kernel."""
    for s in ("ann", "gus"):
        (root / "subs" / s / A2).mkdir(parents=True)
    return root / "subs"


def test_grade_says_once_before_grading_when_mathjax_is_missing(tmp_path):
    subs = _tiny_class(tmp_path)
    env = {**__import__("os").environ, "COURSE_NODE_MODULES": str(tmp_path / "no_node_modules")}
    proc = subprocess.run([*COURSE, "grade", str(subs), "--out", str(tmp_path / "grades"), "--quiet"],
                          capture_output=True, text=True, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("MathJax is not installed") == 1 and "npm ci" in proc.stderr and "COURSE_NODE_MODULES" in proc.stderr


def test_one_students_folder_is_refused_and_student_regrades_one_into_the_gradebook(tmp_path):
    from course_lib.grading import gradebook as gb

    subs = _tiny_class(tmp_path)
    grades = tmp_path / "grades"
    proc = subprocess.run([*COURSE, "grade", str(subs / "gus"), "--out", str(grades)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and f"--student gus" in proc.stderr, proc.stderr
    assert not (grades / "gradebook.json").exists()  # no junk rows for a 'student' named ch02_qkv
    grader.grade(subs, grades, seed=1234)
    before = {(r["student"], r["grade_id"]): r for r in gb.read_rows(grades)}
    (subs / "gus" / A2 / f"{NB2}.ipynb").write_text("{not json")
    run = grader.grade(subs, grades, student="gus")
    assert {r.student for r in run.rows} == {"gus"} and all(r.status == "unreadable" for r in run.rows)
    after = {(r["student"], r["grade_id"]): r for r in gb.read_rows(grades)}
    assert set(after) == set(before)
    assert all(after[k] == before[k] for k in after if k[0] == "ann")  # the others are untouched
    assert all(after[k]["status"] == "unreadable" for k in after if k[0] == "gus")
    assert json.loads((grades / "run.json").read_text())["seed"] == 1234  # the regrade reused the class's seed
    with pytest.raises(Exception, match="expected a folder"):
        grader.grade(subs, grades, student="nobody")


def test_library_implementations_and_solution_copies_are_flagged_for_review_not_penalised(tmp_path, monkeypatch):
    nb = _solution()
    answer = next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == "self_attention")
    answer["source"] = ("import torch.nn.functional as F\nfrom transformers.models.bert.modeling_bert import BertSelfAttention\n"
                        "def self_attention(x, W_q, W_k, W_v):\n"
                        "    q, k, v = x @ W_q, x @ W_k, x @ W_v\n"
                        "    return F.scaled_dot_product_attention(q, k, v)\n")
    path = tmp_path / f"{NB2}.ipynb"
    path.write_text(json.dumps(nb))

    def passed(prepared, source, limits, job_dir, *args, **kwargs):
        return {"started": True, "cells": {str(i): {"status": "ok"} for i in range(len(prepared.run_nb.cells))}}, prepared.run_nb

    monkeypatch.setattr(grader, "verify_recording", lambda *a, **k: None)  # as if every check had passed
    outcome = _grade_one(path, monkeypatch, passed)
    assert all(r.status == "passed" and r.points == r.max_points for r in outcome.rows)  # not penalised
    text = outcome.rows[0].message
    assert "For review" in text and "fused attention" in text and "transformers" in text and "course's solution" in text
    from course_lib.grading import gradebook as gb

    gb.write_gradebook(tmp_path / "grades", outcome.rows, set())
    notes = (tmp_path / "grades" / "summary.csv").read_text()
    assert "to review (not penalised)" in notes


@pytest.mark.slow
def test_the_sandbox_binds_course_lib_where_its_python_imports_it(tmp_path):
    """A PYTHONPATH pointing to another copy of course_lib once broke every notebook (the sandbox's Python has none)."""
    import shutil

    other = tmp_path / "other"
    shutil.copytree(ROOT / "course_lib", other / "course_lib", ignore=shutil.ignore_patterns("__pycache__"))
    for shared in ("solutions", "exercises", "node_modules"):  # the copy finds the course's files beside it
        if (ROOT / shared).exists():
            (other / shared).symlink_to(ROOT / shared)
    subs = tmp_path / "subs"
    (subs / "ann" / A2).mkdir(parents=True)
    (subs / "ann" / A2 / f"{NB2}.ipynb").write_text((SOLUTIONS / A2 / f"{NB2}.ipynb").read_text())
    env = {**__import__("os").environ, "PYTHONPATH": str(other)}
    proc = subprocess.run([*COURSE, "grade", str(subs), "--out", str(tmp_path / "grades"), "--quiet"],
                          capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads((tmp_path / "grades" / "gradebook.json").read_text())["rows"]
    assert sum(r["points"] for r in rows) == 10, rows
