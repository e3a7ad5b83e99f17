import pathlib

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Deliberately different sizes so that swapped axes fail (STYLE.md).
B, T, S, C, H = 3, 5, 7, 12, 3


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def root() -> pathlib.Path:
    return ROOT


def pytest_terminal_summary(terminalreporter):
    """Print each chapter's execution time from the last book build."""
    from course_lib.book import CHAPTER_BUDGET_S, chapter_execution_seconds

    times = chapter_execution_seconds()
    if times:
        terminalreporter.write_sep("-", "chapter execution times (last book build)")
        for name, seconds in sorted(times.items()):
            budget = CHAPTER_BUDGET_S.get(name)
            terminalreporter.write_line(f"{name:<28}{seconds:8.1f} s" + (f"   (budget {budget} s)" if budget else ""))
