"""Every `>>>` example in course_lib runs, and prints what its docstring says (issue 25).

A docstring example is a claim about the code; here each one is a test case. The examples
are collected with ``doctest.DocTestFinder`` from every module of the package (all of
``course_lib``, the book's build machinery and the grader included), one case per docstring.
An example that cannot run cheaply is rewritten so that it can; ``# doctest: +SKIP`` is not
allowed (``test_no_example_is_skipped``), since a skipped example is the one that drifts.

``KNOWN_FAILING`` lists examples that fail in modules whose owners have not fixed them yet:
they are expected failures (xfail, not strict), with the reason, so that this test passes and
the list says what is left. Remove an entry when its example is fixed.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import course_lib

#: doctest name ("module.function") -> why it fails today (modules with another owner).
KNOWN_FAILING: dict[str, str] = {}


def _modules() -> list[str]:
    names = ["course_lib"]
    for info in pkgutil.walk_packages(course_lib.__path__, prefix="course_lib."):
        names.append(info.name)
    return sorted(names)


def _doctests() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = []
    for name in _modules():
        module = importlib.import_module(name)
        # the finder keeps only objects defined in `module`, not ones it imports
        found += [test for test in finder.find(module, name) if test.examples]
    return sorted({t.name: t for t in found}.values(), key=lambda t: t.name)


DOCTESTS = _doctests()


def test_examples_were_found():
    # the data modules, positional and tokenization all carry examples (a floor, not a count)
    names = [t.name for t in DOCTESTS]
    for expected in ("course_lib.data.corpus", "course_lib.data.dates", "course_lib.positional"):
        assert any(n.startswith(expected) for n in names), (expected, names)


def test_no_example_is_skipped():
    skipped = [
        f"{t.name}: {ex.source.strip()}"
        for t in DOCTESTS
        for ex in t.examples
        if ex.options.get(doctest.SKIP)
    ]
    assert not skipped, "run these examples instead of skipping them:\n" + "\n".join(skipped)


def run_doctest(test: doctest.DocTest) -> tuple[int, str]:
    """Run one docstring's examples; (number failed, the report)."""
    import io

    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    test.globs = dict(test.globs)  # a fresh namespace: examples must not leak into each other
    runner.run(test, out=out.write, clear_globs=True)
    return runner.failures, out.getvalue()


@pytest.mark.parametrize(
    "test",
    [
        pytest.param(t, id=t.name, marks=pytest.mark.xfail(reason=KNOWN_FAILING[t.name]))
        if t.name in KNOWN_FAILING
        else pytest.param(t, id=t.name)
        for t in DOCTESTS
    ],
)
def test_docstring_example(test):
    failures, report = run_doctest(test)
    assert failures == 0, report


def test_a_wrong_example_fails():
    """The planted case: an example whose printed output the code contradicts."""

    def planted():
        """
        >>> sorted(["b", "a"])
        ['b', 'a']
        """

    test = doctest.DocTestFinder().find(planted, "planted", globs={})[0]
    failures, report = run_doctest(test)
    assert failures == 1 and "Expected:" in report and "['a', 'b']" in report
