"""Execute one prepared notebook in a fresh, limited kernel (the grader's worker process).

    python -m course_lib.grading.runner INPUT_DIR SCRATCH_DIR      (started by the grader, one per submission)

Normally both this runner and its kernel run inside the submission's sandbox
(``course_lib.grading.sandbox``): ``INPUT_DIR`` is the read-only job folder
(``job.json``, ``run.ipynb``, the check inputs ``inputs.pt`` and the
assignment's data files in ``work/``), ``SCRATCH_DIR`` a folder on the
sandbox's size-limited tmpfs. ``job.json`` is written by
``course_lib.grading.grader``. In SCRATCH_DIR the runner makes the kernel's
working folder (a copy of ``work/``) and its recordings folder
(``COURSE_GRADING_DIR`` in the kernel), and writes

- ``out/executed.ipynb``: the notebook with its outputs (for the feedback),
- ``out/result.json``: per code cell, how execution ended: ``ok``, ``error``
  (with the exception's name and message), ``timeout`` or ``not_run`` (with why),
- ``kernel.pid``: the kernel's pid, which is also its process group.

At the end it writes ``out/``, ``recordings/`` and ``runner.log`` as a tar
stream to its original stdout, the only channel back to the grader (its own
fds 1 and 2, which the kernel inherits, go to ``runner.log``). Nothing in that
stream is trusted: the kernel runs as the same user, in the same sandbox. The
grader bounds it, opens it after the sandbox has gone, and computes every
verdict itself from the recordings, on inputs it chose.

The runner never judges answers. It only reports what happened to each cell,
and keeps going after errors, timeouts and dead kernels.

Limits: each cell gets ``cell_timeout`` seconds (and no more than what is left
of ``total_timeout``). On a timeout the kernel is interrupted (SIGINT); if it
does not answer within a few seconds (code that ignores SIGINT) its process
group is killed and the remaining cells are ``not_run``. Memory: the kernel
starts under ``RLIMIT_AS`` (see ``course_lib.grading.kernel``) and a watchdog
kills the process group when its total resident memory passes the cap.

Secrets: the notebook holds the hidden tests, and the inputs file names every
check. The runner reads both, copies the inputs to a private file (the kernel
deletes it once loaded), then hides ``INPUT_DIR`` from itself and the kernel
(a private mount namespace with an empty, unreadable tmpfs over it, made in a
nested user namespace whose capabilities are then dropped, so the kernel cannot
undo it) and makes itself non-dumpable (the kernel, the same user, cannot read
its memory or /proc files). A test cell reaches the kernel compiled, in the
message that runs it, never as text (``course_lib.grading.kernel`` runs it outside
IPython), and the executed notebook written at the end has the test cells'
sources blanked.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import signal
import sys
import tarfile
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from course_lib.grading.kernel import INPUTS_ENV, MEMORY_ENV, TEST_MARK, compiled_cell

RECORDINGS_ENV = "COURSE_GRADING_DIR"  # = course_lib.grading.recorder.ENV_VAR (not imported: it pulls in torch)

KERNEL_NAME = "course-grading"
#: seconds a kernel gets to answer after an interrupt before it is killed
INTERRUPT_GRACE = 10
#: outputs kept per cell (characters); the rest is dropped with a note
MAX_OUTPUT_CHARS = 200_000
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _write_kernelspec(job_dir: Path, env: dict[str, str]) -> Path:
    spec_dir = job_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        # no history database: what ran stays out of files the learner's code could read
        "argv": [sys.executable, "-m", "course_lib.grading.kernel", "-f", "{connection_file}", "--HistoryManager.enabled=False"],
        "display_name": "course grading",
        "language": "python",
        "env": env,
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return spec_dir.parent


def group_rss_bytes(pgid: int) -> int:
    """Total resident memory of the processes in process group ``pgid`` (Linux /proc)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid:  # fields: state, ppid, pgrp, ..., rss at index 21
                total += int(fields[21]) * _PAGE
        except (OSError, ValueError, IndexError):
            continue
    return total


def kill_group(pgid: int | None) -> None:
    if not pgid:
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _CappedClient(NotebookClient):
    """A NotebookClient that keeps at most MAX_OUTPUT_CHARS of output per cell."""

    def output(self, outs, msg, display_id, cell_index):
        size = len(json.dumps(msg.get("content", {}), default=str))
        used = self._output_chars.get(cell_index, 0)
        self._output_chars[cell_index] = used + size
        if used + size > MAX_OUTPUT_CHARS:
            if used <= MAX_OUTPUT_CHARS:
                outs.append(nbformat.v4.new_output("stream", name="stderr", text=f"[grader: output beyond {MAX_OUTPUT_CHARS} characters dropped]\n"))
            return None
        return super().output(outs, msg, display_id, cell_index)


