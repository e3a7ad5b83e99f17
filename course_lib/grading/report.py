"""The class report: which mistakes the class made, per check, and which parts it lost most.

    course report GRADES [--out GRADES/report.html] [--top N]

Read from a gradebook (``gradebook.json``), never from the notebooks. A check that fails
names the mistake it recognised in its hint (``CheckFailed``: what was expected, what came,
then ``Hint: ...`` aimed at the misconception, see chapters/grading_guide.md); the grader
files that message under the check (``<check>: <message>``). Here the messages are grouped:

- per assignment and check, each **named mistake** (the hint's first line; without a hint, the
  message's first line with its numbers replaced by ``#``, since inputs vary per run) with the
  number of students who made it and who they are;
- the cells that did not run (``error``, ``timeout``) and the other statuses, grouped the same way;
- the **parts most often lost**: per graded cell, how many students did not get its points.

Printed as a terminal table, and written as an HTML page in which every text is escaped
(student names and messages come from submissions).
"""

from __future__ import annotations

import html
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from course_lib.files import replace_atomically
from course_lib.grading.gradebook import CLASS_WIDE, NOT_GRADED, read_rows

#: statuses that are not mistakes in the learner's code (nothing to teach from them here)
_NOT_MISTAKES = ("passed", "missing")


@dataclass
class Mistake:
    assignment: str
    check: str  # the check's name, or the part's grade_id when no check is named
    name: str  # the hint (the mistake the check named), or the first line of the message
    students: set[str] = field(default_factory=set)


@dataclass
class Lost:
    assignment: str
    part: str
    max_points: float
    students: set[str] = field(default_factory=set)
    graded: set[str] = field(default_factory=set)


