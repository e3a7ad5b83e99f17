"""The grader: run submissions in limited kernels, judge them outside, keep a gradebook.

    course grade SUBMISSIONS_DIR --out grades/ [--jobs N] [--cell-timeout S] [--total-timeout S] [--memory-mb M] [--no-sandbox]

Why not nbgrader's autograde: it computes verdicts inside the learner's kernel
(a cell passes when it raises nothing), so a submission that monkeypatches
``torch.allclose`` or redefines the check functions raises nothing; it also has
no memory cap and no parallel runs. This grader keeps nbgrader's notebook format
and metadata (and uses nbgrader to release and to clear solutions and hidden
tests) but executes each notebook with nbclient in a worker process of its own
(``course_lib.grading.runner``) inside an OS sandbox of its own
(``course_lib.grading.sandbox``: bubblewrap), then decides every verdict here, in
a process that never runs learner code:

    a graded cell earns its points  <=>  it ran without error or timeout
                                         AND every check its SOURCE calls left a
                                         recording, of the learner's code run on inputs
                                         chosen here, that passes check.verify() here
                                         AND the answer is the learner's own (ownwork).

Nothing read from the submissions folder or from a sandbox is trusted: no
symlink is followed, no non-regular file opened, recordings are bounded before
they are loaded. The gradebook is rewritten atomically after every notebook.

Rows of the gradebook: one per (student, assignment, notebook, grade_id) with
points, max_points, status (see STATUSES) and a message. See
chapters/grading_guide.md for the workflow and the threat model.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import inspect
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from course_lib.grading import gradebook, libview, ownwork, recorder, sandbox
from course_lib.grading.gradebook import FIELDS, STATUSES, Row, read_gradebook, write_gradebook  # noqa: F401 (re-exported)
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

#: bounds on a recording, checked before it is loaded (no check records anything near them)
MAX_RECORDING_BYTES = 64 * 2**20  # the file, whose zip entries must be stored uncompressed
MAX_RECORDING_ENTRIES = 4096  # zip entries (one per tensor storage)
MAX_RECORDING_PICKLE_BYTES = 4 * 2**20
MAX_RECORDING_ELEMENTS = 16 * 2**20  # tensor elements + list items + string characters, once loaded
#: what the grader keeps of a sandbox's output stream (beyond it, the sandbox is killed)
MAX_OUTPUT_BYTES = 256 * 2**20
MAX_OUTPUT_MEMBER_BYTES = 64 * 2**20
MAX_OUTPUT_MEMBERS = 2048
MAX_LOG_BYTES = 64 * 2**10
#: a submitted notebook larger than this is not read
MAX_NOTEBOOK_BYTES = 32 * 2**20
#: bounds on a submitted notebook's shape, checked on its bytes before it is parsed (``_shape_problem``):
#: the grader's memory and time per notebook grow with them. The course's notebooks have under 100
#: cells, a few outputs each, and JSON 6 levels deep. (150,000 empty cells, 17 MB, took 3.97 GiB.)
MAX_CELLS = 1000
MAX_OUTPUTS = 5000
MAX_JSON_DEPTH = 64
#: seconds the worker gets on top of total_timeout (kernel start-up, shutdown)
WORKER_SLACK = 120


@dataclass(frozen=True)
class Limits:
    """Resource limits per submitted notebook; defaults documented in chapters/grading_guide.md."""

    cell_timeout: float = 60.0  # seconds per cell, then interrupt (then kill)
    total_timeout: float = 300.0  # seconds of execution per notebook
    memory_mb: int = 4096  # address space of each process, and resident memory of the kernel's processes
    processes: int = 256  # processes + threads in one sandbox (RLIMIT_NPROC per user namespace)
    scratch_mb: int = 512  # the sandbox's only writable place (a tmpfs): working folder and recordings

    def __post_init__(self):
        for name in ("cell_timeout", "total_timeout", "memory_mb", "processes", "scratch_mb"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass
class Task:
    student: str
    assignment: str
    notebook: str
    path: Path | None  # None: the notebook is missing
    strays: list[str] = field(default_factory=list)  # unexpected notebooks in the student's folder
    problem: str | None = None  # why the file cannot be opened (a symlink, a FIFO...): reported, never read


@dataclass
class Outcome:
    rows: list[Row]
    feedback: nbformat.NotebookNode | None = None


# --------------------------------------------------------------------------- discovery


_KINDS = {stat.S_IFLNK: "a symbolic link", stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket",
          stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFREG: "a file"}


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def _entries(path: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Real sub-folders of ``path`` (never through a symlink), and (name, why) for everything else odd."""
    folders, odd = [], []
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        mode = entry.stat(follow_symlinks=False).st_mode
        if not stat.S_ISDIR(mode):
            odd.append((entry.name, f"{_kind(mode)}, not a folder: not graded (never followed or opened)"))
        elif entry.name.startswith((".", "_")):
            odd.append((entry.name, f"a folder whose name starts with {entry.name[0]!r}: not graded; rename it"))
        else:
            folders.append(Path(entry.path))
    return folders, odd


