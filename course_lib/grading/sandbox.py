"""The OS sandbox every submission runs in: bubblewrap (``bwrap``), no container engine.

One sandbox per submitted notebook. The runner (``course_lib.grading.runner``) and
the kernel it starts both live inside it, because they talk over loopback TCP and
the sandbox has its own network namespace (bwrap brings its loopback up). What the
sandbox is (``command`` builds the exact argv):

- **namespaces**: its own user, PID, network, IPC, UTS (and cgroup, where the kernel
  allows) namespaces. PID 1 of the sandbox is bwrap's init: when the runner exits,
  every process the submission started (``setsid``, double forks included) is
  killed. Nothing outside is visible in ``/proc`` or can be signalled. No network:
  only the sandbox's own loopback. ``--new-session`` (no terminal to inject keys
  into) and ``--die-with-parent`` (a killed grader takes the sandbox with it).
- **an unprivileged user**: uid/gid 65534 inside, with no capabilities.
- **default-deny files**: an empty root (tmpfs) into which only this is bound,
  read-only: ``/usr`` (with the ``/bin``, ``/lib``... links), the Python
  installation and the virtual environment, ``course_lib`` (a per-assignment copy
  with the references withheld, see ``course_lib.grading.libview``) at the path the
  editable install expects, and the job's input folder (the notebook to run, the
  inputs the grader chose, the assignment's data files). No ``solutions/``, no other
  notebook or student, no gradebook, no ``.git``, no home directory.
- **one writable place**: ``/tmp``, a tmpfs of ``scratch_mb``. The kernel's working
  folder and its recordings live there. At the end the runner streams its results
  to the grader as a tar on stdout; the grader keeps at most ``MAX_OUTPUT_BYTES``
  of it and opens it only after the sandbox has gone.
- **limits** (``setrlimit``, inherited by every process; see ``rlimits``): processes
  and threads, address space, file size, CPU seconds, no core dumps; plus the
  per-cell and total timeouts of the runner and the grader's own deadline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

#: where the job's read-only input folder appears inside the sandbox
INPUT = "/grading/in"
#: the scratch tmpfs (the only writable place) and the job's folder in it
SCRATCH = "/tmp"
JOB = "/tmp/job"
SANDBOX_UID = 65534  # "nobody"
INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: `sudo apt-get install bubblewrap`; Fedora: `sudo dnf install bubblewrap`)"
)
USERNS_HINT = (
    "bwrap needs user namespaces: enable them (`sudo sysctl -w kernel.unprivileged_userns_clone=1` on older "
    "Debian; `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` on Ubuntu 24.04) or run in a "
    "container that allows them"
)


def _system_binds() -> list[str]:
    """/usr and the merged-/usr links, the Python installation and the venv, read-only."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        p = Path("/") / top
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), str(p)]
        elif p.is_dir():
            args += ["--ro-bind", str(p), str(p)]
    # ld.so.cache and the few files Python and libraries read (no passwd/shadow: none is needed)
    for f in ("/etc/ld.so.cache", "/etc/localtime", "/etc/nsswitch.conf", "/etc/hosts"):
        if Path(f).exists():
            args += ["--ro-bind", f, f]
    seen: list[str] = []
    for prefix in (sys.base_prefix, sys.prefix, os.path.realpath(sys.base_prefix)):
        if prefix and not prefix.startswith("/usr") and not any(prefix == s or prefix.startswith(s + "/") for s in seen):
            seen.append(prefix)
            args += ["--ro-bind", prefix, prefix]
    return args


def _base_flags() -> list[str]:
    return [
        "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
        "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--hostname", "sandbox",
        "--die-with-parent", "--new-session",
        "--cap-drop", "ALL",
        "--proc", "/proc", "--dev", "/dev",
    ]  # fmt: skip


def command(argv: list[str], input_dir: Path, lib_dir: Path, lib_target: Path, scratch_mb: int) -> list[str]:
    """The bwrap argv that runs ``argv`` in the sandbox described in the module docstring."""
    bwrap = shutil.which("bwrap") or "bwrap"
    return [
        # the scratch tmpfs first: a checkout or venv under /tmp is bound on top of it, not hidden by it
        bwrap, *_base_flags(),
        "--size", str(int(scratch_mb) * 2**20), "--perms", "1777", "--tmpfs", SCRATCH,
        *_system_binds(),
        "--ro-bind", str(lib_dir), str(lib_target),
        "--ro-bind", str(input_dir), INPUT,
        "--clearenv",
        "--setenv", "PATH", f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "--setenv", "HOME", f"{SCRATCH}/home",
        "--setenv", "LANG", "C.UTF-8",
        "--chdir", SCRATCH,
        "--", *argv,
    ]  # fmt: skip


def rlimits(processes: int, memory_bytes: int, file_bytes: int, cpu_seconds: int) -> dict[str, int]:
    """The resource limits the runner sets on itself before anything else (soft = hard; inherited by the kernel)."""
    return {
        "RLIMIT_NPROC": processes,  # counted per user namespace: this sandbox's processes and threads
        "RLIMIT_AS": memory_bytes,
        "RLIMIT_FSIZE": file_bytes,
        "RLIMIT_CPU": cpu_seconds,  # per process
        "RLIMIT_CORE": 0,
    }


@lru_cache(maxsize=1)
def unavailable() -> str | None:
    """None when a sandbox can be made here; else what is missing and how to install or enable it."""
    if sys.platform != "linux":
        return f"the sandbox needs Linux (bubblewrap); this is {sys.platform}"
    if not shutil.which("bwrap"):
        return f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}"
    probe = [shutil.which("bwrap"), *_base_flags(), "--tmpfs", SCRATCH, *_system_binds(), "--", sys.executable, "-c", "pass"]
    try:
        proc = subprocess.run(probe, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bwrap could not start a sandbox ({err}); {USERNS_HINT}"
    if proc.returncode != 0:
        return f"bwrap could not start a sandbox: {proc.stderr.strip()[:300]}; {USERNS_HINT}"
    return None


NO_SANDBOX_RISKS = """\
WARNING: grading WITHOUT a sandbox (--no-sandbox). Every submission's code runs as you, on your
files, with your network. A submission can then: read solutions/ and the hidden tests; rewrite
the gradebook after the grader exits (a background process); kill the grader; delete or forge
other students' recordings; change course_lib for later runs; fill the disk; open network
connections. Only the verdicts themselves stay outside the learner's kernel. Use this only for
submissions you trust (your own test notebooks), and regrade in a sandbox for real grades."""
