"""Show the code a chapter teaches, read from course_lib itself when the book builds.

    from course_lib.source import show_source
    show_source(MultiHeadAttention.forward)

renders the function, method or class as highlighted Python (Markdown output: the book
highlights it like a code cell, and so does Jupyter), under a caption naming the file and
lines it comes from. One source of truth: the book and the package cannot drift.
"""

import inspect
import re
import textwrap
from pathlib import Path

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


class Source:
    """The source of one object; displays as a fenced Python block."""

    def __init__(self, obj: object) -> None:
        try:
            lines, first = inspect.getsourcelines(obj)
            path = Path(inspect.getsourcefile(obj)).resolve()
        except (TypeError, OSError) as error:
            raise TypeError(
                f"show_source expected a function, method or class defined in a "
                f"Python file, got {obj!r} ({type(obj).__name__}): {error}"
            ) from None
        # methods come indented by their class: show them flush left
        self.code = textwrap.dedent("".join(lines)).rstrip("\n")
        try:
            self.where = path.relative_to(_PACKAGE_ROOT).as_posix()
        except ValueError:
            self.where = path.name
        self.lines = (first, first + len(lines) - 1)

    def _repr_markdown_(self) -> str:
        longest = max((len(run) for run in re.findall(r"`+", self.code)), default=0)
        fence = "`" * max(3, longest + 1)
        start, end = self.lines
        return (
            f"*`{self.where}`, lines {start}-{end}:*\n\n"
            f"{fence}python\n{self.code}\n{fence}\n"
        )

    def __repr__(self) -> str:
        return self.code


def show_source(obj: object) -> Source:
    """The source of `obj` (function, method or class), for display in a notebook."""
    return Source(obj)
