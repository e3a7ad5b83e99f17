"""course_lib.source.show_source: the book shows course_lib's own code."""

import inspect

import pytest

from course_lib.attention import MultiHeadAttention, split_heads
from course_lib.source import show_source


def test_function_source_is_the_package_source_in_a_python_fence():
    shown = show_source(split_heads)._repr_markdown_()
    assert "course_lib/attention.py" in shown
    assert "```python\n" + inspect.getsource(split_heads).rstrip("\n") + "\n```" in shown


def test_method_is_shown_flush_left_with_its_line_numbers():
    source = show_source(MultiHeadAttention.forward)
    assert source.code.startswith("def forward(")
    lines, first = inspect.getsourcelines(MultiHeadAttention.forward)
    assert source.lines == (first, first + len(lines) - 1)
    assert f"lines {first}-" in source._repr_markdown_()


def test_backticks_in_the_source_get_a_longer_fence():
    def quoted():
        return "```"

    shown = show_source(quoted)._repr_markdown_()
    assert shown.count("````") == 2


def test_something_without_source_is_a_clear_error():
    with pytest.raises(TypeError, match="expected a function, method or class"):
        show_source(3)
