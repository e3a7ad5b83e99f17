"""The GitHub Actions workflows are valid, and do what the course needs.

Linter: check-jsonschema (PyPI) with its built-in, vendored copy of SchemaStore's
GitHub-workflow schema (`--builtin-schema vendor.github-workflows`): no download at run
time. It catches unknown keys, wrong types, missing `runs-on`/`steps`, unknown events.
The planted-error tests prove it. (actionlint's PyPI wrapper downloads a binary when
installed, so it cannot be used here.) A few checks of our own follow: pinned
actions, no `${{ }}` expressions pasted into shell scripts, and the steps each
workflow exists for.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
import textwrap

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
LINT = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows"]


def _lint(*paths: pathlib.Path) -> subprocess.CompletedProcess:
    pytest.importorskip("check_jsonschema", reason="check-jsonschema is not installed: it is in pyproject's [test] extra (make test installs it)")
    return subprocess.run([*LINT, *map(str, paths)], capture_output=True, text=True, timeout=120)


def _load(name: str) -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())


def test_the_two_workflows_exist():
    names = {p.name for p in WORKFLOWS}
    assert {"book.yml", "grade.yml"} <= names, f"expected book.yml and grade.yml in .github/workflows, found {sorted(names)}"


def test_workflows_pass_the_linter():
    result = _lint(*WORKFLOWS)
    assert result.returncode == 0, f"workflows fail the schema:\n{result.stdout}{result.stderr}"


PLANTED = {
    "no_runs_on": ("""
        on: push
        jobs:
          build:
            steps:
              - run: make book
        """, "'runs-on' is a required property"),
    "misspelled_steps": ("""
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            step:
              - run: make book
        """, "'step' was unexpected"),
    "unknown_event": ("""
        on: pushh
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - run: make book
        """, "pushh"),
    "with_is_a_list": ("""
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
                with: [fetch-depth]
        """, "is not of type 'object'"),
}


@pytest.fixture(scope="module")
def planted_report(tmp_path_factory):
    """The linter's report on every planted broken workflow (one run: each start costs seconds)."""
    folder = tmp_path_factory.mktemp("planted")
    for name, (text, _) in PLANTED.items():
        (folder / f"{name}.yml").write_text(textwrap.dedent(text))
    paths = sorted(folder.glob("*.yml"))
    result = _lint(*paths)
    # check-jsonschema reports each error under a "<file>::$.path: message" line
    per_file: dict[str, str] = {p.stem: "" for p in paths}
    current = None
    for line in result.stdout.splitlines():
        head = re.match(r"\s*(\S+\.yml)::", line)
        if head:
            current = pathlib.Path(head.group(1)).stem
        if current in per_file:
            per_file[current] += line + "\n"
    return result.returncode, per_file


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_the_linter_catches_a_broken_workflow(name, planted_report):
    returncode, per_file = planted_report
    _, expected = PLANTED[name]
    assert returncode != 0, "the linter accepted the broken workflows"
    assert per_file[name], f"the linter reported nothing about the planted {name}.yml:\n{textwrap.dedent(PLANTED[name][0])}"
    assert expected in per_file[name], f"the linter's report on {name}.yml does not mention {expected!r}:\n{per_file[name]}"


def _steps(workflow: dict):
    for job in workflow["jobs"].values():
        yield from job.get("steps", [])


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_and_scripts_take_no_expressions(path):
    workflow = yaml.safe_load(path.read_text())
    for step in _steps(workflow):
        if "uses" in step:
            assert re.search(r"@(v\d+|[0-9a-f]{40})$", step["uses"]), f"{path.name}: pin {step['uses']} to a major version or commit"
        if "run" in step:
            # ${{ ... }} in a script is pasted in before the shell runs: pass values through env: instead
            assert "${{" not in step["run"], f"{path.name}: an expression inside run: {step['run']!r}; pass it through env:"


