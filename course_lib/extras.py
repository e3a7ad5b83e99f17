"""Packages outside course_lib's light core, imported lazily with an error that names the extra.

The core (pyproject.toml `dependencies`) is what a learner installs; the extras are `[chapters]`
(what the chapter notebooks import beyond the core), `[book]`, `[grade]` and `[test]`.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str, purpose: str = "") -> ModuleType:
    """Import `module`; if it is missing, raise ModuleNotFoundError saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != module.split(".")[0]:
            raise  # the package is there but something it imports is not: report that as it is
        why = f" ({purpose})" if purpose else ""
        raise ModuleNotFoundError(
            f"{module} is not installed{why}: it comes with course_lib's [{extra}] extra. Install it with "
            f"`pip install 'course_lib[{extra}]'` (in a clone of the course: `pip install -e '.[{extra}]'`, "
            "or a `make` target, see the README).",
            name=module,
        ) from error
