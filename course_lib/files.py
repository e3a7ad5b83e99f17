"""Files that readers see whole: the old version or the new, never a half-written one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def replace_atomically(path: Path, write) -> None:
    """Write via a temporary file in the same folder, fsync, then os.replace: readers see the old or the new file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