def test_book_workflow_builds_with_make_and_publishes_to_pages():
    workflow = _load("book.yml")
    steps = list(_steps(workflow))
    uses = [s.get("uses", "") for s in steps]
    runs = " ".join(s.get("run", "") for s in steps)
    assert "make book" in runs
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses)
    assert any(u.startswith("actions/deploy-pages@") for u in uses)
    python = [s["with"]["python-version"] for s in steps if s.get("uses", "").startswith("actions/setup-python@")]
    assert python == ["3.11"], f"the book is built with Python 3.11, got {python}"
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/html"
    deploy = workflow["jobs"]["deploy"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"


def grade_workflow_problems(workflow: dict) -> list[str]:
    """What keeps grade.yml from grading the class as a matrix of shards and merging them (empty: nothing)."""
    problems = []
    events = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as True
    if not ("workflow_dispatch" in events and "submissions/**" in events.get("push", {}).get("paths", [])):
        problems.append("it must run on pushes to submissions/** and by hand")
    jobs = workflow["jobs"]
    grade, merge = jobs.get("grade", {}), jobs.get("merge", {})
    strategy = grade.get("strategy", {})
    shards = strategy.get("matrix", {}).get("shard")
    if not (isinstance(shards, list) and len(shards) >= 2 and shards == list(range(1, len(shards) + 1))):
        problems.append(f"the grade job's matrix.shard must be 1..N with N >= 2, got {shards!r}")
    if strategy.get("fail-fast") is not False:
        problems.append("fail-fast must be false: one failing shard must not cancel the others")
    steps = grade.get("steps", [])
    step = next((s for s in steps if "course grade submissions" in s.get("run", "")), {})
    before = steps[:steps.index(step)] if step in steps else steps
    if not any("make node_modules/.installed" in s.get("run", "") for s in before):
        problems.append("each shard must install node_modules (make node_modules/.installed) before grading: "
                        "the feedback pages' MathJax comes from there")
    run, env = step.get("run", ""), step.get("env", {})
    out = re.search(r"--out (\S+)", run)
    if '--shard "$SHARD/$SHARDS"' not in run or env.get("SHARD") != "${{ matrix.shard }}" \
            or env.get("SHARDS") != "${{ strategy.job-total }}":
        problems.append("the grade step must pass --shard \"$SHARD/$SHARDS\" with SHARD = matrix.shard and "
                        "SHARDS = strategy.job-total (N is the matrix's size)")
    upload = next((s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")), {})
    name = upload.get("with", {}).get("name", "")
    if "${{ matrix.shard }}" not in name:
        problems.append(f"each shard must upload an artifact of its own name (with matrix.shard), got {name!r}")
    if not out or upload.get("with", {}).get("path", "").rstrip("/") != out.group(1) or upload.get("if") != "always()":
        problems.append("each shard must upload its --out folder, also when grading failed (if: always())")
    if merge.get("needs") not in ("grade", ["grade"]):
        problems.append("the merge job must need the grade job")
    if "!cancelled()" not in str(merge.get("if", "")):
        problems.append("the merge job must run after failed shards too (if: !cancelled()), to say what is missing")
    msteps = merge.get("steps", [])
    download = next((s for s in msteps if s.get("uses", "").startswith("actions/download-artifact@")), {})
    pattern, folder = download.get("with", {}).get("pattern", ""), download.get("with", {}).get("path", "")
    prefix = name.split("${{")[0]
    if not (pattern == prefix + "*" and folder and not download.get("with", {}).get("merge-multiple")):
        problems.append(f"the merge job must download every shard artifact ({prefix}*) each into its own folder, "
                        f"got pattern {pattern!r} into {folder!r}")
    merge_run = " ".join(s.get("run", "") for s in msteps)
    if f".venv/bin/course merge {folder}/{prefix}* --out grades" not in merge_run:
        problems.append(f"the merge job must run `.venv/bin/course merge {folder}/{prefix}* --out grades`")
    final = [s for s in msteps if s.get("uses", "").startswith("actions/upload-artifact@")]
    if not (final and final[-1]["with"]["path"].rstrip("/") == "grades" and final[-1].get("if") == "always()"):
        problems.append("the merge job must upload grades/ (if: always())")
    return problems


def test_grade_workflow_grades_shards_in_a_matrix_and_merges_them():
    assert grade_workflow_problems(_load("grade.yml")) == []


def _grade_step(workflow: dict) -> dict:
    return next(s for s in workflow["jobs"]["grade"]["steps"] if "course grade submissions" in s.get("run", ""))


def _npm_step(workflow: dict) -> dict:
    return next(s for s in workflow["jobs"]["grade"]["steps"] if "node_modules" in s.get("run", ""))


def _broken(change) -> dict:
    workflow = _load("grade.yml")
    change(workflow)
    return workflow


@pytest.mark.parametrize("change, phrase", [
    (lambda w: w["jobs"]["merge"].pop("needs"), "must need the grade job"),
    (lambda w: w["jobs"]["grade"]["strategy"]["matrix"].update(shard=[1, 2, 4]), "matrix.shard must be 1..N"),
    (lambda w: w["jobs"]["grade"]["strategy"].pop("fail-fast"), "fail-fast must be false"),
    (lambda w: w["jobs"]["grade"]["steps"][-1]["with"].update(name="grades-shard"), "artifact of its own name"),
    (lambda w: w["jobs"]["merge"]["steps"][3]["with"].update({"merge-multiple": True}), "each into its own folder"),
    (lambda w: w["jobs"]["merge"].pop("if"), "after failed shards too"),
    (lambda w: _grade_step(w).update(run="true"), "--shard"),
    (lambda w: _npm_step(w).update(run="true"), "install node_modules"),
])
def test_the_grade_workflow_check_catches_a_broken_matrix(change, phrase):
    problems = grade_workflow_problems(_broken(change))
    assert any(phrase in p for p in problems), problems