async def _execute(job: dict, nb: nbformat.NotebookNode, inputs: Path, job_dir: Path) -> dict:
    memory = int(job["memory_bytes"])
    cwd = job_dir / "work"
    env = {
        RECORDINGS_ENV: str(job_dir / "recordings"),
        INPUTS_ENV: str(inputs),
        MEMORY_ENV: str(memory),
        "JUPYTER_RUNTIME_DIR": str(job_dir / "runtime"),
        "IPYTHONDIR": str(job_dir / "ipython"),
        "MPLCONFIGDIR": str(job_dir / "matplotlib"),
        # one thread per kernel: submissions run side by side on few cores
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "TOKENIZERS_PARALLELISM": "false",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "PYTHONHASHSEED": "0",
    }
    ksm = KernelSpecManager(kernel_dirs=[str(_write_kernelspec(job_dir, env))], ensure_native_kernel=False)
    km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm)
    client = _CappedClient(
        nb,
        km=km,
        timeout=int(job["cell_timeout"]),
        allow_errors=True,
        interrupt_on_timeout=False,
        startup_timeout=120,
        iopub_timeout=4,
        record_timing=False,
        shutdown_kernel="immediate",  # nothing to save: the kernel is killed, not asked to stop
        resources={"metadata": {"path": str(cwd)}},
    )
    client._output_chars = {}
    cells: dict[str, dict] = {}
    replies: dict[int, dict] = {}

    async def on_executed(cell, cell_index, execute_reply):
        replies[cell_index] = (execute_reply or {}).get("content", {})

    client.on_cell_executed = on_executed
    stop_reason: str | None = None
    pgid: int | None = None
    watchdog_hit = asyncio.Event()

    async def watchdog():
        while True:
            await asyncio.sleep(0.5)
            if pgid and group_rss_bytes(pgid) > memory:
                watchdog_hit.set()
                kill_group(pgid)
                return

    started = time.monotonic()
    try:
        await km.start_kernel(cwd=str(cwd))
    except Exception as err:  # noqa: BLE001
        return {"started": False, "error": f"the kernel did not start: {type(err).__name__}: {err}", "cells": {}}
    pgid = km.provisioner.process.pid if km.provisioner else None  # start_new_session: pid == pgid
    (job_dir / "kernel.pid").write_text(str(pgid or ""))
    watch = asyncio.ensure_future(watchdog()) if memory > 0 else None
    try:
        await client.async_start_new_kernel_client()
        ready = time.monotonic()
        print(f"[runner] kernel ready in {ready - started:.2f} s", file=sys.stderr, flush=True)
        deadline = ready + float(job["total_timeout"])  # execution time: kernel start-up not counted
        n = 0
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            key = str(index)
            if stop_reason:
                cells[key] = {"status": "not_run", "reason": stop_reason}
                continue
            remaining = deadline - time.monotonic()
            if remaining < 1:
                stop_reason = f"the submission's total time limit of {job['total_timeout']:g} s was reached"
                cells[key] = {"status": "timeout", "reason": stop_reason}
                continue
            limit = max(1, math.ceil(min(float(job["cell_timeout"]), remaining)))  # nbclient wants whole seconds
            client.timeout = limit
            n += 1
            text = cell.source
            if text.startswith(TEST_MARK):  # a test cell goes to the kernel compiled, never as text
                try:
                    cell.source = compiled_cell(text)
                except (SyntaxError, ValueError):
                    pass
            try:
                try:
                    await client.async_execute_cell(cell, index, execution_count=n)
                finally:
                    cell.source = text
                reply = replies.get(index, {})
                if reply.get("status") == "error":
                    cells[key] = {"status": "error", "ename": str(reply.get("ename", "")), "evalue": str(reply.get("evalue", ""))[:4000]}
                else:
                    cells[key] = {"status": "ok"}
            except CellTimeoutError:
                total_hit = limit < float(job["cell_timeout"])
                why = (
                    f"timed out after {limit:g} s: the submission's total time limit of {job['total_timeout']:g} s was reached"
                    if total_hit
                    else f"timed out after {limit:g} s (the limit per cell)"
                )
                cells[key] = {"status": "timeout", "reason": why, "seconds": limit}
                note = nbformat.v4.new_output("stream", name="stderr", text=f"[grader: {why}]\n")
                if total_hit:
                    cell.outputs.append(note)
                    stop_reason = why
                    continue
                # interrupt; code that ignores SIGINT gets its process group killed
                try:
                    await km.interrupt_kernel()
                    probe = nbformat.v4.new_code_cell("pass")
                    client.timeout = INTERRUPT_GRACE
                    await client.async_execute_cell(probe, index, store_history=False)
                except (CellTimeoutError, DeadKernelError, RuntimeError):
                    kill_group(pgid)
                    stop_reason = f"the kernel was killed: it did not stop when interrupted after cell {index} timed out"
                # nbclient stores the cell it executed at nb.cells[index]: put the learner's cell back in place of the probe
                nb.cells[index] = cell
                cell.outputs.append(note)
            except DeadKernelError:
                if watchdog_hit.is_set():
                    why = f"the kernel was killed: its processes used more than the {memory / 2**20:.0f} MiB memory limit"
                else:
                    why = "the kernel died while running this cell (sys.exit in a thread, os._exit, a signal, or a crash)"
                cells[key] = {"status": "error", "ename": "DeadKernelError", "evalue": why}
                cell.outputs.append(nbformat.v4.new_output("stream", name="stderr", text=f"[grader: {why}]\n"))
                stop_reason = f"not run: the kernel had died in cell {index}"
            if not stop_reason and not await km.is_alive():
                stop_reason = f"not run: the kernel exited after cell {index}"
        print(f"[runner] cells executed in {time.monotonic() - ready:.2f} s", file=sys.stderr, flush=True)
    finally:
        if watch:
            watch.cancel()
        try:
            await client._async_cleanup_kernel() if client.kc else None
        except Exception:  # noqa: BLE001
            pass
        try:
            if await km.is_alive():
                await km.shutdown_kernel(now=True)
        except Exception:  # noqa: BLE001
            pass
        kill_group(pgid)  # children the learner forked
    for cell in nb.cells:  # the grader needs the outputs; a test cell's text (hidden tests) stays here
        if cell.cell_type == "code" and cell.source.startswith(TEST_MARK):
            cell.source = ""
    nbformat.write(nb, job_dir / "out" / "executed.ipynb")
    return {"started": True, "cells": cells}


