"""The kernel the grader runs a submission in: an IPython kernel with limits.

    python -m course_lib.grading.kernel -f CONNECTION_FILE      (started by the runner, never by hand)

Before IPython starts, this applies the limits the runner passes in the
environment, so they hold for every line of the learner's code and are
inherited by anything it forks:

- ``COURSE_GRADING_MEMORY_BYTES``: ``RLIMIT_AS`` (address space). An allocation
  past the cap fails inside the learner's code (``MemoryError``, or torch's
  "can't allocate memory" ``RuntimeError``): the cell errors, the kernel lives.
- no core dumps;
- ``PR_SET_PDEATHSIG``: if the runner dies, the kernel is killed with it.

It then imports torch and ``course_lib.checks`` (start-up time, not cell time),
and, when ``COURSE_GRADING_INPUTS`` names the grader's inputs file, makes every
check record only: ``check(fn)`` runs the learner's ``fn`` on the inputs the
grader chose and saves the outputs; it does not verify them (the grader does,
outside the sandbox, where the references are; the sandbox's course_lib has them
withheld, see ``course_lib.grading.libview``). Replacing this hook from a cell
gains nothing: the grader verifies whatever is recorded against its own inputs.

The runner additionally watches the resident memory of the kernel's whole
process group and kills it past the cap (forked children each get their own
``RLIMIT_AS``), and kills the group on timeouts.

**Test cells are not run by IPython** (``GradingKernel``). The runner sends a test
cell compiled (``compiled_cell``: a code object, so the text of its hidden tests,
comments and lines, never reaches the kernel; the names it calls do), and the
kernel executes it directly in a copy of the learner's namespace, so the hidden tests in it reach none of what a submission
can hook: no input or AST transformer sees it, no ``pre_run_cell``/``post_run_cell``/
``pre_execute``/``post_execute`` event fires, it is not added to ``In``/``_ih``/``_i``
or to IPython's history, its source is not in ``linecache`` (so ``inspect.stack``
from a function it calls shows no line of it), and the ``execute_input`` message
on IOPub carries no code (the hooks and transformers a submission registers are
thus ignored for test cells). Before it runs, what acts on any code is reset:
``sys.settrace``, ``sys.setprofile`` and the ``threading`` defaults, and
``sys.stdout``/``stderr``/``displayhook``/``excepthook`` (to the kernel's own). While it runs, an audit hook
refuses ``sys.settrace``/``sys.setprofile`` (say from a ``__del__`` or a thread);
no submission can add an audit hook at all. Afterwards ``sys.last_*`` are cleared.

What cannot be closed from inside a process the learner's code runs in: code
that patches the kernel itself (its classes, ctypes) sees what the process sees,
and a function a hidden check calls can walk its caller's frames (the check's
name, its inputs). Hence the second line of defence: the grader never shows the
output of a test cell that runs hidden tests, and scrubs hidden names and lines
from every other output (``course_lib.grading.feedback``); and the files the
sandbox holds (the notebook, the inputs) are out of the kernel's reach
(``course_lib.grading.runner``).
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
import threading

MEMORY_ENV = "COURSE_GRADING_MEMORY_BYTES"
INPUTS_ENV = "COURSE_GRADING_INPUTS"
#: how the grader's test cells begin (``course_lib.grading.notebooks.PREFIX``)
TEST_MARK = "import course_lib.grading.recorder as __r; __r.begin("
#: how the runner sends a test cell: this line, then the cell compiled (``marshal``, base64), never its text
COMPILED_MARK = "# course grading: a compiled test cell\n"


def compiled_cell(source: str) -> str:
    """What the runner sends for a test cell: its code object, so its text (comments, hidden-test lines) never reaches the kernel."""
    import base64
    import marshal

    return COMPILED_MARK + base64.b64encode(marshal.dumps(compile(source, "<test cell>", "exec", dont_inherit=True))).decode()
_PR_SET_PDEATHSIG = 1


def apply_limits() -> None:
    memory = int(os.environ.get(MEMORY_ENV, "0") or 0)
    if memory > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the runner's kill on timeout still applies
        pass


def preload() -> None:
    """Import torch and the checks before the first cell, so that time limits measure the learner's code.

    (The import also happens before any learner code could alter the files.) A failure
    here is left for the notebook's own import to report.
    """
    try:
        import torch  # noqa: F401

        import course_lib.checks  # noqa: F401
    except Exception:  # noqa: BLE001
        pass


def record_only(inputs_path: str) -> None:
    """Checks run the learner's code on the grader's inputs and record the outputs; the grader verifies."""
    import copy

    import torch

    from course_lib.checks._core import Check
    from course_lib.grading import recorder

    chosen = torch.load(inputs_path, weights_only=False)  # written by the grader; the runner's private copy
    try:
        os.unlink(inputs_path)  # the runner's copy in the scratch folder: gone before any learner code runs
    except OSError:
        pass

    def graded_call(self, student):
        if self.name not in chosen:
            raise RuntimeError(f"the grader chose no inputs for the check {self.name!r}: is it called from a test cell?")
        outputs = self.run(student, copy.deepcopy(chosen[self.name]))
        recorder.record(self.name, outputs)  # nothing printed: the name of a hidden check is not the learner's to read

    Check.__call__ = graded_call


_running_test = [False]  # True while a test cell runs: the audit hook then refuses trace and profile functions


def _audit(event: str, args) -> None:
    if event == "sys.addaudithook":
        raise RuntimeError("audit hooks are not available while grading")
    if _running_test[0] and event in ("sys.settrace", "sys.setprofile"):
        raise RuntimeError(f"{event} is not available while a test cell runs")


def guard() -> None:
    """Install the kernel's audit hook (before any learner code): no other hook can be added after it."""
    sys.addaudithook(_audit)