def _named(message: str) -> str:
    """The mistake a message names: its hint's first line, else its first line with numbers as '#'."""
    hint = re.search(r"(?:^|\n)Hint: (.+)", message)
    text = hint.group(1) if hint else message.strip().split("\n", 1)[0]
    text = re.sub(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", "#", text)
    return text.strip()[:240] or "(no message)"


def _split_by_check(message: str, checks: set[str]) -> list[tuple[str, str]]:
    """(check, its message) for each '<check>: ...' the grader joined with '; ' into one row's message."""
    pattern = "|".join(re.escape(c) for c in sorted(checks, key=len, reverse=True))
    if not pattern:
        return []
    starts = [m for m in re.finditer(rf"(?:^|; )({pattern}): ", message)]
    out = []
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(message)
        out.append((m.group(1), message[m.end():end]))
    return out


def analyse(rows: list[dict]) -> tuple[list[Mistake], list[Lost]]:
    """Mistakes (most students first) and parts lost (most students first) from gradebook rows."""
    try:
        from course_lib.checks import REGISTRY

        checks = set(REGISTRY)
    except Exception:  # noqa: BLE001 - the report still groups by part
        checks = set()
    mistakes: dict[tuple[str, str, str], Mistake] = {}
    lost: dict[tuple[str, str], Lost] = {}
    for r in rows:
        if r["student"] == CLASS_WIDE or not r["grade_id"] or r["message"].startswith(NOT_GRADED):
            continue  # not graded: nothing to learn about the class
        part = lost.setdefault((r["assignment"], r["grade_id"]), Lost(r["assignment"], r["grade_id"], r["max_points"]))
        part.graded.add(r["student"])
        if r["points"] < r["max_points"]:
            part.students.add(r["student"])
        if r["status"] in _NOT_MISTAKES:
            continue
        named = _split_by_check(r["message"], checks) if r["status"] == "failed" else []
        if not named:
            label = r["status"] if r["status"] != "failed" else "failed"
            named = [(r["grade_id"], f"{label}: {_named(r['message'])}" if r["status"] != "failed" else _named(r["message"]))]
        for check, text in named:
            key = (r["assignment"], check, _named(text) if r["status"] == "failed" else text)
            mistakes.setdefault(key, Mistake(*key)).students.add(r["student"])
    ordered = sorted(mistakes.values(), key=lambda m: (-len(m.students), m.assignment, m.check, m.name))
    parts = sorted((p for p in lost.values() if p.students), key=lambda p: (-len(p.students), p.assignment, p.part))
    return ordered, parts


def _names(students: set[str], limit: int = 6) -> str:
    shown = sorted(students)
    return ", ".join(shown[:limit]) + (f" +{len(shown) - limit}" if len(shown) > limit else "")


def terminal(rows: list[dict], top: int = 20) -> str:
    """The report as text: the named mistakes per check, then the parts most often lost."""
    mistakes, parts = analyse(rows)
    students = {r["student"] for r in rows if r["student"] != CLASS_WIDE and r["grade_id"]}
    out = [f"Class report: {len(students)} students"]
    out.append("")
    out.append("Mistakes, per check (students who made each):")
    if not mistakes:
        out.append("  (none: every graded part passed, or was missing)")
    width = max((len(f"{m.assignment.split('_')[0]} {m.check}") for m in mistakes[:top]), default=10)
    for m in mistakes[:top]:
        where = f"{m.assignment.split('_')[0]} {m.check}"
        out.append(f"  {len(m.students):>3}  {where:<{width}}  {m.name}")
        out.append(f"  {'':>3}  {'':<{width}}  ({_names(m.students)})")
    if len(mistakes) > top:
        out.append(f"  ... {len(mistakes) - top} more in the HTML report")
    out.append("")
    out.append("Parts most often lost (students without the part's points / students graded):")
    for p in parts[:top]:
        out.append(f"  {len(p.students):>3}/{len(p.graded):<3} {p.assignment} {p.part} ({p.max_points:g} points)")
    if not parts:
        out.append("  (none)")
    return "\n".join(out)


def html_page(rows: list[dict]) -> str:
    """The report as a standalone HTML page; every text from the gradebook is escaped."""
    mistakes, parts = analyse(rows)
    e = html.escape
    students = {r["student"] for r in rows if r["student"] != CLASS_WIDE and r["grade_id"]}
    body = [f"<h1>Class report</h1><p>{len(students)} students, {len({r['assignment'] for r in rows if r['grade_id']})} "
            "assignments. Mistakes are the ones the checks named (their hints); numbers are shown as # (inputs vary per run).</p>",
            "<h2>Mistakes, per check</h2>",
            "<table><thead><tr><th>students</th><th>assignment</th><th>check</th><th>mistake</th><th>who</th></tr></thead><tbody>"]
    for m in mistakes:
        body.append(f"<tr><td>{len(m.students)}</td><td>{e(m.assignment)}</td><td>{e(m.check)}</td><td>{e(m.name)}</td>"
                    f"<td>{e(', '.join(sorted(m.students)))}</td></tr>")
    body.append("</tbody></table><h2>Parts most often lost</h2>"
                "<table><thead><tr><th>lost by</th><th>of</th><th>assignment</th><th>part</th><th>points</th><th>who</th></tr></thead><tbody>")
    for p in parts:
        body.append(f"<tr><td>{len(p.students)}</td><td>{len(p.graded)}</td><td>{e(p.assignment)}</td><td>{e(p.part)}</td>"
                    f"<td>{p.max_points:g}</td><td>{e(', '.join(sorted(p.students)))}</td></tr>")
    body.append("</tbody></table>")
    style = ("body{font-family:system-ui,sans-serif;max-width:70rem;margin:1rem auto;padding:0 1rem}"
             "table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.3rem;text-align:left;"
             "vertical-align:top;overflow-wrap:anywhere}th{background:#f3f3f3}")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>Class report</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def write(grades: Path, out: Path | None = None) -> Path:
    """Write the HTML report (atomically; default GRADES/report.html) and return its path."""
    grades = Path(grades)
    out = Path(out) if out else grades / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    text = html_page(read_rows(grades))
    replace_atomically(out, lambda f: f.write(text))
    return out