def _send(job_dir: Path, out_fd: int) -> None:
    """Stream out/, recordings/ and runner.log to the grader as a tar (symlinks stay links: the grader drops them)."""
    with os.fdopen(out_fd, "wb") as out, tarfile.open(fileobj=out, mode="w|") as tar:
        for name in ("out", "recordings", "runner.log"):
            if os.path.lexists(job_dir / name):
                try:
                    tar.add(job_dir / name, arcname=name)
                except OSError as err:  # e.g. an unreadable file the kernel left: the rest still goes
                    print(f"[runner] could not send {name}: {err}", file=sys.stderr, flush=True)


_CLONE_NEWUSER, _CLONE_NEWNS, _MS_RDONLY, _PR_SET_DUMPABLE = 0x10000000, 0x00020000, 1, 4


def hide(folder: Path) -> str | None:
    """Hide ``folder`` from this process and every process it starts; None, or why it could not be hidden.

    A private mount namespace (in a nested user namespace, which needs no privilege) gets an
    empty tmpfs, mode 000, over the folder; then every capability is dropped, so neither this
    process nor its children can unmount it, and the process is made non-dumpable (no other
    process of the same user can read its memory). Must run while the process has one thread.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS) != 0:
        return f"unshare: {os.strerror(ctypes.get_errno())}"
    try:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    except OSError as err:
        return f"user namespace maps: {err}"
    if libc.mount(b"tmpfs", str(folder).encode(), b"tmpfs", _MS_RDONLY, b"size=4k,mode=000") != 0:
        return f"mount: {os.strerror(ctypes.get_errno())}"

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    if libc.capset(ctypes.byref(Header(0x20080522, 0)), ctypes.byref((Data * 2)())) != 0:  # _LINUX_CAPABILITY_VERSION_3
        return f"capset: {os.strerror(ctypes.get_errno())}"
    libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    return None


def main(argv: list[str] | None = None) -> int:
    args = argv or sys.argv[1:]
    input_dir, job_dir = Path(args[0]), Path(args[1])
    job = json.loads((input_dir / "job.json").read_text())
    import resource

    for name, value in job.get("rlimits", {}).items():  # before any learner code: inherited by the kernel
        resource.setrlimit(getattr(resource, name), (value, value))
    if os.environ.get("HOME", "").startswith(str(job_dir.parent)):
        os.makedirs(os.environ["HOME"], exist_ok=True)
    for sub in ("out", "recordings", "runtime", "ipython", "matplotlib"):
        (job_dir / sub).mkdir(parents=True, exist_ok=True)
    if (input_dir / "work").is_dir():
        shutil.copytree(input_dir / "work", job_dir / "work", dirs_exist_ok=True)
    (job_dir / "work").mkdir(exist_ok=True)
    # the tar goes to the original stdout; everything else this process and its kernel print goes to runner.log
    out_fd = os.dup(sys.stdout.fileno())
    log_fd = os.open(job_dir / "runner.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    try:
        nb = nbformat.read(input_dir / job["notebook"], as_version=4)
        inputs = job_dir / "inputs.pt"  # a private copy: the kernel loads it, then deletes it
        if (input_dir / "inputs.pt").is_file():
            shutil.copyfile(input_dir / "inputs.pt", inputs)
            inputs.chmod(0o600)
        why = hide(input_dir)
        if why:
            print(f"[runner] the input folder could not be hidden from the kernel ({why})", file=sys.stderr, flush=True)
        result = asyncio.run(_execute(job, nb, inputs, job_dir))
    except Exception as err:  # noqa: BLE001 - reported to the grader, which decides
        import traceback

        result = {"started": False, "error": f"runner failure: {type(err).__name__}: {err}", "traceback": traceback.format_exc(), "cells": {}}
    (job_dir / "out" / "result.json").write_text(json.dumps(result, indent=1))
    _send(job_dir, out_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