def _grading_kernel_class():
    """The IPython kernel that runs the grader's test cells itself (see the module docstring)."""
    import linecache
    import traceback

    from ipykernel.ipkernel import IPythonKernel

    class GradingKernel(IPythonKernel):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self._own = {"stdout": sys.stdout, "stderr": sys.stderr, "displayhook": sys.displayhook, "excepthook": sys.excepthook}

        def _publish_execute_input(self, code, parent, execution_count):
            super()._publish_execute_input("" if code.startswith((TEST_MARK, COMPILED_MARK)) else code, parent, execution_count)

        def _reset(self) -> None:
            _running_test[0] = False
            sys.settrace(None)
            sys.setprofile(None)
            threading.settrace(None)  # type: ignore[arg-type]
            threading.setprofile(None)  # type: ignore[arg-type]
            for name, value in self._own.items():
                setattr(sys, name, value)
            # IPython's event callbacks and transformers are left alone (matplotlib's inline figures need
            # theirs): a test cell never goes through IPython, so none of them runs for it

        async def do_execute(self, code, silent, store_history=True, user_expressions=None, allow_stdin=False, **kwargs):
            if not code.startswith((TEST_MARK, COMPILED_MARK)):
                return await super().do_execute(code, silent, store_history, user_expressions, allow_stdin, **kwargs)
            return self._run_test_cell(code)

        def _run_test_cell(self, code: str) -> dict:
            shell = self.shell
            self._reset()
            count = shell.execution_count
            reply = {"status": "ok", "execution_count": count, "user_expressions": {}, "payload": []}
            try:
                if code.startswith(COMPILED_MARK):
                    import base64
                    import marshal

                    compiled = marshal.loads(base64.b64decode(code[len(COMPILED_MARK):]))
                else:
                    compiled = compile(code, "<test cell>", "exec", dont_inherit=True)
                del code
                namespace = dict(shell.user_ns)  # the learner's names; what the test imports stays out of theirs
                _running_test[0] = True
                try:
                    exec(compiled, namespace)  # noqa: S102 - the grader's own test cell
                finally:
                    _running_test[0] = False
                    namespace.clear()
            except BaseException as err:  # noqa: BLE001 - reported as the cell's error, as IPython would
                _running_test[0] = False
                shell.showtraceback()
                reply.update(status="error", ename=type(err).__name__, evalue=str(err), traceback=shell._last_traceback or [])
                traceback.clear_frames(err.__traceback__)
            finally:
                for name in ("last_type", "last_value", "last_traceback", "last_exc"):
                    if hasattr(sys, name):
                        setattr(sys, name, None)
                for key in [k for k in linecache.cache if str(k).startswith("<test cell")]:
                    linecache.cache.pop(key, None)
            shell.execution_count = count + 1
            return reply

    return GradingKernel


def main() -> None:
    apply_limits()
    guard()
    preload()
    if os.environ.get(INPUTS_ENV):
        record_only(os.environ[INPUTS_ENV])
    from ipykernel import kernelapp

    kernelapp.launch_new_instance(kernel_class=_grading_kernel_class())


if __name__ == "__main__":
    main()
