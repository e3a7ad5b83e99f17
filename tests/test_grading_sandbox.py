"""The sandbox (issue 13): submissions that attack the grader, graded in ONE run beside honest students.

Every attack gets its honest score and a clear status; the honest students keep full marks;
the gradebook, course_lib, solutions/ and exercises/ are unchanged afterwards; no process of the
run survives it; the grader's memory stays small. About two minutes on 2 cores (one run, --jobs 2,
short timeouts). Needs bubblewrap: without it these tests fail and say what to install.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from course_lib.grading import grader, libview, ownwork, sandbox
from course_lib.grading.grader import Limits, grade

ROOT = Path(__file__).resolve().parents[1]
if not (ROOT / "solutions").is_dir():  # the learners' public copy (`make test` there)
    pytest.skip("no solutions/ in this copy of the course (the learners' public copy): the sandbox's attacks are graded against the instructors' source notebooks",
                allow_module_level=True)
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
import ch03_attacks as attacks  # noqa: E402

COURSE = [sys.executable, "-m", "course_lib.cli"]
LIMITS = Limits(cell_timeout=15, total_timeout=90, memory_mb=2048)


def _course_hash() -> dict[str, str]:
    """sha256 of every file of course_lib/, solutions/ and exercises/ (caches aside)."""
    hashes = {}
    for folder in (ROOT / "course_lib", ROOT / "solutions", ROOT / "exercises"):
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                hashes[str(path.relative_to(ROOT))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


#: the files the modify_course_lib attack appends to
TARGETS = ("course_lib/__init__.py", "course_lib/grading/grader.py", "course_lib/checks/_core.py")


def _processes_of_this_run() -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines()
            if "course_lib.grading.runner" in line and "/grading/in" in line or attacks.MARKER in line]


def _process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process now."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True, check=False).stdout
    table = {}
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            table[int(parts[0])] = (int(parts[1]), parts[2] if len(parts) > 2 else "")
    return table


def _descendants(root: int) -> dict[int, str]:
    """pid -> command line of ``root``'s descendants now (the processes of one grading run, not another's)."""
    table = _process_table()
    found, todo = {}, [root]
    while todo:
        parent = todo.pop()
        for pid, (ppid, args) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = args
                todo.append(pid)
    return found


def test_bubblewrap_is_available():
    assert sandbox.unavailable() is None, f"the grader's sandbox cannot be made here: {sandbox.unavailable()}"


# =========================================================================== fast: no notebook runs


def test_the_references_of_the_graded_assignment_are_withheld(tmp_path):
    assert ("course_lib.attention", "scaled_dot_product_attention") in libview.references("ch03_scaled_dot_product")
    # a building block an exercise's locked cells hand out is not withheld
    assert ("course_lib.attention", "scaled_dot_product_attention") not in libview.references("ch04_multi_head")
    # chapter 4's part (c) hands the course's MultiHeadAttention to the learner's code: kept in the
    # sandbox, but an answer that imports it is still not the learner's own
    assert ("course_lib.attention", "MultiHeadAttention") not in libview.references("ch04_multi_head")
    assert ("course_lib.attention", "MultiHeadAttention") in libview.references("ch04_multi_head", in_answers=True)
    pkg = libview.build("ch03_scaled_dot_product", tmp_path)
    attention = (pkg / "attention.py").read_text()
    assert libview.WITHHELD in attention and "def scaled_dot_product_attention" in attention
    assert "math.sqrt" not in attention.split("def scaled_dot_product_attention", 1)[1].split("\ndef ", 1)[0]
    checks = (pkg / "checks" / "ch03_scaled_dot_product.py").read_text()
    assert "_reference_entropy" not in checks and "xlogy" not in checks, "a verify-only helper was left in the copy"
    assert "def run" in checks and "def make_inputs" in checks


def test_static_check_names_what_is_not_the_learners_own():
    refs = [("course_lib.attention", "scaled_dot_product_attention")]
    cases = {
        "from course_lib.attention import scaled_dot_product_attention": "reference",
        "import course_lib.attention as A\nf = A.scaled_dot_product_attention": "reference",
        "from course_lib.checks.ch05_positional_encoding import PLANTED_MISTAKE": "only check_*",
        "from course_lib.checks._core import Check\nCheck.__call__ = lambda s, f: None": "only check_*",
        "import course_lib.grading.recorder as r": "grader",
    }
    for source, phrase in cases.items():
        found = ownwork.findings_in(source, "cell", refs)
        assert found and any(phrase in f.why for f in found), (source, found)
    for fine in ("from course_lib.checks import check_attention_weights", "import torch\nx = torch.ones(2)",
                 "from course_lib.attention import MultiHeadAttention"):
        assert ownwork.findings_in(fine, "cell", refs) == [], fine


def test_bounded_recordings_are_refused_before_loading(tmp_path):
    import torch
    import zipfile

    ok = tmp_path / "ok.pt"
    torch.save({"x": torch.ones(3)}, ok)
    assert grader.load_recording(ok)["x"].shape == (3,)
    wide = tmp_path / "wide.pt"
    torch.save({"x": torch.zeros(1).expand(grader.MAX_RECORDING_ELEMENTS + 1)}, wide)  # 4 bytes stored, 16M elements
    with pytest.raises(grader._Bound, match="elements"):
        grader.load_recording(wide)
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\0" * (8 << 20))
    with pytest.raises(grader._Bound, match="compressed"):
        grader.load_recording(bomb)
    os.symlink(ok, tmp_path / "link.pt")
    with pytest.raises(grader._Bound, match="cannot be opened"):
        grader.load_recording(tmp_path / "link.pt")


def test_grade_refuses_without_a_sandbox_and_says_what_to_install(tmp_path):
    (tmp_path / "subs" / "ann").mkdir(parents=True)
    env = {**os.environ, "PATH": "/nonexistent"}  # no bwrap on PATH
    proc = subprocess.run([*COURSE, "grade", str(tmp_path / "subs"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=ROOT, env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "apt-get install bubblewrap" in proc.stderr and "--no-sandbox" in proc.stderr
    assert not (tmp_path / "out").exists(), "nothing is graded when it refuses"
    proc = subprocess.run([*COURSE, "grade", str(tmp_path / "subs"), "--out", str(tmp_path / "out"), "--no-sandbox"],
                          capture_output=True, text=True, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WITHOUT a sandbox" in proc.stderr and "read solutions/" in proc.stderr


# =========================================================================== the attack run (slow)


@pytest.fixture(scope="module")
def attack_run(tmp_path_factory):
    subs = tmp_path_factory.mktemp("attacks")
    out = tmp_path_factory.mktemp("attack_grades")
    built = attacks.build(subs)
    course_before = _course_hash()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    run = grade(subs, out, LIMITS, jobs=2)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    book_after_run = (out / "gradebook.json").read_bytes()
    time.sleep(3)  # a surviving background process would rewrite it now
    return dict(built=built, run=run, out=out, course_before=course_before, book_after_run=book_after_run,
                rss_growth=rss_after - rss_before)


@pytest.mark.slow
@pytest.mark.parametrize("attack", attacks.ATTACKS, ids=[a.student for a in attacks.ATTACKS])
def test_attack_gets_its_honest_score_and_status(attack, attack_run):
    rows = [r for r in attack_run["run"].rows if r.student == attack.student]
    graded = {r.grade_id: r for r in rows if r.grade_id}
    assert sum(1 for r in rows if not r.grade_id) == attack.problem_rows
    assert set(graded) == set(attack.points), f"{attack.student}: rows {sorted(graded)}"
    for gid, r in graded.items():
        detail = f"{attack.student}/{gid} ({attack.why}): {r.points} {r.status}: {r.message[:300]}"
        assert r.points == attack.points[gid], detail
        assert r.status in attack.statuses[gid], detail
        assert not r.grader_failure, detail
    for gid, phrase in attack.message.items():
        assert phrase in graded[gid].message, f"{attack.student}/{gid}: {phrase!r} not in {graded[gid].message!r}"


@pytest.mark.slow
def test_odd_folder_names_are_reported_not_skipped(attack_run):
    rows = [r for r in attack_run["run"].rows if r.student in (".hidden", "_underscore")]
    assert len(rows) == 2 and all(r.status == "unreadable" and "rename it" in r.message for r in rows)
    assert not attack_run["run"].ok, "a submission that was not graded makes the exit status 1"


@pytest.mark.slow
def test_course_files_are_unchanged(attack_run):
    before, after = attack_run["course_before"], _course_hash()
    for target in TARGETS:
        assert after[target] == before[target], f"{target} changed during the run"
    changed = [f for f in set(before) | set(after) if before.get(f) != after.get(f)]
    # in a shared checkout someone may edit the course meanwhile: such a change must not be the attack's
    tainted = [f for f in changed if f in after and attacks.MARKER.encode() in (ROOT / f).read_bytes()]
    assert not tainted, f"an attack wrote into {tainted}"
    if changed:
        print(f"note: changed during the run, not by a submission (no marker): {sorted(changed)[:5]}")


@pytest.mark.slow
def test_gradebook_is_the_graders_and_stays_so(attack_run):
    out = attack_run["out"]
    assert (out / "gradebook.json").read_bytes() == attack_run["book_after_run"], "the gradebook changed after the run"
    assert b"HACKED" not in (out / "gradebook.json").read_bytes() + (out / "gradebook.csv").read_bytes()
    book = json.loads((out / "gradebook.json").read_text())["rows"]
    honest = [r for r in book if r["student"].startswith("honest_")]
    assert len(honest) == 8 and all(r["status"] == "passed" and r["points"] == r["max_points"] for r in honest)
    assert not list(out.rglob(attacks.MARKER))


@pytest.mark.slow
def test_nothing_outlives_the_run_and_no_marker_reaches_the_host(attack_run):
    assert not _processes_of_this_run()
    for top in (Path("/tmp"), ROOT, Path.home()):
        found = [p for p in top.glob(f"*/{attacks.MARKER}")] + [p for p in top.glob(attacks.MARKER)]
        assert not found, found


@pytest.mark.slow
def test_the_grader_stays_small(attack_run):
    assert attack_run["rss_growth"] < 512 * 2**20, f"the grader grew by {attack_run['rss_growth'] / 2**20:.0f} MiB"


@pytest.mark.slow
def test_a_killed_grader_keeps_its_rows_and_a_rerun_completes(tmp_path):
    subs = tmp_path / "subs"
    for student in ("ann", "bob", "cat"):
        folder = subs / student / attacks.ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(attacks.answered(), folder / f"{attacks.NAME}.ipynb")
    out = tmp_path / "out"
    # this run's job folders (and so its bwrap command lines) are under `jobs`: other grading runs on
    # the machine (a parallel test session) are neither counted nor blamed
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    proc = subprocess.Popen([*COURSE, "grade", str(subs), "--out", str(out), "--jobs", "1", "--quiet"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "TMPDIR": str(jobs)})
    deadline = time.time() + 120
    rows = []
    mine: dict[int, str] = {}  # every process this run started, seen while it ran
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.3)
        mine.update(_descendants(proc.pid))
        try:
            rows = json.loads((out / "gradebook.json").read_text())["rows"]
        except (OSError, ValueError) as err:
            assert not isinstance(err, ValueError), "a reader saw a half-written gradebook"
            continue
        if rows:
            break
    mine.update(_descendants(proc.pid))
    assert any("course_lib.grading.runner" in args for args in mine.values()), "no sandboxed runner was seen"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert rows and {r["student"] for r in rows} < {"ann", "bob", "cat"}, rows
    kept = json.loads((out / "gradebook.json").read_text())["rows"]
    assert all(r["status"] == "passed" for r in kept) and kept
    time.sleep(1)
    now = _process_table()
    left = [f"{pid} {args}" for pid, args in mine.items() if pid in now and now[pid][1] == args]
    left += [f"{pid} {args}" for pid, (_, args) in now.items() if str(jobs) in args and pid not in mine]
    assert not left, f"the sandbox outlived its killed grader: {left}"
    run = grade(subs, out, LIMITS, jobs=2)
    assert run.ok
    final = json.loads((out / "gradebook.json").read_text())["rows"]
    assert {r["student"] for r in final} == {"ann", "bob", "cat"} and len(final) == 12
