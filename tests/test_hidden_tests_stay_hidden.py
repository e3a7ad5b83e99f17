"""Hidden tests stay hidden (issue #22): a submission that has read the grader tries to see them.

Five ch03 submissions, each the course's solution plus one attack, are graded for real, in the
sandbox. Each attack collects what it can see of the test cells while the notebook runs and, in
a cell of its own at the end, prints it base64-encoded (``LEAK <base64 of a JSON list>``), so
that a text filter on the page cannot hide a leak from this test. The attacks:

- ``hooks``: IPython event callbacks (``pre_run_cell``, ``post_run_cell``, ``pre_execute``,
  ``post_execute``), an input transformer, an AST transformer, a ``sys.stdout`` that copies what
  is written, a ``sys.displayhook``, all re-registered every 5 ms by a thread and from a
  ``__del__`` that keeps coming back;
- ``trace``: ``sys.settrace``, ``sys.setprofile`` and ``threading.settrace`` functions that read
  each frame's source from ``linecache`` and its names, re-set from a ``__del__``, and an audit
  hook on ``compile``/``exec``;
- ``stack``: the answer a hidden check calls runs ``inspect.stack()`` and reads every caller's
  source (``code_context`` and ``linecache``);
- ``history``: a last cell dumps ``In``, ``_ih``, ``_i``/``_ii``/``_iii``, ``Out``, ``linecache``
  and IPython's history;
- ``files``: a last cell walks every readable file of the sandbox (but ``/usr``, the Python
  installation and course_lib, which is public and names every check) and every process's
  ``cmdline``, ``environ`` and readable memory, looking for "BEGIN HIDDEN" and check names
  (in the kernel's own memory, where the public checks module names every check: for lines
  of test cells).

Asserted: every part still passes (10 / 10); the decoded leaks hold no line of hidden-test
source and no name of a hidden check (the ``stack`` attack: no source; a function a check calls
can always read its caller's *names* from the frames, see course_lib/grading/kernel.py); the
feedback pages hold neither, in any form; ``In`` after the run holds no test cell.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest

from course_lib.grading.grader import Limits, grade

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
import ch03_submissions as ch03  # noqa: E402

LIMITS = Limits(cell_timeout=60, total_timeout=240, memory_mb=2048)
PAGE = f"{ch03.ASSIGNMENT}/{ch03.NAME}.html"

_KEEP = '''
def _keep(text):
    text = str(text)
    if any(m in text for m in ("HIDDEN", "check_", "__r.", "ch3.")) and text[:4000] not in _CAPTURED:
        _CAPTURED.append(text[:4000])
'''

HOOKS = _KEEP + '''
import ast, gc, sys, threading, time
_CAPTURED = []
_ip = get_ipython()
def _grab(*args, **kwargs):
    for a in args:
        _keep(getattr(a, "raw_cell", a))
        _keep(getattr(getattr(a, "info", None), "raw_cell", ""))
def _grab_lines(lines):
    _keep("".join(lines))
    return lines
class _Ast(ast.NodeTransformer):
    def visit_Module(self, node):
        _keep(ast.unparse(node))
        return node
def _register():
    for event in ("pre_run_cell", "post_run_cell", "pre_execute", "post_execute"):
        try:
            _ip.events.register(event, _grab)
        except Exception:
            pass
    if _grab_lines not in _ip.input_transformers_cleanup:
        _ip.input_transformers_cleanup.append(_grab_lines)
    if not any(isinstance(t, _Ast) for t in _ip.ast_transformers):
        _ip.ast_transformers.append(_Ast())
class _Tee:
    def __init__(self, stream):
        self.stream = stream
    def write(self, text):
        _keep(text)
        return self.stream.write(text)
    def __getattr__(self, name):
        return getattr(self.stream, name)
def _install():
    _register()
    if not isinstance(sys.stdout, _Tee):
        sys.stdout = _Tee(sys.stdout)
    if getattr(sys.displayhook, "__name__", "") != "_shown":
        old = sys.displayhook
        def _shown(value):
            _keep(repr(value))
            return old(value)
        sys.displayhook = _shown
def _loop():
    while True:
        _install()
        time.sleep(0.005)
class _Phoenix:
    def __del__(self):
        _install()
        p = _Phoenix(); p.me = p  # back at the next collection
p = _Phoenix(); p.me = p; del p
_install()
threading.Thread(target=_loop, daemon=True).start()
'''

TRACE = _KEEP + '''
import linecache, sys, threading
_CAPTURED = []
def _tracer(frame, event, arg):
    try:
        _keep("".join(linecache.getlines(frame.f_code.co_filename)))
        _keep(" ".join(frame.f_code.co_names))
        _keep(getattr(frame.f_locals.get("self"), "name", ""))
    except Exception:
        pass
    return _tracer
def _profiler(frame, event, arg):
    _tracer(frame, event, arg)
def _install():
    for fn in (lambda: sys.settrace(_tracer), lambda: sys.setprofile(_profiler),
               lambda: threading.settrace(_tracer), lambda: threading.setprofile(_profiler)):
        try:
            fn()
        except Exception:
            pass
class _Phoenix:
    def __del__(self):
        _install()
        p = _Phoenix(); p.me = p
p = _Phoenix(); p.me = p; del p
try:
    sys.addaudithook(lambda event, args: _keep(args) if event in ("compile", "exec") else None)
except Exception:
    pass
_install()
'''

STACK = _KEEP + '''
import inspect, linecache
_CAPTURED = []
_real_sdpa = scaled_dot_product_attention
def scaled_dot_product_attention(q, k, v, mask=None):
    for f in inspect.stack():
        _keep("".join(f.code_context or []))
        _keep("".join(linecache.getlines(f.filename)))
    return _real_sdpa(q, k, v, mask)
'''

HISTORY = '''
import linecache
_CAPTURED = [str(In), str(_ih), str(_i), str(_ii), str(_iii), str(Out)]
import course_lib, os, sys
_public = (os.path.dirname(course_lib.__file__), sys.prefix, sys.base_prefix, "/usr")  # the course's code is public
_CAPTURED += ["".join(v[2]) for k, v in list(linecache.cache.items())
              if isinstance(v, tuple) and len(v) > 2 and not str(k).startswith(_public)]
_hm = get_ipython().history_manager
_CAPTURED += [str(_hm.input_hist_raw), str(_hm.input_hist_parsed)]
try:
    _CAPTURED.append(str(list(_hm.get_range(raw=True))))
except Exception as err:
    _CAPTURED.append(f"history: {err}")
_CAPTURED = [c for c in _CAPTURED if any(m in c for m in ("HIDDEN", "check_", "__r.", "ch3."))]
'''

FILES = '''
import os, re, sys
import course_lib
_CAPTURED = []
_marker = rb"### BEGIN " + rb"HIDDEN TESTS\\n[^\\n]*"  # split: this cell's own text must not hold the marker
_pattern = re.compile(_marker + rb"|check_[a-z0-9_]+|ch\\d+\\.[a-z0-9_]+")
# this process has all of (public) course_lib.checks loaded: in its own memory, look for test cells' lines
_lines = re.compile(_marker + rb"|import check_[a-z0-9_, ]+|check_[a-z0-9_]+\\([A-Za-z_]+\\)")
_skip = ("/usr", "/proc", "/sys", "/dev", sys.prefix, sys.base_prefix, os.path.dirname(course_lib.__file__))
def _grep(path, data):
    pattern = _lines if path == f"/proc/{os.getpid()}/mem" else _pattern
    found = sorted({m.decode() for m in pattern.findall(data)})
    if found:
        _CAPTURED.append(f"{path}: {' '.join(found)}")
for top, dirs, files in os.walk("/", onerror=lambda e: None):
    dirs[:] = [d for d in dirs if not os.path.join(top, d).startswith(_skip)]
    for name in files:
        path = os.path.join(top, name)
        try:
            if os.path.isfile(path) and not os.path.islink(path) and os.path.getsize(path) < 50 * 2**20:
                with open(path, "rb") as f:
                    _grep(path, f.read())
        except OSError:
            pass
for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
    for part in ("cmdline", "environ"):
        try:
            with open(f"/proc/{pid}/{part}", "rb") as f:
                _grep(f"/proc/{pid}/{part}", f.read())
        except OSError:
            pass
    try:
        with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb") as mem:
            for line in maps:
                span, perms = line.split()[:2]
                start, end = (int(x, 16) for x in span.split("-"))
                if perms.startswith("rw") and end - start < 256 * 2**20:
                    try:
                        mem.seek(start)
                        _grep(f"/proc/{pid}/mem", mem.read(end - start))
                    except (OSError, ValueError, OverflowError):
                        pass
    except OSError:
        pass
'''

PRINT = '''
import base64 as _b64, json as _json
_out, _n = [], 0
for _t in sorted(set(_CAPTURED), key=lambda t: ("HIDDEN" not in t, "check_" not in t, len(t))):
    if _n + len(_t) < 100_000:  # the grader keeps 200,000 characters of a cell's output
        _out.append(_t)
        _n += len(_t)
print("LEAK", _b64.b64encode(_json.dumps(_out).encode()).decode())
'''

#: student -> (answer cell the attack is added to, code before the solution, code after it, code of a last extra cell)
ATTACKS = {
    "hooks": (ch03.SA, "", HOOKS, PRINT),
    "trace": (ch03.SA, "", TRACE, PRINT),
    "stack": (ch03.SB, "", STACK, PRINT),
    "history": (ch03.SA, "", "", HISTORY + PRINT),
    "files": (ch03.SA, "", "", FILES + PRINT),
}


def hidden_sources() -> list[str]:
    """Every line of hidden-test source in the ch03 source, and the markers around it."""
    source = nbformat.read(ch03.SOURCE, as_version=4)
    texts = ["BEGIN HIDDEN TESTS", "END HIDDEN TESTS"]
    for cell in source.cells:
        for block in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", cell.source, re.DOTALL):
            texts += [line.strip() for line in block.splitlines() if line.strip()]
    return texts


def hidden_names() -> list[str]:
    """The check functions the hidden tests call, and their registered names."""
    from course_lib import checks
    from course_lib.grading.notebooks import called_check_functions

    names = []
    source = nbformat.read(ch03.SOURCE, as_version=4)
    for cell in source.cells:
        for block in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", cell.source, re.DOTALL):
            for fname in called_check_functions(block):
                names += [fname, getattr(checks, fname).check_name]
    assert len(names) >= 6
    return names


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    subs = tmp_path_factory.mktemp("attacks")
    out = tmp_path_factory.mktemp("attack_grades")
    solution = ch03.solution_code()
    for student, (gid, before, after, last) in ATTACKS.items():
        nb = ch03.answered({gid: before + "\n" + solution[gid] + "\n" + after})
        nb.cells.append(nbformat.v4.new_code_cell(last.strip("\n")))
        folder = subs / student / ch03.ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{ch03.NAME}.ipynb")
    run = grade(subs, out, LIMITS, jobs=2)
    return run, out


def _leaks(page: str) -> list[str]:
    found = re.findall(r"LEAK ([A-Za-z0-9+/=]+)", page)
    assert found, "the attack's last cell printed nothing: it did not run to the end"
    return [item for blob in found for item in json.loads(base64.b64decode(blob))]


@pytest.mark.slow
@pytest.mark.parametrize("student", list(ATTACKS))
def test_attack_sees_no_hidden_test(graded, student):
    run, out = graded
    rows = [r for r in run.rows if r.student == student]
    assert rows and all(r.status == "passed" for r in rows), [(r.grade_id, r.status, r.message) for r in rows]
    page = (out / "feedback" / student / PAGE).read_text(encoding="utf-8")
    leaked = "\n".join(_leaks(page))
    secret = hidden_sources() + ([] if student == "stack" else hidden_names())
    shown = [t for t in secret if t in leaked]
    assert not shown, f"{student} saw {shown}:\n{leaked[:3000]}"


@pytest.mark.slow
@pytest.mark.parametrize("student", list(ATTACKS))
def test_feedback_page_holds_no_hidden_test(graded, student):
    _, out = graded
    page = (out / "feedback" / student / PAGE).read_text(encoding="utf-8")
    decoded = page + "\n".join(_leaks(page))
    shown = [t for t in hidden_sources() + hidden_names() + ["__r.begin"] if t in page]  # nor the grader's prefix line
    assert not shown, f"{student}'s page shows {shown}"
    if student != "stack":
        assert not [t for t in hidden_sources() + hidden_names() if t in decoded]
