"""Saves what a check saw, so the grader can re-verify it in a clean process.

Importing this module installs :func:`record` as the checks' output hook
(``course_lib.checks._core.set_output_hook``): checks know nothing of the grader.
Inactive unless the environment variable ``COURSE_GRADING_DIR`` names a folder
(the grader sets it for the kernel it starts). The grader wraps each graded
test cell in ``begin(grade_id)`` ... so that outputs are filed under the cell
that produced them, and runs ``end()`` after it: anything recorded outside a
graded cell is dropped.
Files hold tensors, numbers, strings, lists and dicts only and are read back
with ``torch.load(weights_only=True)``: no pickled code is ever executed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from course_lib.checks import _core

ENV_VAR = "COURSE_GRADING_DIR"
_current: str | None = None


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def grading_dir() -> Path | None:
    d = os.environ.get(ENV_VAR)
    return Path(d) if d else None


def begin(grade_id: str) -> None:
    """Start a graded cell: forget earlier recordings for it."""
    global _current
    _current = grade_id
    d = grading_dir()
    if d is None:
        return
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob(f"{_safe(grade_id)}__*.pt"):
        old.unlink()


def end() -> None:
    """End a graded cell: anything recorded until the next ``begin`` is dropped."""
    global _current
    _current = None


def sanitize(x: Any, depth: int = 0) -> Any:
    """Keep only what torch.load(weights_only=True) can read back."""
    if depth > 6:
        return "<too deeply nested>"
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().clone().contiguous()
    if isinstance(x, (bool, int, float, str)) or x is None:
        return x
    if isinstance(x, (list, tuple)):
        return [sanitize(v, depth + 1) for v in x]
    if isinstance(x, dict):
        return {str(k): sanitize(v, depth + 1) for k, v in x.items()}
    try:
        import numpy as np

        if isinstance(x, np.ndarray):
            return torch.from_numpy(np.array(x, copy=True))
        if isinstance(x, np.generic):
            return x.item()
    except ImportError:  # pragma: no cover
        pass
    return f"<unserializable {type(x).__name__}>"


def record(check_name: str, outputs: dict[str, Any]) -> None:
    d = grading_dir()
    if d is None or _current is None:
        return
    torch.save(sanitize(outputs), d / f"{_safe(_current)}__{_safe(check_name)}.pt")


def load(path: Path) -> Any:
    return torch.load(path, weights_only=True)


_core.set_output_hook(record)
