"""Instant feedback for the exercises: one ``check_<part>`` per graded part.

Every module in this package registers its checks on import; this package
re-exports each ``check_*`` function, so a notebook writes
``from course_lib.checks import check_scaled_dot_product_attention``.
See ``_core`` for how a check is built and how the grader re-verifies it.
"""

import importlib
import pkgutil

from course_lib.checks._core import REGISTRY, Check, CheckFailed, get_check

__all__ = ["REGISTRY", "Check", "CheckFailed", "get_check"]

for _info in pkgutil.iter_modules(__path__):
    if _info.name.startswith("_"):
        continue
    _module = importlib.import_module(f"{__name__}.{_info.name}")
    for _name in dir(_module):
        if _name.startswith("check_"):
            globals()[_name] = getattr(_module, _name)
            __all__.append(_name)
