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

It then imports torch and ``course_lib.checks`` (start-up time, not cell time).

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


def main() -> None:
    apply_limits()
    preload()
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
