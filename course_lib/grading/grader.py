"""The grader: run submissions in limited kernels, judge them outside, keep a gradebook.

    course grade SUBMISSIONS_DIR --out grades/ [--jobs N] [--cell-timeout S] [--total-timeout S] [--memory-mb M]

Why not nbgrader's autograde: it computes verdicts inside the learner's kernel
(a cell passes when it raises nothing), so a submission that monkeypatches
``torch.allclose`` or redefines the check functions raises nothing; it also has
no memory cap and no parallel runs. This grader keeps nbgrader's notebook format
and metadata (and uses nbgrader to release and to clear solutions and hidden
tests) but executes each notebook with nbclient in a worker process of its own
(``course_lib.grading.runner``), then decides every verdict here, in a process
that never runs learner code:

    a graded cell earns its points  <=>  it ran without error or timeout
                                         AND every check its SOURCE calls left a
                                         recording that passes check.verify() here.

Rows of the gradebook: one per (student, assignment, notebook, grade_id) with
points, max_points, status (passed, failed, error, timeout, tampered, missing,
unreadable) and a message. See chapters/grading_guide.md for the workflow.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from course_lib.grading import recorder
from course_lib.grading.notebooks import (
    Prepared,
    SourceError,
    SourceNotebook,
    Unreadable,
    load_source,
    prepare,
    read_submission,
    source_names,
)
from course_lib.grading.release import ROOT, SOLUTIONS, list_assignments

STATUSES = ("passed", "failed", "error", "timeout", "tampered", "missing", "unreadable")
FIELDS = ("student", "assignment", "notebook", "grade_id", "status", "points", "max_points", "message", "graded_at")
#: a recording larger than this is not loaded (it cannot be a check's output)
MAX_RECORDING_BYTES = 64 * 2**20
#: seconds the worker gets on top of total_timeout (kernel start-up, shutdown)
WORKER_SLACK = 120


@dataclass(frozen=True)
class Limits:
    """Resource limits per submitted notebook; defaults documented in chapters/grading_guide.md."""

    cell_timeout: float = 60.0  # seconds per cell, then interrupt (then kill)
    total_timeout: float = 300.0  # seconds of execution per notebook
    memory_mb: int = 4096  # address space of the kernel, and resident memory of its processes

    def __post_init__(self):
        for name in ("cell_timeout", "total_timeout", "memory_mb"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass
class Row:
    student: str
    assignment: str
    notebook: str
    grade_id: str
    status: str
    points: float
    max_points: float
    message: str = ""
    graded_at: str = ""
    #: True when the grader itself could not grade (not written; it sets the exit status)
    grader_failure: bool = field(default=False, repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("grader_failure")
        return d


@dataclass
class Task:
    student: str
    assignment: str
    notebook: str
    path: Path | None  # None: the notebook is missing
    strays: list[str] = field(default_factory=list)  # unexpected notebooks in the student's folder


@dataclass
class Outcome:
    rows: list[Row]
    feedback: nbformat.NotebookNode | None = None


# --------------------------------------------------------------------------- discovery


def _visible_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def discover(submissions: Path, assignments: list[str] | None = None, solutions_dir: Path = SOLUTIONS):
    """Tasks for SUBMISSIONS_DIR/<student>/<assignment>/<name>.ipynb, and rows for what cannot be graded.

    Assignments graded: those named, else every known assignment some student submitted;
    a student without one of them gets ``missing`` rows.
    """
    known = list_assignments(solutions_dir)
    students = _visible_dirs(submissions)
    problems: list[Row] = []
    found: set[str] = set()
    for student in students:
        for folder in _visible_dirs(student):
            if folder.name in known:
                found.add(folder.name)
            elif assignments is None or folder.name in assignments:
                problems.append(Row(student.name, folder.name, "", "", "unreadable", 0, 0,
                                    f"unknown assignment {folder.name!r}: not a folder of solutions/ (known: {', '.join(known)})",
                                    grader_failure=True))
    wanted = sorted(assignments) if assignments else sorted(found)
    for name in wanted:
        if name not in known:
            problems.append(Row("*", name, "", "", "unreadable", 0, 0, f"unknown assignment {name!r}", grader_failure=True))
    wanted = [a for a in wanted if a in known]
    tasks = []
    for student in students:
        for assignment in wanted:
            folder = student / assignment
            present = {p.stem: p for p in folder.glob("*.ipynb")} if folder.is_dir() else {}
            expected = source_names(assignment, solutions_dir)
            strays = sorted(f"{s}.ipynb" for s in present if s not in expected)
            for name in expected:
                tasks.append(Task(student.name, assignment, name, present.get(name), strays))
    return tasks, problems


# --------------------------------------------------------------------------- verification (clean process)


def verify_recording(check_name: str, path: Path) -> str | None:
    """None if the recording at ``path`` passes ``check.verify`` here; else why not."""
    from course_lib.checks import CheckFailed, get_check

    check = get_check(check_name)
    if not path.is_file():
        return f"{check_name}: no outputs were recorded (the check was replaced, skipped, or not reached)"
    if path.stat().st_size > MAX_RECORDING_BYTES:
        return f"{check_name}: the recorded outputs are implausibly large ({path.stat().st_size} bytes)"
    try:
        outputs = recorder.load(path)
    except Exception as err:  # noqa: BLE001 - anything unreadable is a failure, never a pass
        return f"{check_name}: the recorded outputs could not be read ({type(err).__name__})"
    if not isinstance(outputs, dict):
        return f"{check_name}: the recorded outputs are malformed"
    try:
        check.verify(check.make_inputs(), outputs)
    except CheckFailed as err:
        return f"{check_name}: {err}"
    except Exception as err:  # noqa: BLE001
        return f"{check_name}: the recorded outputs are malformed ({type(err).__name__}: {err})"
    return None


_OUT_OF_MEMORY = ("raised MemoryError", "can't allocate memory", "DefaultCPUAllocator")


def _verdicts(task: Task, source: SourceNotebook, prepared: Prepared, result: dict, rec_dir: Path, now: str,
              limits: Limits) -> list[Row]:
    rows = []
    for g in source.graded:
        run = result.get("cells", {}).get(str(prepared.run_index[g.grade_id]))
        passed = False
        if run is None:
            status, message = result.get("default_status", "error"), result.get("default_reason", "the cell was not run")
        elif run["status"] == "ok":
            problems = [p for c in g.checks if (p := verify_recording(c, rec_dir / f"{recorder._safe(g.grade_id)}__{recorder._safe(c)}.pt"))]
            if problems:
                status = "failed"
                message = "the cell ran without error in the notebook, but its outputs did not verify outside the notebook: " + "; ".join(problems)
            else:
                status, message, passed = "passed", "", True
        elif run["status"] == "error":
            evalue = run.get("evalue", "")
            if run.get("ename") == "MemoryError" or any(s in evalue for s in _OUT_OF_MEMORY):
                status = "error"
                message = f"out of memory (the limit is {limits.memory_mb} MiB per notebook): {run.get('ename')}: {evalue}"
            elif run.get("ename") == "CheckFailed":
                status, message = "failed", evalue
            else:
                status, message = "error", f"{run.get('ename')}: {run.get('evalue', '')}".rstrip(": ")
        elif run["status"] == "timeout":
            status, message = "timeout", run.get("reason", "timeout")
        else:  # not_run
            reason = run.get("reason", "not run")
            status = "timeout" if "time limit" in reason else "error"
            message = reason
        if g.grade_id in prepared.tampered:
            outcome = "passed" if passed else f"{status}: {message}"
            message = "; ".join(prepared.tampered[g.grade_id]) + f". Graded with the restored cell: {outcome}"
            status = "tampered"
        rows.append(Row(task.student, task.assignment, task.notebook, g.grade_id, status,
                        g.points if passed else 0.0, g.points, message, now))
    return rows


# --------------------------------------------------------------------------- running one notebook


def _kill(pgid: int | None) -> None:
    if pgid:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _kernel_pid(job_dir: Path, worker_pid: int) -> int | None:
    """The kernel's pid from the runner, trusted only if it really is the worker's child."""
    try:
        pid = int((job_dir / "kernel.pid").read_text().strip())
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        ppid, pgrp = (int(x) for x in stat[stat.rindex(")") + 2 :].split()[1:3])
        return pid if ppid == worker_pid and pgrp == pid else None
    except (OSError, ValueError):
        return None


def run_notebook(prepared: Prepared, source: SourceNotebook, limits: Limits, job_dir: Path) -> tuple[dict, nbformat.NotebookNode]:
    """Execute ``prepared.run_nb`` in a worker subprocess; return its per-cell results and the executed notebook."""
    work = job_dir / "work"
    shutil.copytree(source.path.parent, work, ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
    (job_dir / "recordings").mkdir()
    nbformat.write(prepared.run_nb, job_dir / "run.ipynb")
    job = {
        "notebook": "run.ipynb",
        "cwd": str(work),
        "recordings": str(job_dir / "recordings"),
        "cell_timeout": limits.cell_timeout,
        "total_timeout": limits.total_timeout,
        "memory_bytes": int(limits.memory_mb) * 2**20,
    }
    (job_dir / "job.json").write_text(json.dumps(job))
    env = {k: v for k, v in os.environ.items() if k != recorder.ENV_VAR}
    with open(job_dir / "runner.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "course_lib.grading.runner", str(job_dir)],
            stdout=log, stderr=subprocess.STDOUT, cwd=job_dir, env=env, start_new_session=True,
        )
        try:
            proc.wait(timeout=limits.total_timeout + WORKER_SLACK)
            killed = False
        except subprocess.TimeoutExpired:
            kernel = _kernel_pid(job_dir, proc.pid)
            _kill(proc.pid)
            _kill(kernel)
            proc.wait()
            killed = True
    result_path = job_dir / "result.json"
    if killed or not result_path.is_file():
        why = (
            f"the grader killed the notebook's worker after {limits.total_timeout + WORKER_SLACK:g} s"
            if killed
            else f"the grader's worker ended without a result (exit status {proc.returncode})"
        )
        result = {"started": True, "cells": {}, "default_status": "timeout" if killed else "error", "default_reason": why,
                  "grader_failure": not killed}
    else:
        result = json.loads(result_path.read_text())
        if not result.get("started"):
            result.update(default_status="error", default_reason=result.get("error", "the kernel did not start"), grader_failure=True)
    executed_path = job_dir / "executed.ipynb"
    executed = nbformat.read(executed_path, as_version=4) if executed_path.is_file() else prepared.run_nb
    return result, executed


# --------------------------------------------------------------------------- grading one task


class _SourceCache:
    def __init__(self, solutions_dir: Path):
        self.solutions_dir = solutions_dir
        self._cache: dict[tuple[str, str], SourceNotebook | SourceError] = {}
        self._lock = threading.Lock()

    def get(self, assignment: str, name: str) -> SourceNotebook:
        with self._lock:
            key = (assignment, name)
            if key not in self._cache:
                try:
                    self._cache[key] = load_source(assignment, name, self.solutions_dir)
                except SourceError as err:
                    self._cache[key] = err
            value = self._cache[key]
        if isinstance(value, SourceError):
            raise value
        return value


def _rows_for_all(task: Task, source: SourceNotebook, status: str, message: str, now: str, failure: bool = False) -> list[Row]:
    return [Row(task.student, task.assignment, task.notebook, g.grade_id, status, 0.0, g.points, message, now, failure)
            for g in source.graded]


def grade_task(task: Task, limits: Limits, sources: _SourceCache, work_root: Path) -> Outcome:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    try:
        source = sources.get(task.assignment, task.notebook)
    except SourceError as err:
        return Outcome([Row(task.student, task.assignment, task.notebook, "", "error", 0, 0,
                            f"grader failure: the source notebook is broken: {err}", now, True)])
    if task.path is None:
        if task.strays:
            msg = f"expected {task.notebook}.ipynb but found {', '.join(task.strays)}: rename the file you meant to submit"
            return Outcome(_rows_for_all(task, source, "unreadable", msg, now))
        return Outcome(_rows_for_all(task, source, "missing", f"{task.notebook}.ipynb was not submitted", now))
    try:
        submission = read_submission(task.path, source)
    except Unreadable as err:
        return Outcome(_rows_for_all(task, source, "unreadable", str(err), now))
    prepared = prepare(source, submission)
    job_dir = Path(tempfile.mkdtemp(prefix="job-", dir=work_root))
    try:
        result, executed = run_notebook(prepared, source, limits, job_dir)
        rows = _verdicts(task, source, prepared, result, job_dir / "recordings", now, limits)
        if result.get("grader_failure"):
            for row in rows:
                row.grader_failure = True
                row.message = "grader failure: " + row.message
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)
    from course_lib.grading.feedback import feedback_notebook

    return Outcome(rows, feedback_notebook(executed, source, prepared, rows))


# --------------------------------------------------------------------------- the gradebook


def read_gradebook(out_dir: Path) -> list[dict]:
    path = out_dir / "gradebook.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    return data["rows"] if isinstance(data, dict) else data


def write_gradebook(out_dir: Path, rows: list[Row], regraded: set[tuple[str, str]]) -> list[dict]:
    """Merge: rows of (student, assignment) pairs graded now replace the old ones; others are kept."""
    out_dir.mkdir(parents=True, exist_ok=True)
    kept = [r for r in read_gradebook(out_dir) if (r["student"], r["assignment"]) not in regraded]
    new = [r.to_dict() for r in rows]
    merged: dict[tuple, dict] = {}
    for r in kept + new:  # keyed: a later row for the same key replaces an earlier one
        merged[(r["student"], r["assignment"], r["notebook"], r["grade_id"])] = r
    ordered = sorted(merged.values(), key=lambda r: (r["student"], r["assignment"], r["notebook"]))
    tmp = out_dir / "gradebook.json.tmp"
    tmp.write_text(json.dumps({"fields": list(FIELDS), "rows": ordered}, indent=1, ensure_ascii=False))
    tmp.replace(out_dir / "gradebook.json")
    with open(out_dir / "gradebook.csv.tmp", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(ordered)
    (out_dir / "gradebook.csv.tmp").replace(out_dir / "gradebook.csv")
    return ordered


# --------------------------------------------------------------------------- the whole run


def _grader_fingerprint(assignments: set[str], solutions_dir: Path) -> str:
    """A hash of the files the verdicts and limits depend on: a submission must not change them.

    The grader's own code, the check framework, the graded assignments' checks and
    source notebooks. (Verdicts use the modules loaded before any learner code ran,
    so a change cannot alter this run's verdicts, but it could alter later runs.)
    """
    lib = ROOT / "course_lib"
    paths = [*(lib / "grading").glob("*.py"), lib / "checks" / "__init__.py", lib / "checks" / "_core.py"]
    for a in sorted(assignments):
        paths += [lib / "checks" / f"{a}.py", *(solutions_dir / a).glob("*.ipynb")]
    h = hashlib.sha256()
    for path in sorted(paths):
        try:
            h.update(str(path).encode() + b"\0" + path.read_bytes())
        except OSError:
            h.update(str(path).encode() + b"\0<absent>")
    return h.hexdigest()


@dataclass
class GradeRun:
    rows: list[Row]
    feedback: dict[tuple[str, str, str], nbformat.NotebookNode]

    @property
    def ok(self) -> bool:
        return not any(r.grader_failure for r in self.rows)


def grade_tasks(tasks: list[Task], limits: Limits = Limits(), jobs: int = 1, solutions_dir: Path = SOLUTIONS,
                progress=None) -> GradeRun:
    import course_lib.checks  # noqa: F401 - load every check (and torch) before any learner code runs

    sources = _SourceCache(solutions_dir)
    graded_assignments = {t.assignment for t in tasks}
    fingerprint = _grader_fingerprint(graded_assignments, solutions_dir)
    work_root = Path(tempfile.mkdtemp(prefix="course-grading-"))
    os.chmod(work_root, 0o711)  # sibling job folders cannot be listed from a kernel (same user: not a wall)

    def one(task: Task) -> Outcome:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        try:
            outcome = grade_task(task, limits, sources, work_root)
        except Exception as err:  # noqa: BLE001 - one submission never stops the run
            outcome = Outcome([Row(task.student, task.assignment, task.notebook, "", "error", 0, 0,
                                   f"grader failure: {type(err).__name__}: {err}", now, True)])
        if _grader_fingerprint(graded_assignments, solutions_dir) != fingerprint:
            for row in outcome.rows:
                row.status, row.points, row.grader_failure = "error", 0.0, True
                row.message = ("grader failure: the grader's files (course_lib/grading, the checks or solutions/) "
                               "changed while this notebook ran; regrade it: " + row.message)
        if progress:
            progress(task, outcome)
        return outcome

    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            outcomes = list(pool.map(one, tasks))
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    rows = [r for o in outcomes for r in o.rows]
    feedback = {(t.student, t.assignment, t.notebook): o.feedback for t, o in zip(tasks, outcomes) if o.feedback is not None}
    return GradeRun(rows, feedback)


def grade(submissions: Path, out_dir: Path, limits: Limits = Limits(), jobs: int = 1, assignments: list[str] | None = None,
          solutions_dir: Path = SOLUTIONS, progress=None) -> GradeRun:
    """Grade every submission under ``submissions``; merge into ``out_dir``'s gradebook; write feedback."""
    from course_lib.grading.feedback import write_feedback_html

    tasks, problems = discover(submissions, assignments, solutions_dir)
    run = grade_tasks(tasks, limits, jobs, solutions_dir, progress)
    run.rows = problems + run.rows
    regraded = {(r.student, r.assignment) for r in run.rows}
    write_gradebook(out_dir, run.rows, regraded)
    for (student, assignment, name), nb in run.feedback.items():
        write_feedback_html(nb, out_dir / "feedback" / student / assignment / f"{name}.html")
    return run


def summarize(rows: list[Row]) -> list[str]:
    """One line per (student, assignment): points and the count of each status."""
    lines = []
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.student, r.assignment), []).append(r)
    width = max((len(s) for s, _ in groups), default=7)
    for (student, assignment), rs in sorted(groups.items()):
        got, total = sum(r.points for r in rs), sum(r.max_points for r in rs)
        counts = ", ".join(f"{n} {s}" for s in STATUSES if (n := sum(r.status == s for r in rs)))
        failure = "  [NOT GRADED: see the gradebook]" if any(r.grader_failure for r in rs) else ""
        lines.append(f"{student:<{width}}  {assignment:<26} {got:g}/{total:g}  ({counts}){failure}")
    return lines
