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
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal

MEMORY_ENV = "COURSE_GRADING_MEMORY_BYTES"
INPUTS_ENV = "COURSE_GRADING_INPUTS"
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

    chosen = torch.load(inputs_path, weights_only=False)  # written by the grader into the read-only input folder

    def graded_call(self, student):
        if self.name not in chosen:
            raise RuntimeError(f"the grader chose no inputs for the check {self.name!r}: is it called from a test cell?")
        outputs = self.run(student, copy.deepcopy(chosen[self.name]))
        recorder.record(self.name, outputs)
        print(f"\u2022 {self.name}: outputs recorded; the grader verifies them")

    Check.__call__ = graded_call


def main() -> None:
    apply_limits()
    preload()
    if os.environ.get(INPUTS_ENV):
        record_only(os.environ[INPUTS_ENV])
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
