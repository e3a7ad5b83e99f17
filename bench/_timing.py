"""The timing helper the bench scripts share (run them from the repo root: python bench/x.py)."""

from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence


def median_times(fns: Sequence[Callable[[], object]], repeats: int, warmup: int = 2) -> list[float]:
    """Median seconds of each function, timed in alternation so that load from
    other processes affects all of them alike."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            start = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - start)
    return [statistics.median(ts) for ts in times]