def _notebooks(folder: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """name -> path of the regular .ipynb files in ``folder``, and name -> why for .ipynb names that are not."""
    good, bad = {}, {}
    if not (folder.is_dir() and not folder.is_symlink()):
        return good, bad
    for entry in os.scandir(folder):
        if not entry.name.endswith(".ipynb"):
            continue
        mode = entry.stat(follow_symlinks=False).st_mode
        stem = entry.name[: -len(".ipynb")]
        if stat.S_ISREG(mode):
            good[stem] = Path(entry.path)
        else:
            bad[stem] = f"{entry.name} is {_kind(mode)}, not a regular file: it was not opened; submit the notebook itself"
    return good, bad


def discover(submissions: Path, assignments: list[str] | None = None, solutions_dir: Path = SOLUTIONS):
    """Tasks for SUBMISSIONS_DIR/<student>/<assignment>/<name>.ipynb, and rows for what cannot be graded.

    Assignments graded: those named, else every known assignment some student submitted;
    a student without one of them gets ``missing`` rows. Symlinks, FIFOs, sockets, devices
    and folders named ``.x`` or ``_x`` get an ``unreadable`` row each (never followed or opened).
    """
    known = list_assignments(solutions_dir)
    students, odd = _entries(submissions)
    problems: list[Row] = [Row(name, "", "", "", "unreadable", 0, 0, f"{submissions.name}/{name} is {why}", grader_failure=True)
                           for name, why in odd]
    found: set[str] = set()
    folders_of: dict[Path, set[str]] = {}
    for student in students:
        folders, odd = _entries(student)
        folders_of[student] = {f.name for f in folders}
        for name, why in odd:
            problems.append(Row(student.name, name, "", "", "unreadable", 0, 0, f"{student.name}/{name} is {why}",
                                grader_failure=True))
        for folder in folders:
            if folder.name in known:
                found.add(folder.name)
            elif assignments is None or folder.name in assignments:
                problems.append(Row(student.name, folder.name, "", "", "unreadable", 0, 0,
                                    f"unknown assignment {folder.name!r}: not a folder of solutions/ (known: {', '.join(known)})",
                                    grader_failure=True))
    wanted = sorted(assignments) if assignments else sorted(found)
    for name in wanted:
        if name not in known:
            problems.append(Row(gradebook.CLASS_WIDE, name, "", "", "unreadable", 0, 0, f"unknown assignment {name!r}", grader_failure=True))
    wanted = [a for a in wanted if a in known]
    tasks = []
    for student in students:
        for assignment in wanted:
            folder = student / assignment
            present, bad = _notebooks(folder) if assignment in folders_of[student] else ({}, {})
            expected = source_names(assignment, solutions_dir)
            strays = sorted(f"{s}.ipynb" for s in present if s not in expected)
            for name in expected:
                tasks.append(Task(student.name, assignment, name, present.get(name) or (folder / f"{name}.ipynb" if name in bad else None),
                                  strays, bad.get(name)))
    return tasks, problems


# --------------------------------------------------------------------------- verification (clean process)


class _Bound(Exception):
    pass


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


def _shape_problem(raw: bytes) -> str | None:
    """Why a notebook's bytes are over the grader's bounds (cells, outputs, JSON nesting), else None.

    Read without parsing (a regular expression drops the strings, then the brackets are
    counted), so a notebook nested 100,000 deep or with 150,000 cells costs the grader well
    under a second and no more memory than a copy of the file: parsing it would not.
    """
    import numpy as np

    cells = len(re.findall(rb'"cell_type"\s*:', raw))
    if cells > MAX_CELLS:
        return f"it has {cells} cells; the grader reads at most {MAX_CELLS} (the assignment has far fewer)"
    outputs = len(re.findall(rb'"output_type"\s*:', raw))
    if outputs > MAX_OUTPUTS:
        return f"it has {outputs} outputs; the grader reads at most {MAX_OUTPUTS}: clear the outputs and submit again"
    structure = _JSON_STRING.sub(b"", raw).translate(None, bytes(set(range(256)) - set(b"[]{}")))
    depth = 0
    for start in range(0, len(structure), 1 << 20):  # in chunks: a bounded array per step
        steps = np.frombuffer(structure[start:start + (1 << 20)], dtype=np.uint8)
        levels = depth + np.cumsum(np.where((steps == ord("[")) | (steps == ord("{")), 1, -1), dtype=np.int64)
        if levels.max(initial=depth) > MAX_JSON_DEPTH:
            return f"its JSON is nested more than {MAX_JSON_DEPTH} levels deep; a notebook's is about 6"
        depth = int(levels[-1]) if len(levels) else depth
    return None


def _read_bounded(path: Path, source: SourceNotebook) -> nbformat.NotebookNode:
    """read_submission, after checking the notebook's shape; Unreadable (why) for anything over the bounds."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return read_submission(path, source)  # it says why the file cannot be opened
    with os.fdopen(fd, "rb") as f:
        raw = f.read(MAX_NOTEBOOK_BYTES + 1) if stat.S_ISREG(os.fstat(f.fileno()).st_mode) else b""
    if len(raw) <= MAX_NOTEBOOK_BYTES and (why := _shape_problem(raw)):
        raise Unreadable(f"not graded: {why}")
    try:
        return read_submission(path, source)
    except (RecursionError, MemoryError) as err:  # a backstop: the bounds above should come first
        raise Unreadable(f"not graded: the notebook's JSON is too deeply nested or too large to read ({type(err).__name__})") from None


def _count_elements(x, budget: list[int], depth: int = 0) -> None:
    """Charge every tensor element, list item and string character to ``budget``; raise _Bound when spent."""
    import torch

    if depth > 12:
        raise _Bound("nested more than 12 deep")
    if isinstance(x, torch.Tensor):
        if x.layout != torch.strided:
            raise _Bound(f"a {x.layout} tensor")
        budget[0] -= x.numel()
    elif isinstance(x, str):
        budget[0] -= len(x)
    elif isinstance(x, (list, tuple)):
        budget[0] -= len(x)
        if budget[0] >= 0:
            for v in x:
                _count_elements(v, budget, depth + 1)
    elif isinstance(x, dict):
        budget[0] -= len(x)
        if budget[0] >= 0:
            for k, v in x.items():
                _count_elements(k, budget, depth + 1)
                _count_elements(v, budget, depth + 1)
    if budget[0] < 0:
        raise _Bound(f"more than {MAX_RECORDING_ELEMENTS} elements once loaded")


def load_recording(path: Path):
    """A recording's contents, after checking its bounds; raise _Bound (why) or another error if it breaks one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        raise _Bound(f"cannot be opened ({err.strerror})") from err
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise _Bound(f"is {_kind(st.st_mode)}")
        if st.st_size > MAX_RECORDING_BYTES:
            raise _Bound(f"is implausibly large ({st.st_size} bytes)")
        try:
            with zipfile.ZipFile(f) as z:
                infos = z.infolist()
        except zipfile.BadZipFile as err:
            raise _Bound("is not a torch.save archive") from err
        if len(infos) > MAX_RECORDING_ENTRIES:
            raise _Bound(f"has {len(infos)} entries")
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
                raise _Bound(f"holds a compressed entry ({info.filename}): torch.save never compresses")
            if info.filename.endswith(".pkl") and info.file_size > MAX_RECORDING_PICKLE_BYTES:
                raise _Bound(f"holds a {info.file_size}-byte pickle")
        if sum(i.file_size for i in infos) > MAX_RECORDING_BYTES:
            raise _Bound("is implausibly large once unpacked")
        f.seek(0)
        outputs = recorder.load(f)
    _count_elements(outputs, [MAX_RECORDING_ELEMENTS])
    return outputs


def verify_recording(check_name: str, path: Path, inputs: dict | None = None) -> str | None:
    """None if the recording at ``path`` passes ``check.verify`` here, on ``inputs``; else why not."""
    from course_lib.checks import CheckFailed, get_check

    check = get_check(check_name)
    if not os.path.lexists(path):
        return f"{check_name}: no outputs were recorded (the check was replaced, skipped, or not reached)"
    try:
        outputs = load_recording(path)
    except _Bound as err:
        return f"{check_name}: the recorded outputs were not loaded: the file {err}"
    except Exception as err:  # noqa: BLE001 - anything unreadable is a failure, never a pass
        return f"{check_name}: the recorded outputs could not be read ({type(err).__name__})"
    if not isinstance(outputs, dict):
        return f"{check_name}: the recorded outputs are malformed"
    try:
        check.verify(copy.deepcopy(inputs) if inputs is not None else check.make_inputs(), outputs)
    except CheckFailed as err:
        return f"{check_name}: {err}"
    except Exception as err:  # noqa: BLE001
        return f"{check_name}: the recorded outputs are malformed ({type(err).__name__}: {err})"
    return None


_OUT_OF_MEMORY = ("raised MemoryError", "can't allocate memory", "DefaultCPUAllocator")


def _describe_cell_error(run: dict, where: str) -> str:
    """What went wrong in a learner's cell, first line first: the error, its line, a syntax error's caret."""
    from course_lib.grading.notebooks import clean_evalue

    if run.get("status") == "timeout":
        text = f"{where[0].upper()}{where[1:]} {run.get('reason', 'timed out')}"
        if isinstance(run.get("line"), int) and run.get("code"):
            text += f"; it was running line {run['line']}:\n    {str(run['code']).strip()}"
        return text
    ename = str(run.get("ename", "Error"))
    text = f"{ename} in {where}" + (f", line {run['line']}" if isinstance(run.get("line"), int) else "")
    text += f": {clean_evalue(ename, str(run.get('evalue', '')))}".rstrip(": ")
    if run.get("code"):
        code = str(run["code"])
        if run.get("caret"):  # a syntax error: IPython's line and caret, already aligned
            text += f"\n{code}\n{run['caret']}"
        else:
            text += f"\n    {code.strip()}"
    return text


def _first_cause(gid: str, status: str, message: str, cells: dict, prepared: Prepared, roles: dict) -> tuple[str, str]:
    """(status, message) of a graded cell that did not pass, led by the first real cause when it lies in the learner's cells.

    A test that fails with ``NameError`` because the answer cell above it did not run (a
    syntax error, an import error, an exception or a timeout there) is reported by that
    cause, with its line: the learner's cells between the previous graded cell and this
    one, else (for a ``NameError``) an earlier learner cell that defines the missing name.
    """
    from course_lib.grading.notebooks import defines

    here = prepared.run_index[gid]
    before = [i for i in prepared.run_index.values() if i < here]
    start = max(before, default=-1)

    def broken(i: int) -> bool:
        run = cells.get(str(i))
        return roles.get(i, ("",))[0] in ("answer", "extra") and isinstance(run, dict) and run.get("status") in ("error", "timeout")

    cause = next((i for i in range(start + 1, here) if broken(i)), None)
    name = re.match(r"NameError: name '([^']+)' is not defined", message)
    if cause is None and name:
        cause = next((i for i in range(here) if broken(i) and defines(str(prepared.run_nb.cells[i].get("source", "")), name.group(1))),
                     None)
    if cause is None:
        return status, message
    run = cells[str(cause)]
    described = _describe_cell_error(run, roles[cause][1])
    if status == "failed":
        return status, f"{message}\nNote: {described}"
    if run.get("status") == "timeout":
        return "timeout", f"{described}\nIt was interrupted there, so this test could not use your code ({message})."
    stopped = ("did not run at all (Python could not read it)" if run.get("caret") or run.get("ename") in ("SyntaxError", "IndentationError", "TabError")
               else "stopped at that line" if run.get("code") else "stopped with this error")
    return status, f"{described}\nThat cell {stopped}, so this test could not use your code ({message})."


def _verdicts(task: Task, source: SourceNotebook, prepared: Prepared, result: dict, rec_dir: Path, now: str,
              limits: Limits, inputs: dict, findings: dict) -> list[Row]:
    from course_lib.grading.notebooks import cell_roles

    rows = []
    cells = result.get("cells") if isinstance(result.get("cells"), dict) else {}
    roles = cell_roles(prepared.run_nb, prepared.run_index)
    for g in source.graded:
        run = cells.get(str(prepared.run_index[g.grade_id]))
        run = run if isinstance(run, dict) else None
        passed = False
        if run is None:
            status, message = result.get("default_status", "error"), result.get("default_reason", "the cell was not run")
        elif run.get("status") == "ok":
            problems = [p for c in g.checks
                        if (p := verify_recording(c, rec_dir / f"{recorder._safe(g.grade_id)}__{recorder._safe(c)}.pt", inputs.get(c)))]
            if problems:
                status = "failed"
                message = "; ".join(problems)
            else:
                status, message, passed = "passed", "", True
        elif run.get("status") == "error":
            evalue = str(run.get("evalue", ""))
            if run.get("ename") == "MemoryError" or any(s in evalue for s in _OUT_OF_MEMORY):
                status = "error"
                message = f"out of memory (the limit is {limits.memory_mb} MiB per notebook): {run.get('ename')}: {evalue}"
            elif run.get("ename") == "CheckFailed":
                status, message = "failed", evalue
                if isinstance(run.get("frame"), dict) and run["frame"].get("function"):  # where the learner's code raised
                    frame = run["frame"]
                    message += f"\nYour code raised it in {frame['function']}, line {frame.get('line')}" + (
                        f":\n    {frame['code']}" if frame.get("code") else "")
            else:
                status, message = "error", f"{run.get('ename')}: {evalue}".rstrip(": ")
        elif run.get("status") == "timeout":
            status, message = "timeout", str(run.get("reason", "timeout"))
        else:  # not_run
            reason = str(run.get("reason", "not run"))
            status = "timeout" if "time limit" in reason else "error"
            message = re.sub(r"\bcell (\d+)", lambda m: roles.get(int(m.group(1)), ("", m.group(0)))[1], reason)
        if not passed and run is not None:
            status, message = _first_cause(g.grade_id, status, message, cells, prepared, roles)
        if g.grade_id in prepared.tampered:
            outcome = "passed" if passed else f"{status}: {message}"
            message = "; ".join(prepared.tampered[g.grade_id]) + f". Graded with the restored cell: {outcome}"
            status = "tampered"
        if g.grade_id in findings:
            message = ownwork.message(findings[g.grade_id]) + f". Without this: {status}" + (f": {message}" if message else "")
            status, passed = "not_own_work", False
        elif libview.WITHHELD in message:
            message = ("not graded as the learner's own work (0 points; for the instructor to review): the answer called "
                       "course_lib's reference, which the sandbox withholds: " + message)
            status, passed = "not_own_work", False
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


def _kernel_pid(scratch: Path, worker_pid: int) -> int | None:
    """(--no-sandbox) The kernel's pid from the runner, trusted only if it really is the worker's child."""
    try:
        pid = int((scratch / "kernel.pid").read_text().strip())
        with open(f"/proc/{pid}/stat") as f:
            stat_line = f.read()
        ppid, pgrp = (int(x) for x in stat_line[stat_line.rindex(")") + 2 :].split()[1:3])
        return pid if ppid == worker_pid and pgrp == pid else None
    except (OSError, ValueError):
        return None


def _drain(stream, path: Path, cap: int, overflow: threading.Event) -> None:
    """Copy ``stream`` to ``path`` up to ``cap`` bytes; past it, set ``overflow`` and discard the rest."""
    kept = 0
    with open(path, "wb") as out:
        while chunk := stream.read(1 << 16):
            if kept + len(chunk) > cap:
                overflow.set()
                continue
            out.write(chunk)
            kept += len(chunk)


_MEMBER = re.compile(r"out/(result\.json|executed\.ipynb)|recordings/[A-Za-z0-9_.-]{1,200}\.pt|runner\.log")


def _unpack(tar_path: Path, dest: Path) -> list[str]:
    """Extract the runner's regular files with the expected names and sizes; return notes on what was dropped."""
    notes: list[str] = []
    try:
        with tarfile.open(tar_path, "r:") as tar:
            for n, member in enumerate(tar):
                if n >= MAX_OUTPUT_MEMBERS:
                    notes.append(f"more than {MAX_OUTPUT_MEMBERS} files: the rest dropped")
                    break
                if member.isdir():
                    continue
                if not (member.isreg() and _MEMBER.fullmatch(member.name) and member.size <= MAX_OUTPUT_MEMBER_BYTES):
                    notes.append(f"dropped {member.name[:80]!r} (not a regular file with an expected name and size)")
                    continue
                target = dest / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                data = tar.extractfile(member)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(data, out)
    except (tarfile.TarError, OSError, EOFError) as err:
        notes.append(f"the sandbox's output stream is damaged ({type(err).__name__})")
    return notes


def _read_json(path: Path, cap: int):
    if not path.is_file() or path.stat().st_size > cap:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


_LIB_TARGET: dict[str, Path] = {}
_LIB_TARGET_LOCK = threading.Lock()


class LibraryPlacementError(gradebook.GradebookError):
    """The sandbox's Python would not import the course_lib copy the grader binds (the message says why and what to do)."""


def _where_python_imports_course_lib(python: str) -> Path | None:
    """The course_lib folder ``python`` imports in the sandbox's environment (no PYTHONPATH, an empty working folder)."""
    with tempfile.TemporaryDirectory() as empty:
        proc = subprocess.run([python, "-c", "import course_lib, os; print(os.path.dirname(os.path.realpath(course_lib.__file__)))"],
                              capture_output=True, text=True, cwd=empty, timeout=120,
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": empty, "LANG": "C.UTF-8"})
    return Path(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 and proc.stdout.strip() else None


def lib_target(lib_pkg: Path, input_dir: Path, scratch_mb: int) -> Path:
    """Where the sandbox binds its course_lib copy: where the sandbox's own Python imports course_lib from.

    That is not always where the grader imported it from: with a ``PYTHONPATH`` pointing to another
    copy, or a venv installed (editable) from another checkout, the sandbox's Python (no PYTHONPATH
    there) imports the venv's. Found once per grader (outside, in the sandbox's environment), then
    checked inside a sandbox with the copy bound there; LibraryPlacementError if that fails.
    """
    with _LIB_TARGET_LOCK:
        if sys.executable in _LIB_TARGET:
            return _LIB_TARGET[sys.executable]
        target = _where_python_imports_course_lib(sys.executable)
        if target is None:
            raise LibraryPlacementError(
                f"the sandbox's Python ({sys.executable}) cannot import course_lib without PYTHONPATH, so no notebook could "
                f"run there. Install the course into that environment (`pip install -e '.[grade]'` in the course's folder, "
                "or `make lab`), then grade again.")
        probe = sandbox.command([sys.executable, "-c", "import course_lib, os; print(os.path.realpath(course_lib.__file__))"],
                                input_dir, lib_pkg, target, scratch_mb)
        proc = subprocess.run(probe, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        seen = proc.stdout.strip()
        if proc.returncode != 0 or seen != str(target / "__init__.py"):
            raise LibraryPlacementError(
                f"the sandbox's Python imports course_lib from {seen or 'nowhere'} ({proc.stderr.strip()[-300:]}), not from "
                f"the copy the grader binds at {target}: reinstall the course into {sys.prefix} "
                "(`pip install -e '.[grade]'` in this checkout) and grade again.")
        if target != libview.imported_package():
            print(f"course grade: note: the grader imported course_lib from {libview.imported_package()}, but the sandbox's "
                  f"Python imports it from {target}: the sandbox's copy (made from the former) is bound there.",
                  file=sys.stderr, flush=True)
        _LIB_TARGET[sys.executable] = target
        return target


def run_notebook(prepared: Prepared, source: SourceNotebook, limits: Limits, job_dir: Path, lib_pkg: Path,
                 inputs_file: Path, sandboxed: bool = True) -> tuple[dict, nbformat.NotebookNode]:
    """Execute ``prepared.run_nb`` in a sandboxed worker; return its per-cell results and the executed notebook.

    Recordings land in ``job_dir/out/recordings``, read only after the sandbox has gone.
    """
    inp = job_dir / "in"
    shutil.copytree(source.path.parent, inp / "work", ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
    nbformat.write(prepared.run_nb, inp / "run.ipynb")
    shutil.copyfile(inputs_file, inp / "inputs.pt")
    cpu = int(limits.total_timeout + WORKER_SLACK)
    memory = int(limits.memory_mb) * 2**20
    job = {"notebook": "run.ipynb", "cell_timeout": limits.cell_timeout, "total_timeout": limits.total_timeout,
           "memory_bytes": memory}
    runner = [sys.executable, "-m", "course_lib.grading.runner"]
    if sandboxed:
        job["rlimits"] = sandbox.rlimits(limits.processes, max(memory, 2**30), limits.scratch_mb * 2**20, cpu)
        argv = sandbox.command([*runner, sandbox.INPUT, sandbox.JOB], inp, lib_pkg, lib_target(lib_pkg, inp, limits.scratch_mb),
                               limits.scratch_mb)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    else:
        scratch = job_dir / "scratch"
        argv = [*runner, str(inp), str(scratch)]
        env = {k: v for k, v in os.environ.items() if k not in (recorder.ENV_VAR, "PYTHONPATH")}
        env["PYTHONPATH"] = str(lib_pkg.parent)  # the copy with the references withheld comes first
    (inp / "job.json").write_text(json.dumps(job))
    for path in [inp, *inp.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    overflow = threading.Event()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=job_dir, env=env, start_new_session=True)
    drains = [threading.Thread(target=_drain, args=(proc.stdout, job_dir / "out.tar", MAX_OUTPUT_BYTES, overflow), daemon=True),
              threading.Thread(target=_drain, args=(proc.stderr, job_dir / "sandbox.log", MAX_LOG_BYTES, threading.Event()),
                               daemon=True)]
    for t in drains:
        t.start()
    deadline = limits.total_timeout + WORKER_SLACK
    killed = None
    try:
        waited = 0.0
        while proc.poll() is None:
            try:
                proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                waited += 0.5
            if overflow.is_set():
                killed = f"the grader stopped the sandbox: it sent more than {MAX_OUTPUT_BYTES // 2**20} MiB of output"
            elif waited > deadline:
                killed = f"the grader killed the notebook's worker after {deadline:g} s"
            if killed:
                kernel = None if sandboxed else _kernel_pid(job_dir / "scratch", proc.pid)
                _kill(proc.pid)  # bwrap: the sandbox's PID namespace, and everything in it, goes with it
                _kill(kernel)
                proc.wait()
                break
    finally:
        if proc.poll() is None:
            _kill(proc.pid)
            proc.wait()
        for t in drains:
            t.join(timeout=30)
    out = job_dir / "out"
    out.mkdir()
    notes = _unpack(job_dir / "out.tar", out) if not killed else []
    result = _read_json(out / "out" / "result.json", 16 * 2**20)
    if not killed and not isinstance(result, dict) and sandboxed and proc.returncode and proc.returncode > 128:
        # the runner was killed by a signal from inside the sandbox: only the submission can send one there
        result = {"started": True, "cells": {}, "default_status": "error", "default_reason":
                  f"the notebook's worker was killed by signal {proc.returncode - 128} from inside the sandbox "
                  "(code in the submission killed the process that runs it); nothing was recorded"}
    elif killed or not isinstance(result, dict):
        log = (job_dir / "sandbox.log").read_text(errors="replace")[-600:].strip() if (job_dir / "sandbox.log").is_file() else ""
        why = killed or (f"the grader's worker ended without a readable result (exit status {proc.returncode})"
                         + (f": {log}" if log else "") + ("; " + "; ".join(notes[:3]) if notes else ""))
        result = {"started": True, "cells": {}, "default_status": "timeout" if killed and not overflow.is_set() else "error",
                  "default_reason": why, "grader_failure": not killed}
    elif not result.get("started"):
        result.update(default_status="error", default_reason=str(result.get("error", "the kernel did not start")), grader_failure=True)
    executed = prepared.run_nb
    path = out / "out" / "executed.ipynb"
    if path.is_file():
        try:  # written in the sandbox: bounded like a submission before it is parsed
            raw = path.read_bytes()
            if _shape_problem(raw) is None:
                executed = nbformat.reads(raw.decode("utf-8"), as_version=4)
        except Exception:  # noqa: BLE001 - the feedback then shows the notebook without outputs
            pass
    _locate_errors(result, executed)
    return result, executed


def _locate_errors(result: dict, executed: nbformat.NotebookNode) -> None:
    """Add to each errored cell's result the line it failed at (and a syntax error's caret), read from its traceback.

    A timed-out cell's line is where the interrupt stopped it (its KeyboardInterrupt), when that reached the notebook.
    """
    from course_lib.grading.notebooks import error_details, learner_frame

    cells = result.get("cells") if isinstance(result.get("cells"), dict) else {}
    for key, run in cells.items():
        try:
            if not (isinstance(run, dict) and run.get("status") in ("error", "timeout")):
                continue
            ename = str(run.get("ename", "")) if run["status"] == "error" else "KeyboardInterrupt"
            cell = executed.cells[int(key)]
            count = cell.get("execution_count")
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error" and str(out.get("ename", "")) == ename:
                    details = error_details(out, count if isinstance(count, int) else None)
                    run.update({k: str(v)[:2000] if k != "line" else v for k, v in details.items()})
                    if ename == "CheckFailed" and (frame := learner_frame(out)):
                        run["frame"] = {k: str(v)[:2000] if k != "line" else v for k, v in frame.items()}
                    break
        except (IndexError, ValueError, TypeError, AttributeError):  # an executed notebook that does not match: no details
            continue


# --------------------------------------------------------------------------- grading one task


class _SourceCache:
    """The source notebook of each (assignment, notebook), read once from ``solutions_dir``.

    ``preloaded``: sources given ready-made, e.g. ``course check`` in the learners' public copy,
    which scores against the released exercise (``notebooks.load_released``).
    """

    def __init__(self, solutions_dir: Path, preloaded: dict[tuple[str, str], SourceNotebook] | None = None):
        self.solutions_dir = solutions_dir
        self._cache: dict[tuple[str, str], SourceNotebook | SourceError] = dict(preloaded or {})
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


def _inputs_for(check, seed: int | None) -> dict:
    """A check's inputs for a graded run: drawn from the run's ``seed``; None: the fixed inputs learners see.

    ``Check.make_inputs(seed=...)`` (course_lib/checks/_core.py) gives fresh inputs of the same
    family (other values, sizes, cases). A check without that parameter keeps its fixed inputs.
    """
    if seed is None:
        return check.make_inputs()
    try:
        seedable = "seed" in inspect.signature(check.make_inputs, follow_wrapped=False).parameters
    except (TypeError, ValueError):
        seedable = False
    return check.make_inputs(seed=seed) if seedable else check.make_inputs()


def new_seed() -> int:
    """A seed no one can predict (the OS's randomness), for one run's check inputs."""
    return secrets.randbelow(2**31)


class _RunFiles:
    """What every job of a run shares, made once: the sandbox's course_lib per assignment, the check inputs."""

    def __init__(self, work_root: Path, solutions_dir: Path, seed: int | None = None):
        self.root, self.solutions_dir, self.seed = work_root, solutions_dir, seed
        self._lock = threading.Lock()
        self._libs: dict[str, Path] = {}
        self._refs: dict[str, list] = {}
        self._inputs: dict[str, dict] = {}
        self._files: dict[tuple[str, str], Path] = {}

    def lib(self, assignment: str) -> Path:
        with self._lock:
            if assignment not in self._libs:
                self._libs[assignment] = libview.build(assignment, self.root / "lib" / assignment, self.solutions_dir)
            return self._libs[assignment]

    def refs(self, assignment: str) -> list:
        with self._lock:
            if assignment not in self._refs:
                self._refs[assignment] = libview.references(assignment, self.solutions_dir, in_answers=True)
            return self._refs[assignment]

    def inputs(self, source: SourceNotebook) -> tuple[dict, Path]:
        """The inputs of every check the notebook's graded cells call (made here), and the file the kernel reads."""
        import torch

        from course_lib.checks import get_check

        with self._lock:
            names = [c for g in source.graded for c in g.checks]
            for name in names:
                if name not in self._inputs:
                    self._inputs[name] = _inputs_for(get_check(name), self.seed)
            key = (source.assignment, source.name)
            if key not in self._files:
                path = self.root / "inputs" / f"{source.assignment}__{source.name}.pt"
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.save({n: self._inputs[n] for n in names}, path)
                self._files[key] = path
            return {n: self._inputs[n] for n in names}, self._files[key]


def _review_notes(submission: nbformat.NotebookNode, source: SourceNotebook, prepared: Prepared) -> list[str]:
    """What the instructor should look at, without a penalty: the course's solution copied verbatim, a
    library implementation of the exercise's concept (torch's fused or multi-head attention, transformers)."""
    from course_lib.grading.notebooks import solution_content

    notes = [f"this notebook holds the course's solution ({r})" for r in solution_content(submission, source)]
    notes += [f"library implementation: {n}" for n in ownwork.library_notes(prepared.run_nb.cells, source.nb.cells)[:5]]
    return notes


def _rows_for_all(task: Task, source: SourceNotebook, status: str, message: str, now: str, failure: bool = False) -> list[Row]:
    return [Row(task.student, task.assignment, task.notebook, g.grade_id, status, 0.0, g.points, message, now, failure)
            for g in source.graded]


def grade_task(task: Task, limits: Limits, sources: _SourceCache, files: _RunFiles, sandboxed: bool = True) -> Outcome:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    try:
        source = sources.get(task.assignment, task.notebook)
    except SourceError as err:
        return Outcome([Row(task.student, task.assignment, task.notebook, "", "error", 0, 0,
                            f"grader failure: the source notebook is broken: {err}", now, True)])
    if task.problem:
        return Outcome(_rows_for_all(task, source, "unreadable", task.problem, now))
    if task.path is None:
        if task.strays:
            msg = f"expected {task.notebook}.ipynb but found {', '.join(task.strays)}: rename the file you meant to submit"
            return Outcome(_rows_for_all(task, source, "unreadable", msg, now))
        return Outcome(_rows_for_all(task, source, "missing", f"{task.notebook}.ipynb was not submitted", now))
    try:
        submission = _read_bounded(task.path, source)
        prepared = prepare(source, submission)
        findings = ownwork.check_notebook(prepared.run_nb.cells, [g.grade_id for g in source.graded], files.refs(task.assignment))
        review = _review_notes(submission, source, prepared)
    except Unreadable as err:
        return Outcome(_rows_for_all(task, source, "unreadable", str(err), now))
    except (RecursionError, MemoryError) as err:  # the submission's content, not the grader: that student's row
        return Outcome(_rows_for_all(task, source, "unreadable", f"not graded: the notebook could not be read within the "
                                     f"grader's bounds ({type(err).__name__})", now))
    inputs, inputs_file = files.inputs(source)
    job_dir = Path(tempfile.mkdtemp(prefix="job-", dir=files.root))
    try:
        result, executed = run_notebook(prepared, source, limits, job_dir, files.lib(task.assignment), inputs_file, sandboxed)
        rows = _verdicts(task, source, prepared, result, job_dir / "out" / "recordings", now, limits, inputs, findings)
        if result.get("grader_failure"):
            for row in rows:
                row.grader_failure = True
                row.message = "grader failure: " + row.message
        elif review:
            for row in rows:
                row.message += ("\n" if row.message else "") + gradebook.REVIEW_MARK + "; ".join(review)
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)
    from course_lib.grading.feedback import feedback_notebook

    try:
        page = feedback_notebook(executed, source, prepared, rows)
    except (RecursionError, MemoryError):  # the submission's outputs: the grade stands, without a page
        page = feedback_notebook(prepared.run_nb, source, prepared, rows)
    return Outcome(rows, page)


# --------------------------------------------------------------------------- the whole run


def _grader_fingerprint(assignments: set[str], solutions_dir: Path) -> str:
    """A hash of the files the verdicts and limits depend on: a submission must not change them.

    All of course_lib's Python files and the graded assignments' source notebooks. Used with
    --no-sandbox only: in a sandbox they are read-only or absent, and a change made meanwhile
    by someone else (an instructor editing the course) is no attack.
    """
    lib = ROOT / "course_lib"
    paths = [*lib.rglob("*.py")]
    for a in sorted(assignments):
        paths += [*(solutions_dir / a).glob("*.ipynb")]
    h = hashlib.sha256()
    # names relative to the checkout: shards graded in different clones of one commit agree
    named = sorted((str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p.relative_to(solutions_dir.parent)), p) for p in paths)
    for name, path in named:
        try:
            h.update(name.encode() + b"\0" + path.read_bytes())
        except OSError:
            h.update(name.encode() + b"\0<absent>")
    return h.hexdigest()


def _timed_out(outcome: Outcome) -> bool:
    """Whether a time limit cost the notebook a part: a timeout, or a kernel killed after one."""
    return any(r.status == "timeout" or "timed out" in r.message or "time limit" in r.message for r in outcome.rows)


@dataclass
class GradeRun:
    rows: list[Row]
    feedback: dict[tuple[str, str, str], nbformat.NotebookNode]

    @property
    def ok(self) -> bool:
        return not any(r.grader_failure for r in self.rows)


class SandboxUnavailable(RuntimeError):
    """No sandbox can be made here (the message says what to install); grading needs --no-sandbox to go on."""


def grade_tasks(tasks: list[Task], limits: Limits = Limits(), jobs: int = 1, solutions_dir: Path = SOLUTIONS,
                progress=None, sandboxed: bool = True,
                sources: dict[tuple[str, str], SourceNotebook] | None = None, seed: int | None = None) -> GradeRun:
    """Grade ``tasks``; ``progress(task, outcome)`` is called as each finishes (in a worker thread, one at a time).

    ``seed``: the checks' inputs are drawn from it (``_inputs_for``); None: their fixed inputs.

    ``sources``: source notebooks given ready-made (by ``course check`` in a copy without
    solutions/: the released exercises, ``solutions_dir`` then being exercises/); the others
    are read from ``solutions_dir``.
    """
    import course_lib.checks  # noqa: F401 - load every check (and torch) before any learner code runs

    if sandboxed and (why := sandbox.unavailable()):
        raise SandboxUnavailable(why)
    sources = _SourceCache(solutions_dir, sources)
    graded_assignments = {t.assignment for t in tasks}
    fingerprint = _grader_fingerprint(graded_assignments, solutions_dir)
    work_root = Path(tempfile.mkdtemp(prefix="course-grading-"))
    os.chmod(work_root, 0o711)
    files = _RunFiles(work_root, solutions_dir, seed)
    report = threading.Lock()

    def attempt(task: Task) -> Outcome:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        try:
            outcome = grade_task(task, limits, sources, files, sandboxed)
        except Exception as err:  # noqa: BLE001 - one submission never stops the run
            outcome = Outcome([Row(task.student, task.assignment, task.notebook, "", "error", 0, 0,
                                   f"grader failure: {type(err).__name__}: {err}", now, True)])
        # in a sandbox course_lib and solutions/ are out of reach (read-only, or absent); without one, check
        if not sandboxed and _grader_fingerprint(graded_assignments, solutions_dir) != fingerprint:
            for row in outcome.rows:
                row.status, row.points, row.grader_failure = "error", 0.0, True
                row.message = ("grader failure: the grader's files (course_lib or solutions/) "
                               "changed while this notebook ran; regrade it: " + row.message)
        return outcome

    def report_(task: Task, outcome: Outcome) -> None:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for row in outcome.rows:  # when the grade was written, not when its notebook started
            row.graded_at = stamp
        if progress:
            with report:
                progress(task, outcome)

    rerun: list[int] = []  # timed out beside other notebooks: graded again alone before anything is recorded

    def one(i: int) -> Outcome:
        outcome = attempt(tasks[i])
        if jobs > 1 and _timed_out(outcome):
            rerun.append(i)
        else:
            report_(tasks[i], outcome)
        return outcome

    try:
        if sandboxed and tasks:  # before any notebook: the sandbox's Python must import the copy it is given
            (work_root / "probe").mkdir()
            lib_target(files.lib(tasks[0].assignment), work_root / "probe", limits.scratch_mb)
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            outcomes = list(pool.map(one, range(len(tasks))))
        for i in sorted(rerun):  # one at a time: a neighbour's CPU load cannot cost this notebook its points
            outcomes[i] = attempt(tasks[i])
            report_(tasks[i], outcomes[i])
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    rows = [r for o in outcomes for r in o.rows]
    feedback = {(t.student, t.assignment, t.notebook): o.feedback for t, o in zip(tasks, outcomes) if o.feedback is not None}
    return GradeRun(rows, feedback)


RUN_FILE = "run.json"


def _shard_seed(fingerprint: str, everyone: list[str]) -> int:
    """The seed every shard of one class draws without --seed: from the grader's fingerprint (which covers
    solutions/, never public) and the class, so the N machines agree without talking and no student can compute it."""
    digest = hashlib.sha256(("course-grade-seed\0" + fingerprint + "\0" + "\0".join(sorted(everyone))).encode()).digest()
    return int.from_bytes(digest[:4], "big") % 2**31


def read_run(out_dir: Path) -> dict:
    """run.json of a grades folder ({} when there is none or it is unreadable)."""
    try:
        data = json.loads((Path(out_dir) / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def write_run(out_dir: Path, seed: int, what: str) -> None:
    """Record the seed the checks' inputs were drawn from (``seed``) and the run's history in run.json."""
    old = read_run(out_dir)
    history = old.get("history") if isinstance(old.get("history"), list) else []
    history.append({"seed": seed, "graded": what, "at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    data = {"seed": seed, "history": history[-100:]}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    from course_lib.files import replace_atomically

    replace_atomically(Path(out_dir) / RUN_FILE, lambda f: f.write(json.dumps(data, indent=1)))


def _one_students_folder(submissions: Path, solutions_dir: Path) -> str | None:
    """Why ``submissions`` looks like one student's folder (or one assignment's) rather than the class's, else None."""
    known = set(list_assignments(solutions_dir))
    try:
        entries = list(os.scandir(submissions))
    except OSError:
        return None
    assignments = sorted(e.name for e in entries if e.name in known and e.is_dir(follow_symlinks=False))
    if assignments:
        return (f"{submissions} holds assignment folders ({', '.join(assignments[:3])}): it looks like ONE student's "
                f"folder, not the class's. Grade the class folder, or regrade this student into the gradebook with: "
                f"course grade {submissions.parent} --student {submissions.name} --out GRADES")
    if any(e.name.endswith(".ipynb") for e in entries) and not any(e.is_dir(follow_symlinks=False) for e in entries):
        return (f"{submissions} holds notebooks: it looks like one assignment's folder. `course grade` expects "
                "SUBMISSIONS/<student>/<assignment>/<name>.ipynb; `course check NOTEBOOK` scores one notebook")
    return None


def grade(submissions: Path, out_dir: Path, limits: Limits = Limits(), jobs: int = 1, assignments: list[str] | None = None,
          solutions_dir: Path = SOLUTIONS, progress=None, sandboxed: bool = True,
          shard: tuple[int, int] | None = None, seed: int | None = None, student: str | None = None) -> GradeRun:
    """Grade every submission under ``submissions``; merge into ``out_dir``'s gradebook; write feedback.

    The gradebook is rewritten (atomically) after every notebook: a run killed midway keeps
    every row already graded, and a re-run replaces them. ``shard=(K, N)`` grades only the
    students of shard K of N (gradebook.shard_of) and writes shard.json for ``course merge``;
    the assignments are decided from the whole class, as in a single run. ``student``: regrade
    only that student's folder into the gradebook (the assignments still decided from the class).

    ``seed``: the checks' inputs are drawn from it, recorded in run.json (and shard.json). None:
    a regrade of one student reuses the gradebook's recorded seed; shards derive one from the
    grader and the class (``_shard_seed``: every shard the same); other runs draw a new one.
    """
    from course_lib.grading.feedback import write_feedback_html

    if sandboxed and (why := sandbox.unavailable()):
        raise SandboxUnavailable(why)
    if not list_assignments(solutions_dir):  # the learners' public copy: released exercises only, no hidden tests
        raise gradebook.GradebookError(
            f"no assignment sources in {solutions_dir}: grading needs the instructor's solutions/ (the source "
            "notebooks, with the hidden tests). This looks like the learners' public copy of the course; grade in the "
            "private repository (chapters/instructors_guide.md). `course check` works here, on the visible tests only.")
    if why := _one_students_folder(submissions, solutions_dir):
        raise gradebook.GradebookError(why)
    if student is not None and not (submissions / student).is_dir():
        raise gradebook.GradebookError(f"--student {student}: expected a folder {submissions / student} (the student's "
                                       f"folder name under {submissions}); there is none")
    tasks, problems = discover(submissions, assignments, solutions_dir)
    everyone = sorted({t.student for t in tasks} | {r.student for r in problems if r.student != gradebook.CLASS_WIDE and r.assignment})
    graded = {t.assignment for t in tasks}
    if seed is None and student is not None:
        seed = read_run(out_dir).get("seed") if isinstance(read_run(out_dir).get("seed"), int) else None
    if shard is not None:
        k, n = shard
        if (old := gradebook.read_manifest(out_dir)) is not None and (old["shard"], old["of"]) != (k, n):
            raise gradebook.GradebookError(f"{out_dir} holds shard {old['shard']}/{old['of']}, not {k}/{n}: "
                                           "give each shard its own --out folder")
        if student is not None and gradebook.shard_of(student, n) != k:
            raise gradebook.GradebookError(f"--student {student} belongs to shard {gradebook.shard_of(student, n)}/{n}, not {k}/{n}")
        fingerprint = _grader_fingerprint(graded, solutions_dir)
        if seed is None:
            seed = (old or {}).get("seed") if isinstance((old or {}).get("seed"), int) else _shard_seed(fingerprint, everyone)
        tasks = [t for t in tasks if gradebook.shard_of(t.student, n) == k]
        problems = [r for r in problems if r.student == gradebook.CLASS_WIDE or gradebook.shard_of(r.student, n) == k]
        gradebook.write_manifest(out_dir, shard, fingerprint, asdict(limits), graded, everyone, seed=seed)
    if seed is None:
        seed = new_seed()
    if student is not None:
        tasks = [t for t in tasks if t.student == student]
        problems = [r for r in problems if r.student == student]
    write_run(out_dir, seed, f"student {student}" if student is not None else "the class" if shard is None else f"shard {shard[0]}/{shard[1]}")
    write_gradebook(out_dir, problems, {(r.student, r.assignment, r.notebook) for r in problems})

    def done(task: Task, outcome: Outcome) -> None:
        write_gradebook(out_dir, outcome.rows, {(task.student, task.assignment, task.notebook)})
        if outcome.feedback is not None:
            write_feedback_html(outcome.feedback, out_dir / "feedback" / task.student / task.assignment / f"{task.notebook}.html")
        if progress:
            progress(task, outcome)

    run = grade_tasks(tasks, limits, jobs, solutions_dir, done, sandboxed, seed=seed)
    run.rows = problems + run.rows
    return run

