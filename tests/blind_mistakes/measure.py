"""Run every mistake of a blind set and write <set>_baseline.json.

    slot .venv/bin/python -m tests.blind_mistakes.measure set1 [--only ID_PREFIX]
    .venv/bin/python -m tests.blind_mistakes.measure set1 --table   # re-merge set1_naming.json, no runs

--only re-runs the mistakes whose id starts with ID_PREFIX and keeps the other results.

The JSON keeps a "naming" judgement per rejected mistake ("named" / "generic" / "wrong"), written by
hand into <set>_naming.json ({id: judgement}) and merged here; a re-run keeps those judgements.
"""

from __future__ import annotations

import collections
import importlib
import json
import pathlib
import subprocess
import sys
import time

from tests.blind_mistakes.harness import run_mistake

HERE = pathlib.Path(__file__).resolve().parent


def table(results: list[dict]) -> str:
    cols = ["total", "rejected", "accepted", "crashed", "named", "generic", "wrong"]
    per = collections.defaultdict(collections.Counter)
    for r in results:
        for key in (r["assignment"], "TOTAL"):
            c = per[key]
            c["total"] += 1
            c[r["outcome"]] += 1
            if r.get("naming"):
                c[r["naming"]] += 1
    lines = [f"{'assignment':<26}" + "".join(f"{c:>9}" for c in cols)]
    for key in sorted(k for k in per if k != "TOTAL") + ["TOTAL"]:
        lines.append(f"{key:<26}" + "".join(f"{per[key][c]:>9}" for c in cols))
    return "\n".join(lines)


def counts(results: list[dict]) -> dict:
    out = collections.defaultdict(collections.Counter)
    for r in results:
        for key in (r["assignment"], "TOTAL"):
            c = out[key]
            c["total"] += 1
            c[r["outcome"]] += 1
            if r.get("naming"):
                c[r["naming"]] += 1
    return {k: dict(v) for k, v in sorted(out.items())}


def main(argv: list[str]) -> None:
    name = argv[0]
    only = argv[argv.index("--only") + 1] if "--only" in argv else None
    mistakes = importlib.import_module(f"tests.blind_mistakes.{name}").MISTAKES
    out_path = HERE / f"{name}_baseline.json"
    naming_path = HERE / f"{name}_naming.json"
    naming = json.loads(naming_path.read_text()) if naming_path.exists() else {}
    previous = {}
    if out_path.exists():
        previous = {r["id"]: r for r in json.loads(out_path.read_text())["mistakes"]}
    if (
        "--table" in argv
    ):  # no runs: merge the naming judgements into the last results and print the table
        results = list(previous.values())
        mistakes = []
    else:
        results = []
    t0 = time.time()
    for n, m in enumerate(mistakes, 1):
        if only and not m["id"].startswith(only) and m["id"] in previous:
            results.append(previous[m["id"]])
            continue
        r = run_mistake(m)
        row = {k: m[k] for k in ("id", "assignment", "part", "category", "description")}
        row.update(outcome=r["outcome"], message=r["message"])
        results.append(row)
        print(
            f"[{n}/{len(mistakes)} {time.time() - t0:5.0f}s] {r['outcome']:<8} {m['id']}",
            flush=True,
        )
    for r in results:
        r.pop("naming", None)
        if r["outcome"] == "rejected" and r["id"] in naming:
            r["naming"] = naming[r["id"]]
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"],
        cwd=HERE,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    meta = {
        "set": name,
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "git_head": head,
        "note": "runs against the working tree at run time (uncommitted edits to course_lib/checks included)",
    }
    out_path.write_text(
        json.dumps(
            {**meta, "counts": counts(results), "mistakes": results},
            indent=1,
            ensure_ascii=False,
        )
        + "\n"
    )
    print(table(results))


if __name__ == "__main__":
    main(sys.argv[1:])
