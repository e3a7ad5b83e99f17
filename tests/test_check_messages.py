"""What a learner reads around a check's verdict (issue 27): no author hints, no answer code in a hint, a NameError
from a helper defined further down, a note when the answer is 100x slower than the reference, and a warning when the
answer cell's latest run raised, so that the check tests the previous version (detected with a real IPython shell)."""

import json
import time

import pytest
import torch

from course_lib.checks import CheckFailed, check_attention_weights, check_padding_mask
from course_lib.checks import _notebook


def weights_ok(q, k):
    return (q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5).softmax(dim=-1)


def _failure(check, student) -> CheckFailed:
    with pytest.raises(CheckFailed) as info:
        check(student)
    return info.value


def test_no_author_hint_in_a_learners_output(monkeypatch):
    monkeypatch.delenv("COURSE_CHECK_TRACEBACK", raising=False)
    err = _failure(check_attention_weights, lambda q, k: (q @ k.transpose(-2, -1)).softmax(-1))
    shown = "\n".join(err._render_traceback_())
    assert "CheckFailed" in shown and "course authors" not in shown and "COURSE_CHECK_TRACEBACK" not in shown


def test_the_polarity_hint_does_not_print_the_answers_code():
    err = _failure(check_padding_mask, lambda tokens, pad_id: (tokens == pad_id)[:, None, None, :])
    assert "polarity is inverted" in str(err)
    assert "!=" not in str(err) and "==" not in str(err)  # in words, not the answer's code (tokens != pad_id)


def _notebook_file(tmp_path, *sources):
    nb = {"cells": [{"cell_type": "code", "source": s, "metadata": {}, "outputs": [], "execution_count": None} for s in sources],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "work.ipynb"
    path.write_text(json.dumps(nb))
    return path


def test_a_helper_defined_in_a_later_cell_says_run_the_cells_in_order(tmp_path, monkeypatch):
    path = _notebook_file(tmp_path, "def attention_weights(q, k):\n    return my_softmax(q @ k.mT)",
                          "def my_softmax(x):\n    return x.softmax(-1)")
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))

    def attention_weights(q, k):
        return my_softmax(q @ k.mT)  # noqa: F821 - defined in the notebook's next cell, which has not run

    assert "run the cells in order" in str(_failure(check_attention_weights, attention_weights))

    def typo(q, k):
        return my_softmaks(q @ k.mT)  # noqa: F821 - defined nowhere: no such advice

    assert "run the cells in order" not in str(_failure(check_attention_weights, typo))


class _Clock:
    """A stand-in for time.perf_counter: each call returns the next reading (then +1 ms a call), so the
    test does not depend on how busy the machine is (the check times the learner, then the reference)."""

    def __init__(self, *readings):
        self.readings, self.now = list(readings), 0.0

    def __call__(self):
        self.now = self.readings.pop(0) if self.readings else self.now + 0.001
        return self.now


def test_an_answer_100x_slower_than_the_reference_gets_a_note_and_its_tick(capsys, monkeypatch):
    # the learner's calls: 0 -> 10 s; the reference's: 10 -> 10.001 s (10,000x)
    monkeypatch.setattr(time, "perf_counter", _Clock(0.0, 10.0, 10.0, 10.001))
    check_attention_weights(weights_ok)
    out = capsys.readouterr().out
    assert "\u2714" in out and "slower" in out and " ms" in out and " s on this check's inputs" in out
    # the same answer, 2x the reference's time: no note (and nothing timed twice under the floor)
    monkeypatch.setattr(time, "perf_counter", _Clock(0.0, 0.002, 0.002, 0.003))
    check_attention_weights(weights_ok)
    assert "slower" not in capsys.readouterr().out


def test_no_slow_note_without_a_reference_or_for_a_fast_answer():
    assert _notebook.slow_note(lambda fn: None, None, 30.0) is None
    assert _notebook.slow_note(lambda fn: time.sleep(0.01), weights_ok, 0.1) is None


# --------------------------------------------------------------------------- stale definitions, in a real IPython shell


@pytest.fixture()
def shell(tmp_path, monkeypatch):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    from IPython.core.interactiveshell import InteractiveShell

    sh = InteractiveShell.instance()
    sh.run_cell("import math, torch\nfrom course_lib.checks import check_attention_weights", store_history=True)
    yield sh
    InteractiveShell.clear_instance()


RIGHT = "def attention_weights(q, k):\n    return (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)\n"
WRONG = "def attention_weights(q, k):\n    return (q @ k.transpose(-2, -1)).softmax(dim=-1)\n"
CHECK = "check_attention_weights(attention_weights)"


def test_a_syntax_error_in_the_answer_cell_says_the_previous_version_is_tested(shell, capsys):
    assert shell.run_cell(WRONG, store_history=True).success
    first = shell.execution_count - 1
    broken = shell.run_cell("def attention_weights(q, k):\n    return (q @ k.T", store_history=True)  # SyntaxError
    assert not broken.success
    capsys.readouterr()
    shell.run_cell(CHECK, store_history=True)
    out = capsys.readouterr().out
    assert "did not run to its end" in out and "previous version" in out and f"In [{first}]" in out
    assert "sqrt(d_k)" in out  # and the verdict is the previous version's (no scaling)


def test_an_error_above_the_def_also_leaves_the_previous_version(shell, capsys):
    shell.run_cell(RIGHT, store_history=True)
    shell.run_cell("import no_such_module_here\n" + WRONG, store_history=True)
    capsys.readouterr()
    shell.run_cell(CHECK, store_history=True)
    out = capsys.readouterr().out
    assert "did not run to its end" in out and "\u2714" in out  # the right, previous version passes, and it says so


def test_no_warning_when_the_latest_run_defined_the_function(shell, capsys):
    shell.run_cell("def attention_weights(q, k):\n    return (q @ k.T", store_history=True)  # SyntaxError first ...
    shell.run_cell(RIGHT, store_history=True)  # ... then fixed
    shell.run_cell(RIGHT + "raise ValueError('after the def')", store_history=True)  # the def ran, then an error
    capsys.readouterr()
    shell.run_cell(CHECK, store_history=True)
    out = capsys.readouterr().out
    assert "\u2714" in out and "did not run" not in out


def test_outside_ipython_nothing_is_said():
    assert _notebook.stale_definition_note(weights_ok) is None  # no shell instance here


def test_released_notebooks_carry_the_language_info_ipykernel_reports():
    """JupyterLab writes the kernel's language_info into a notebook when its kernel starts: a notebook with less
    (e.g. only {"name": "python"}) shows as modified as soon as it is opened (seen in JupyterLab 4.6)."""
    import pathlib
    import sys

    root = pathlib.Path(__file__).resolve().parents[1]
    expected = {"codemirror_mode": {"name": "ipython", "version": sys.version_info[0]}, "file_extension": ".py",
                "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python", "pygments_lexer": "ipython3"}
    for path in sorted(root.glob("exercises/*/*.ipynb")):
        info = json.loads(path.read_text())["metadata"]["language_info"]
        assert {k: v for k, v in info.items() if k != "version"} == expected, path
        assert info["version"].startswith("3."), path
