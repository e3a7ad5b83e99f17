"""A readable `make book` log: one line per notebook as it starts and finishes executing, and no
"Kernel is running over TCP without encryption" warning from each kernel.

A Sphinx extension (registered in _config.yml, `sphinx.extra_extensions`). MyST-NB executes each
notebook through jupyter-cache's `single_nb_execution`, which starts an ipykernel with nbclient.
Two things made the log alarming or silent:

* ipykernel warns "Kernel is running over TCP without encryption" when its ZeroMQ sockets have
  no CurveZMQ key, once per notebook (nine times per build). jupyter_client (>= 8.7) can hand the
  kernel CurveZMQ keys itself (`KernelManager.transport_encryption = "auto"`, used when the
  kernelspec declares `supported_encryption: curve`, as ipykernel's does), but nbclient never
  asks for it. This extension asks for it on the kernel managers nbclient creates in the build,
  so the warning's cause goes away instead of being hidden, and every other kernel message
  still shows. Where keys cannot be provisioned (no libsodium in libzmq, an older jupyter_client,
  a kernelspec without curve), nothing changes: the kernel starts as before and warns as before.
* A notebook that runs for minutes printed nothing meanwhile. Now the log says
  "executing chapters/08_bert.ipynb ..." when it starts and "chapters/08_bert.ipynb executed in
  148.2 s" when it ends (notebooks served from the jupyter cache print nothing: they do not run).
"""

from __future__ import annotations

import functools
import os
import time

from sphinx.util import logging

logger = logging.getLogger(__name__)

_running: list[str] = []  # the notebook being executed (a stack: execution is not nested, but be safe)


def _encrypted_kernel_managers() -> None:
    """nbclient's kernel managers provision CurveZMQ keys when the kernel supports them."""
    try:
        import zmq
        from nbclient.client import NotebookClient
    except ImportError:
        return
    if getattr(NotebookClient.create_kernel_manager, "_course_encrypted", False) or not zmq.has("curve"):
        return
    create = NotebookClient.create_kernel_manager

    @functools.wraps(create)
    def create_kernel_manager(self):
        km = create(self)
        if getattr(km, "transport_encryption", None) == "disabled":
            km.transport_encryption = "auto"  # only used when the kernelspec declares curve support
        return km

    create_kernel_manager._course_encrypted = True
    NotebookClient.create_kernel_manager = create_kernel_manager


def _timed_execution(srcdir: str) -> None:
    """Wrap MyST-NB's notebook clients and jupyter-cache's executor to log start, end and time."""
    from myst_nb.core.execute import cache, direct

    for module in (cache, direct):
        execute = module.single_nb_execution
        if getattr(execute, "_course_timed", False):
            continue

        @functools.wraps(execute)
        def single_nb_execution(nb, *args, _execute=execute, **kwargs):
            name = _running[-1] if _running else "a notebook"
            logger.info(f"executing {name} ...", color="darteal")
            start = time.perf_counter()
            result = _execute(nb, *args, **kwargs)
            seconds = time.perf_counter() - start
            failed = getattr(result, "err", None)
            logger.info(f"{name} {'FAILED after' if failed else 'executed in'} {seconds:.1f} s", color="darteal")
            return result

        single_nb_execution._course_timed = True
        module.single_nb_execution = single_nb_execution

    for client in (cache.NotebookClientCache, direct.NotebookClientDirect):
        start_client = client.start_client
        if getattr(start_client, "_course_timed", False):
            continue

        @functools.wraps(start_client)
        def wrapped(self, _start=start_client):
            path = getattr(self, "path", None)
            _running.append(os.path.relpath(path, srcdir) if path else "a notebook")
            try:
                return _start(self)
            finally:
                _running.pop()

        wrapped._course_timed = True
        client.start_client = wrapped


def _setup_on_builder_inited(app) -> None:
    _encrypted_kernel_managers()
    _timed_execution(str(app.srcdir))


def setup(app):
    app.connect("builder-inited", _setup_on_builder_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
