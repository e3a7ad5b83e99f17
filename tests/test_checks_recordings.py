"""verify() stays pure and deterministic: re-run on the recorded outputs (as the grader does, in its own
process), it gives the same verdict and the same message as in the learner's kernel, for every check.

The right answers and planted mistakes are those of the chapter tables (tests/test_checks_*.py).
"""

import importlib

import pytest

from course_lib.checks import CheckFailed, get_check
from course_lib.grading import recorder

MODULES = [
    "test_checks_ch01_seq2seq", "test_checks_ch02_qkv", "test_checks_ch03_scaled_dot_product", "test_checks_ch04_multi_head",
    "test_checks_ch05_positional_encoding", "test_checks_ch06_masking", "test_checks_ch07_transformer", "test_checks_ch08_bert",
]  # fmt: skip


def _tables():
    """(check, right, wrongs) rows of every module-level table, each check once."""
    rows = {}
    for name in MODULES:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, list) and value and all(isinstance(r, tuple) and len(r) == 3 and hasattr(r[0], "check_name") for r in value):
                for check, right, wrongs in value:
                    rows.setdefault(check.check_name, (check, right, wrongs))
    return list(rows.values())


TABLES = _tables()


def _run_and_reverify(check, student, tmp_path):
    name = check.check_name
    recorder.begin("cell")
    try:
        check(student)
        kernel = None
    except CheckFailed as err:
        kernel = str(err)
    finally:
        recorder.end()
    path = tmp_path / f"cell__{name}.pt"
    if not path.exists():  # run() itself refused (nothing recorded): the grader then has no outputs to pass
        assert kernel is not None
        return
    c = get_check(name)
    try:
        c.verify(c.make_inputs(), recorder.load(path))
        clean = None
    except CheckFailed as err:
        clean = str(err)
    path.unlink()
    assert clean == kernel, f"{name}: in the kernel {kernel!r}, from the recording {clean!r}"


def test_every_check_has_a_table():
    from course_lib.checks import REGISTRY

    assert sorted(REGISTRY) == sorted(c.check_name for c, _, _ in TABLES)


@pytest.mark.parametrize("check, right, wrongs", TABLES, ids=[c.check_name for c, _, _ in TABLES])
def test_recorded_outputs_give_the_same_verdict_and_message(check, right, wrongs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(recorder.ENV_VAR, str(tmp_path))
    _run_and_reverify(check, right, tmp_path)
    for wrong, _ in wrongs[:4]:
        _run_and_reverify(check, wrong, tmp_path)
