"""A failed check reads short in Jupyter: the message and hint, the learner's own frames, no machinery (issue 17).

IPython shows ``exc._render_traceback_()`` instead of the traceback when an exception has it;
``COURSE_CHECK_TRACEBACK=1`` removes it, so course authors get the full traceback back. The
exception's type and message, which the grader records, are the same either way.
"""

import subprocess
import sys
import textwrap

import pytest

from course_lib.checks import CheckFailed, check_attention_weights
from course_lib.checks._core import TRACEBACK_ENV_VAR


def weights_unscaled(q, k):
    return (q @ k.transpose(-2, -1)).softmax(dim=-1)


def weights_crash(q, k):
    scores = q @ k  # the learner forgot the transpose: a shape error inside their own code
    return scores.softmax(-1)


def _failure(student) -> CheckFailed:
    with pytest.raises(CheckFailed) as info:
        check_attention_weights(student)
    return info.value


def test_short_traceback_is_the_message_and_hint(monkeypatch):
    monkeypatch.delenv(TRACEBACK_ENV_VAR, raising=False)
    err = _failure(weights_unscaled)
    lines = err._render_traceback_()
    text = "\n".join(lines)
    assert str(err) in text and "did not divide the scores by sqrt(d_k)" in text
    assert "_core.py" not in text and "Traceback" not in text
    assert len(lines) <= 6, lines


def test_short_traceback_keeps_the_learners_own_frames(monkeypatch):
    monkeypatch.delenv(TRACEBACK_ENV_VAR, raising=False)
    text = "\n".join(_failure(weights_crash)._render_traceback_())
    assert "scores = q @ k" in text and "test_checks_render.py" in text  # the learner's line
    assert "_core.py" not in text and "course_lib/checks" not in text


def test_full_traceback_one_flag_away(monkeypatch):
    monkeypatch.setenv(TRACEBACK_ENV_VAR, "1")
    assert not hasattr(_failure(weights_unscaled), "_render_traceback_")


def test_in_ipython_a_failed_check_prints_a_few_lines():
    """Run a cell in a real IPython shell (a subprocess: the shell is a singleton) and count its lines."""
    code = textwrap.dedent(
        """
        import io, contextlib
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance(colors="NoColor")
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            result = shell.run_cell(
                "from course_lib.checks import check_attention_weights\\n"
                "check_attention_weights(lambda q, k: (q @ k.transpose(-2, -1)).softmax(-1))"
            )
        print(type(result.error_in_exec).__name__)
        print(buf.getvalue())
        """
    )
    for env_value, short in (("", True), ("1", False)):
        env = {**__import__("os").environ, TRACEBACK_ENV_VAR: env_value}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120).stdout
        assert out.startswith("CheckFailed"), out
        assert "did not divide the scores by sqrt(d_k)" in out
        if short:
            assert "_core.py" not in out and len(out.strip().splitlines()) <= 8, out
        else:
            assert "_core.py" in out, out
