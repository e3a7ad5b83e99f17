"""The gradebook for people and for LMSs: summary, terminal table, exports, shards and their merge.

    course grade SUBMISSIONS --out grades/ [--shard K/N]     (grader.py; writes what is below)
    course export --format canvas|moodle|csv [--grades grades/] [--roster roster.csv] [--out FILE]
    course merge SHARD_DIR ... --out DIR

Files in a grades folder, all derived from ``gradebook.json`` (the per-cell rows) and
regenerated, each atomically, whenever the gradebook is rewritten:

``gradebook.csv``     the same rows as gradebook.json
``summary.csv``       one row per student: points per assignment, ``total``, ``max_possible``
                      (the sum of the assignments' points: every graded cell's ``max_points``),
                      ``notes`` (assignments not graded, parts to review)
``exports.json``      the exports ``course export`` wrote into the folder, regenerated with it
``shard.json``        (``--shard`` runs only) which shard of which class and grader this is

Students are the folder names under submissions/. An LMS knows them by its own
identifiers: a roster CSV maps each folder name (column ``student``) to them (columns
below, per format). Without a roster the folder name is used as the LMS login.

Shards. ``--shard K/N`` grades the students whose name hashes (SHA-256 of the UTF-8 name,
first 8 bytes, modulo N) to K-1: a split that is the same on every machine and Python
(``hash()`` is salted per process). Every shard reads the whole submissions folder, so it
decides the assignments of the run (and the ``missing`` rows) exactly as a single run does.
``course merge`` checks that the shards are 1..N of the same N, made by the same grader
(fingerprint of course_lib and the sources) with the same limits, that no student is in two
shards and that every student is in the shard its name hashes to, then writes the gradebook,
summary and feedback tree a single run writes. Only ``graded_at`` (when a row was graded)
differs from a single run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from course_lib.files import replace_atomically

SUMMARY = "summary.csv"
SHARD_FILE = "shard.json"
EXPORTS_FILE = "exports.json"
FORMATS = ("canvas", "moodle", "csv")
STATUSES = ("passed", "failed", "error", "timeout", "tampered", "not_own_work", "missing", "unreadable")
FIELDS = ("student", "assignment", "notebook", "grade_id", "status", "points", "max_points", "message", "graded_at")
#: the columns a gradebook row has
ROW_FIELDS = FIELDS
#: roster columns: ``student`` (the folder name) is required; the others are optional
ROSTER_COLUMNS = ("student", "name", "canvas_id", "sis_user_id", "sis_login_id", "section", "email", "idnumber", "username")
#: starts the part of a row's message that flags something for the instructor without a penalty (a verbatim
#: copy of the course's solution, a library implementation of the exercise's concept); summary.csv's notes say so
REVIEW_MARK = "For review (not penalised): "
#: messages of rows the grader could not grade (grader.py writes them)
NOT_GRADED = ("grader failure", "unknown assignment")
TO_REVIEW = ("tampered", "not_own_work")
#: the ``student`` of a row about the whole class (an unknown assignment named on the command line):
#: the empty name, which no folder can have (any folder name, ``*`` included, is a student)
CLASS_WIDE = ""
#: a spreadsheet runs a cell that starts with one of these as a formula (OWASP, "CSV Injection")
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
#: what an LMS export says of a roster student without any submission
MISSING_NOTE = "missing: on the roster, no submission (0 points)"


def csv_cell(value) -> str:
    """A cell as written to every CSV here: text that a spreadsheet would run as a formula gets a leading ``'``.

    OWASP's CSV-injection guidance: prefix a cell starting with ``= + - @``, tab or carriage
    return with a single quote, so spreadsheets show it as text. Numbers are written by
    ``_num`` and are never negative; a student's folder name or a message can be anything.
    """
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def _writer(buf):
    """A csv writer whose every cell passes through csv_cell."""
    w = csv.writer(buf, lineterminator="\n")
    quoted = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)  # a lone CR is not quoted otherwise

    class Safe:
        @staticmethod
        def writerow(cells):
            cells = [csv_cell(c) for c in cells]
            (quoted if any("\r" in c for c in cells) else w).writerow(cells)

    return Safe


class GradebookError(ValueError):
    """Bad input to the gradebook tools: the message says what was expected and what came."""


# --------------------------------------------------------------------------- the rows


@dataclass
class Row:
    student: str
    assignment: str
    notebook: str
    grade_id: str
    status: str
    points: float
    max_points: float
    message: str = ""
    graded_at: str = ""
    #: True when the grader itself could not grade (not written; it sets the exit status)
    grader_failure: bool = field(default=False, repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("grader_failure")
        return d


def read_gradebook(out_dir: Path) -> list[dict]:
    path = out_dir / "gradebook.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    return data["rows"] if isinstance(data, dict) else data


def write_gradebook(out_dir: Path, rows: list[Row], regraded: set[tuple]) -> list[dict]:
    """Merge: rows of the (student, assignment) or (student, assignment, notebook) keys in ``regraded``
    are replaced by ``rows``; others are kept. Both files are replaced atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)

    def replaced(r: dict) -> bool:
        return (r["student"], r["assignment"]) in regraded or (r["student"], r["assignment"], r["notebook"]) in regraded

    kept = [r for r in read_gradebook(out_dir) if not replaced(r)]
    new = [r.to_dict() for r in rows]
    merged: dict[tuple, dict] = {}
    for r in kept + new:  # keyed: a later row for the same key replaces an earlier one
        merged[(r["student"], r["assignment"], r["notebook"], r["grade_id"])] = r
    ordered = sorted(merged.values(), key=lambda r: (r["student"], r["assignment"], r["notebook"]))

    def write_csv(f):
        writer = csv.writer(f)
        writer.writerow(FIELDS)
        for r in ordered:
            writer.writerow([csv_cell(r[k]) if isinstance(r[k], str) else r[k] for k in FIELDS])

    replace_atomically(out_dir / "gradebook.json",
                        lambda f: f.write(json.dumps({"fields": list(FIELDS), "rows": ordered}, indent=1, ensure_ascii=False)))
    replace_atomically(out_dir / "gradebook.csv", write_csv)
    refresh(out_dir, ordered)  # summary.csv and recorded exports, from the rows just written
    return ordered


# --------------------------------------------------------------------------- shards


def shard_of(student: str, n: int) -> int:
    """The shard (1..n) a student's folder name belongs to: SHA-256, stable across machines and runs."""
    digest = hashlib.sha256(student.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n + 1


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N) with 1 <= K <= N; GradebookError otherwise."""
    parts = str(text).split("/")
    try:
        k, n = (int(p) for p in parts)
    except ValueError:
        raise GradebookError(f"--shard expects K/N with whole numbers, e.g. 2/4 (shard 2 of 4); got {text!r}") from None
    if n < 1 or not 1 <= k <= n:
        raise GradebookError(f"--shard K/N needs N >= 1 and 1 <= K <= N; got {text!r}")
    return k, n


def _class_digest(students: list[str]) -> str:
    return hashlib.sha256("\0".join(sorted(students)).encode("utf-8")).hexdigest()


def write_manifest(out_dir: Path, shard: tuple[int, int], fingerprint: str, limits: dict, assignments,
                   everyone: list[str], seed: int | None = None) -> None:
    """shard.json: this shard, the grader, the limits, the seed of the checks' inputs, the assignments, its
    students and the whole class's digest."""
    k, n = shard
    data = {"shard": k, "of": n, "fingerprint": fingerprint, "limits": limits, "seed": seed, "assignments": sorted(assignments),
            "students": sorted(s for s in everyone if shard_of(s, n) == k),
            "class_size": len(everyone), "class_digest": _class_digest(everyone)}
    _write_text(Path(out_dir) / SHARD_FILE, json.dumps(data, indent=1, ensure_ascii=False))


def read_manifest(out_dir: Path) -> dict | None:
    """shard.json of ``out_dir`` (validated), or None when there is none."""
    return _manifest(Path(out_dir)) if (Path(out_dir) / SHARD_FILE).is_file() else None


# --------------------------------------------------------------------------- reading


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(path, lambda f: f.write(text))


def _json(path: Path, what: str):
    """The JSON document at ``path``; GradebookError saying it is not ``what`` when it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise GradebookError(f"{path} is not {what} ({type(err).__name__}: {err})") from None


def read_rows(grades: Path) -> list[dict]:
    """The rows of ``grades``/gradebook.json, validated; GradebookError naming what is wrong."""
    path = Path(grades) / "gradebook.json"
    if not path.is_file():
        raise GradebookError(f"expected a gradebook at {path} (written by `course grade --out {grades}`); there is none")
    data = _json(path, "a readable JSON gradebook")
    rows = data.get("rows") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise GradebookError(f"{path}: expected an object with a list 'rows' (or a list of rows); got {type(rows).__name__}")
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or set(ROW_FIELDS) - set(row):
            got = sorted(row) if isinstance(row, dict) else type(row).__name__
            raise GradebookError(f"{path}: row {i} should have the fields {', '.join(ROW_FIELDS)}; got {got}")
        if not all(isinstance(row[k], str) for k in ("student", "assignment", "notebook", "grade_id", "status", "message")) \
                or not all(isinstance(row[k], (int, float)) and not isinstance(row[k], bool) for k in ("points", "max_points")):
            raise GradebookError(f"{path}: row {i} has a field of the wrong type (names and status are text, points numbers): {row}")
    return rows


# --------------------------------------------------------------------------- the summary


def _not_graded(row: dict) -> bool:
    """A row of something the grader could not grade: no test cell (an odd file or folder, an unknown
    assignment, a broken source, a grader error) or a cell whose message says so. Row.grader_failure
    is not written to the gradebook; these are the rows it marks."""
    return not row["grade_id"] or row["message"].startswith(NOT_GRADED)


def summarize_rows(rows: list[dict]) -> tuple[list[str], dict[str, float], list[dict]]:
    """(assignments, max points per assignment, one dict per student) from gradebook rows.

    An assignment is one with graded cells in the gradebook; its maximum is the largest sum of
    ``max_points`` over a student's rows (every student's, unless the source was broken). A
    student's cell is empty when the gradebook has no row of theirs for that assignment.
    """
    assignments = sorted({r["assignment"] for r in rows if r["grade_id"]})
    per: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if r["student"] != CLASS_WIDE and r["assignment"] in assignments:
            per.setdefault((r["student"], r["assignment"]), []).append(r)
    maxima = {a: max((sum(r["max_points"] for r in rs) for (_, b), rs in per.items() if b == a), default=0.0)
              for a in assignments}
    students = sorted({s for s, _ in per})
    table = []
    for s in students:
        entry: dict = {"student": s, "not_graded": set()}
        total, possible, notes = 0.0, 0.0, []
        for a in assignments:
            rs = per.get((s, a))
            if rs is None:
                entry[a] = None
                continue
            got = sum(r["points"] for r in rs)
            entry[a] = got
            total += got
            possible += maxima[a]
            if any(_not_graded(r) for r in rs):
                entry["not_graded"].add(a)
                notes.append(f"{a}: NOT GRADED (grader failure: see the gradebook)")
            review = sorted({r["status"] for r in rs if r["status"] in TO_REVIEW})
            flagged = sorted({r["message"].split(REVIEW_MARK, 1)[1][:160] for r in rs if REVIEW_MARK in r["message"]})
            if review:
                notes.append(f"{a}: {', '.join(review)} to review")
            if flagged:
                notes.append(f"{a}: to review (not penalised): {flagged[0]}")
        entry.update(total=total, max_possible=possible, notes="; ".join(notes))
        table.append(entry)
    return assignments, maxima, table


def _num(x) -> str:
    return "" if x is None else f"{x:g}"


def summary_csv(rows: list[dict]) -> str:
    assignments, _, table = summarize_rows(rows)
    buf = io.StringIO(newline="")
    w = _writer(buf)
    w.writerow(["student", *assignments, "total", "max_possible", "notes"])
    for e in table:
        w.writerow([e["student"], *(_num(e[a]) for a in assignments), _num(e["total"]), _num(e["max_possible"]), e["notes"]])
    return buf.getvalue()


def _short(assignments: list[str]) -> dict[str, str]:
    """ch03_scaled_dot_product -> ch03 when those prefixes are unique (terminal columns stay narrow)."""
    heads = {a: a.split("_")[0] for a in assignments}
    return heads if len(set(heads.values())) == len(heads) else {a: a for a in assignments}


def terminal_table(rows: list[dict], limit: int | None = None) -> str:
    """The summary as an aligned text table: a row of maxima, then a row per student."""
    assignments, maxima, table = summarize_rows(rows)
    if not table:
        return "(no graded students in the gradebook)"
    short = _short(assignments)
    header = ["student", *(short[a] for a in assignments), "total", "notes"]
    body = [["(max)", *(_num(maxima[a]) for a in assignments), _num(sum(maxima.values())), ""]]
    shown = table if limit is None else table[:limit]
    for e in shown:
        body.append([e["student"], *(_num(e[a]) if e[a] is not None else "-" for a in assignments),
                     f"{e['total']:g}/{e['max_possible']:g}", e["notes"]])
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header) - 1)]

    def line(cells):
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(widths[i + 1]) for i, c in enumerate(cells[1:-1])]
        return "  ".join([first, *rest, cells[-1]]).rstrip()

    out = [line(header), *map(line, body)]
    if len(shown) < len(table):
        out.append(f"... {len(table) - len(shown)} more students: see summary.csv")
    legend = [f"{s} = {a}" for a, s in short.items() if s != a]
    if legend:
        out.append("columns: " + ", ".join(legend) + "; '-' = not graded in this gradebook")
    return "\n".join(out)


# --------------------------------------------------------------------------- rosters and exports


def _csv_with_header(path: Path, what: str) -> tuple[csv.DictReader, list[str]]:
    """A CSV file's rows (a DictReader) and its stripped header; unreadable: GradebookError naming ``what``."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise GradebookError(f"cannot read {what} {path}: {err}") from None
    reader = csv.DictReader(io.StringIO(text))
    return reader, [h.strip() for h in (reader.fieldnames or [])]


def read_roster(path: Path) -> dict[str, dict[str, str]]:
    """folder name -> {column: value} from a roster CSV whose header has ``student`` (see ROSTER_COLUMNS)."""
    path = Path(path)
    reader, header = _csv_with_header(path, "the roster")
    if "student" not in header:
        raise GradebookError(f"roster {path}: expected a header row with a 'student' column (the folder name under "
                             f"submissions/) and any of {', '.join(ROSTER_COLUMNS[1:])}; got {header or 'an empty file'}")
    unknown = [h for h in header if h not in ROSTER_COLUMNS]
    if unknown:
        raise GradebookError(f"roster {path}: unknown columns {unknown}; expected 'student' and any of {', '.join(ROSTER_COLUMNS[1:])}")
    roster: dict[str, dict[str, str]] = {}
    for n, raw in enumerate(reader, start=2):
        entry = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        name = entry.get("student", "")
        if not name:
            raise GradebookError(f"roster {path}, line {n}: the 'student' column is empty")
        if name in roster:
            raise GradebookError(f"roster {path}, line {n}: student {name!r} is listed twice")
        roster[name] = entry
    return roster


def _roster_for(students: list[str], roster: dict | None, roster_path) -> dict[str, dict[str, str]]:
    """LMS ids of the graded students, then of the roster's students without a submission (in roster order)."""
    if roster is None:
        return {s: {"student": s} for s in students}
    missing = [s for s in students if s not in roster]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise GradebookError(f"roster {roster_path} has no line for {len(missing)} graded student(s): {shown}; "
                             "add them (column 'student' = their folder name under submissions/)")
    return {s: roster[s] for s in [*students, *(s for s in roster if s not in set(students))]}


def read_columns(path: Path) -> dict[str, str]:
    """assignment folder -> Canvas column title, from a CSV with the header ``assignment,column``.

    Canvas matches an imported column to an existing assignment by the title it exports,
    "Name (ID)" (e.g. ``Homework 3 (12345)``, from Canvas's own Gradebook export), or by the exact
    name; any other title creates a new assignment. Assignments not listed keep their folder name.
    """
    path = Path(path)
    reader, header = _csv_with_header(path, "the columns file")
    if header != ["assignment", "column"]:
        raise GradebookError(f"columns file {path}: expected a header row 'assignment,column' (an assignment folder, "
                             f"then its Canvas column title, e.g. 'Homework 3 (12345)'); got {header or 'an empty file'}")
    columns: dict[str, str] = {}
    for n, raw in enumerate(reader, start=2):
        a, title = (raw.get("assignment") or "").strip(), (raw.get("column") or "").strip()
        if not a or not title:
            raise GradebookError(f"columns file {path}, line {n}: an empty assignment or column title")
        if a in columns:
            raise GradebookError(f"columns file {path}, line {n}: assignment {a!r} is listed twice")
        if title in columns.values():
            raise GradebookError(f"columns file {path}, line {n}: the column {title!r} is given twice")
        columns[a] = title
    return columns


def _first_complete(ids: dict[str, dict[str, str]], columns: tuple[str, ...], fmt: str, roster_path) -> str:
    """The first of ``columns`` that every student has; GradebookError naming who lacks what."""
    for c in columns:
        if all(e.get(c) for e in ids.values()):
            return c
    lacking = sorted(s for s, e in ids.items() if not any(e.get(c) for c in columns))
    raise GradebookError(f"{fmt} export: roster {roster_path} must give every student one of the columns {', '.join(columns)} "
                         f"(one column filled for all); "
                         + (f"students without any: {', '.join(lacking[:10])}" if lacking else "no single column is filled for all"))


def ungraded(rows: list[dict]) -> list[str]:
    """'student: assignment' for every assignment of a student with a part the grader could not grade."""
    _, _, table = summarize_rows(rows)
    return [f"{e['student']}: {a}" for e in table for a in sorted(e["not_graded"])]


def export_text(rows: list[dict], fmt: str, roster: dict | None = None, roster_path=None,
                columns: dict[str, str] | None = None) -> str:
    """The gradebook in an LMS's import format (points per assignment).

    canvas: Canvas's Gradebook CSV, as Canvas exports it and imports it back
      (https://community.canvaslms.com/t5/Instructor-Guide/How-do-I-import-grades-in-the-Gradebook/ta-p/807;
      the required columns are also listed at
      https://teaching.resources.osu.edu/toolsets/carmencanvas/guides/calculating-final-grades/import-csv-file-carmen-grades):
      ``Student, ID, SIS User ID, SIS Login ID, Section``, then one column per assignment, and a
      second row ``Points Possible`` with each assignment's maximum. Canvas finds the student by
      ID, else SIS User ID, else SIS Login ID (one of them is enough). Roster columns
      ``name, canvas_id, sis_user_id, sis_login_id, section`` fill them; without a roster the
      folder name is the SIS Login ID (and the Student). A column whose title is not an
      existing assignment's ("Name (ID)" as Canvas exports it, or the exact name) creates that
      assignment on import: ``columns`` (``read_columns``) maps folder names to such titles.
    moodle: Moodle's "Import grades from CSV" (https://docs.moodle.org/311/en/Grade_import): a
      header row, one identifier column and one column per grade item. At import, "Map from"
      is set to the identifier column and "Map to" to the matching user field (email address,
      ID number or username), and each assignment column is mapped to a grade item. The
      identifier is the roster's ``email``, else ``idnumber``, else ``username`` (the first one
      every student has); without a roster, ``username`` is the folder name. No total column:
      Moodle computes its course total itself.
    csv: summary.csv with the roster's columns (if any) after ``student``.

    A student's cell is empty when the gradebook has no rows of theirs for that assignment and,
    in the LMS formats, when a part of it was not graded (a grader failure: an LMS would read 0
    as a grade). A roster student without any submission gets 0 for every assignment, and the
    note ``MISSING_NOTE`` in the csv format. Every cell goes through ``csv_cell``.
    """
    if fmt not in FORMATS:
        raise GradebookError(f"unknown export format {fmt!r}: expected one of {', '.join(FORMATS)}")
    assignments, maxima, table = summarize_rows(rows)
    ids = _roster_for([e["student"] for e in table], roster, roster_path)
    absent = [s for s in ids if s not in {e["student"] for e in table}]
    table = table + [{"student": s, **{a: 0.0 for a in assignments}, "not_graded": set(), "total": 0.0,
                      "max_possible": sum(maxima.values()), "notes": MISSING_NOTE} for s in absent]
    columns = columns or {}
    unknown = sorted(set(columns) - set(assignments))
    if unknown:
        raise GradebookError(f"--columns names {', '.join(unknown)}: not an assignment of this gradebook "
                             f"({', '.join(assignments) or 'none'})")

    def lms(e, a):  # not graded: blank, never 0
        return "" if a in e["not_graded"] else _num(e[a])

    buf = io.StringIO(newline="")
    w = _writer(buf)
    if fmt == "canvas":
        if roster is not None:
            _first_complete(ids, ("canvas_id", "sis_user_id", "sis_login_id"), "canvas", roster_path)
        w.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", *(columns.get(a, a) for a in assignments)])
        w.writerow(["Points Possible", "", "", "", "", *(_num(maxima[a]) for a in assignments)])
        for e in table:
            r = ids[e["student"]]
            login = r.get("sis_login_id", "") if roster is not None else e["student"]
            w.writerow([r.get("name") or e["student"], r.get("canvas_id", ""), r.get("sis_user_id", ""), login,
                        r.get("section", ""), *(lms(e, a) for a in assignments)])
    elif fmt == "moodle":
        column = _first_complete(ids, ("email", "idnumber", "username"), "moodle", roster_path) if roster is not None else "username"
        w.writerow([column, *assignments])
        for e in table:
            key = ids[e["student"]].get(column) if roster is not None else e["student"]
            w.writerow([key, *(lms(e, a) for a in assignments)])
    else:
        extra = [c for c in ROSTER_COLUMNS[1:] if roster is not None and any(ids[s].get(c) for s in ids)]
        w.writerow(["student", *extra, *assignments, "total", "max_possible", "notes"])
        for e in table:
            w.writerow([e["student"], *(ids[e["student"]].get(c, "") for c in extra), *(_num(e[a]) for a in assignments),
                        _num(e["total"]), _num(e["max_possible"]), e["notes"]])
    return buf.getvalue()


def export(grades: Path, fmt: str, out: Path | None = None, roster_path: Path | None = None,
           columns_path: Path | None = None, allow_ungraded: bool = False) -> Path:
    """Write the export (atomically) and record it in ``grades``/exports.json, so re-grading regenerates it.

    Refused (GradebookError naming them) when something in the gradebook was not graded, unless
    ``allow_ungraded``: those cells are then blank in the LMS formats.
    """
    grades = Path(grades)
    if fmt not in FORMATS:
        raise GradebookError(f"unknown export format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if columns_path and fmt != "canvas":
        raise GradebookError(f"--columns maps Canvas column titles; it does not apply to the {fmt} format")
    rows = read_rows(grades)
    lost = ungraded(rows)
    if lost and not allow_ungraded:
        raise GradebookError(f"{len(lost)} assignment(s) of the gradebook were not graded (grader failures), e.g. "
                             f"{'; '.join(lost[:5])}: regrade them (`course grade --student NAME`), or pass "
                             "--allow-ungraded to export them as blank cells (never 0)")
    roster = read_roster(roster_path) if roster_path else None
    columns = read_columns(columns_path) if columns_path else None
    text = export_text(rows, fmt, roster, roster_path, columns)
    out = Path(out) if out else grades / f"export-{fmt}.csv"
    _write_text(out, text)
    recorded = [e for e in _recorded_exports(grades) if Path(e["out"]).resolve() != out.resolve()]
    recorded.append({"format": fmt, "out": str(out.resolve()), "roster": str(Path(roster_path).resolve()) if roster_path else None,
                     "columns": str(Path(columns_path).resolve()) if columns_path else None})
    _write_text(grades / EXPORTS_FILE, json.dumps(recorded, indent=1))
    return out


def _recorded_exports(grades: Path) -> list[dict]:
    try:
        data = json.loads((grades / EXPORTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [e for e in data if isinstance(e, dict) and e.get("format") in FORMATS and isinstance(e.get("out"), str)] \
        if isinstance(data, list) else []


def refresh(grades: Path, rows: list[dict]) -> None:
    """Regenerate summary.csv and every recorded export from ``rows`` (the gradebook just written), atomically.

    An export that can no longer be made (a new student missing from the roster) is removed,
    not left stale, and the reason is printed: run ``course export`` again after fixing it.
    Cells not graded stay blank in the regenerated LMS files.
    """
    grades = Path(grades)
    _write_text(grades / SUMMARY, summary_csv(rows))
    for e in _recorded_exports(grades):
        out = Path(e["out"])
        try:
            roster = read_roster(Path(e["roster"])) if e.get("roster") else None
            columns = read_columns(Path(e["columns"])) if e.get("columns") else None
            _write_text(out, export_text(rows, e["format"], roster, e.get("roster"), columns))
        except GradebookError as err:
            if out.is_file():
                out.unlink()
            print(f"course: the {e['format']} export {out} was removed, not regenerated: {err}", file=sys.stderr)


# --------------------------------------------------------------------------- merging shards


def _manifest(d: Path) -> dict:
    path = d / SHARD_FILE
    if not path.is_file():
        raise GradebookError(f"{d} is not a shard: expected {SHARD_FILE} (written by `course grade --shard K/N --out {d}`)")
    m = _json(path, "readable JSON")
    want = {"shard": int, "of": int, "fingerprint": str, "limits": dict, "assignments": list, "students": list,
            "class_size": int, "class_digest": str}
    if not isinstance(m, dict) or any(not isinstance(m.get(k), t) or isinstance(m.get(k), bool) for k, t in want.items()):
        raise GradebookError(f"{path}: expected the fields {', '.join(f'{k} ({t.__name__})' for k, t in want.items())}; got {m!r:.300}")
    if not 1 <= m["shard"] <= m["of"]:
        raise GradebookError(f"{path}: shard {m['shard']} of {m['of']} is not a shard (1 <= K <= N)")
    return m


def merge(shard_dirs: list[Path], out_dir: Path) -> list[dict]:
    """Combine shard folders into ``out_dir``: the gradebook, summary and feedback of a single run."""
    if not shard_dirs:
        raise GradebookError("course merge: expected at least one shard folder")
    dirs = [Path(d) for d in shard_dirs]
    for d in dirs:
        if not d.is_dir():
            raise GradebookError(f"{d}: expected a shard folder (from `course grade --shard K/N`); it is not a folder")
    manifests = [_manifest(d) for d in dirs]
    first, d0 = manifests[0], dirs[0]
    for m, d in zip(manifests, dirs):
        for key, what in (("of", "the number of shards differs"),
                          ("fingerprint", "the grader differs (course_lib or solutions/ changed between them)"),
                          ("limits", "the limits differ"), ("seed", "the seeds of the checks' inputs differ"),
                          ("assignments", "the assignments differ"),
                          ("class_digest", "the submissions differ (they saw different student folders)")):
            if m.get(key) != first.get(key):
                raise GradebookError(f"{d} and {d0} are shards of different runs: {what} "
                                     f"({key}: {m[key]!r:.80} vs {first[key]!r:.80}); grade every shard of one class with one commit")
    n = first["of"]
    seen: dict[int, Path] = {}
    for m, d in zip(manifests, dirs):
        if m["shard"] in seen:
            raise GradebookError(f"shard {m['shard']}/{n} given twice: {seen[m['shard']]} and {d}")
        seen[m["shard"]] = d
    absent = [k for k in range(1, n + 1) if k not in seen]
    if absent:
        raise GradebookError(f"missing shard(s) {', '.join(f'{k}/{n}' for k in absent)}: got {len(seen)} of {n} "
                             f"({', '.join(f'{k}/{n}' for k in sorted(seen))})")
    owner: dict[str, Path] = {}
    rows: dict[tuple, dict] = {}
    for m, d in zip(manifests, dirs):
        shard_rows = read_rows(d)
        students = {r["student"] for r in shard_rows if r["student"] != CLASS_WIDE} | set(m["students"])
        for s in sorted(students):
            if s in owner:
                raise GradebookError(f"student {s!r} is in two shards, {owner[s]} and {d}: a student is graded in one shard only")
            if shard_of(s, n) != m["shard"]:
                raise GradebookError(f"{d} (shard {m['shard']}/{n}) holds student {s!r}, whose name belongs to shard "
                                     f"{shard_of(s, n)}/{n}: the shard folder is malformed or mislabelled")
            owner[s] = d
        for r in shard_rows:
            key = (r["student"], r["assignment"], r["notebook"], r["grade_id"])
            if key in rows and r["student"] != CLASS_WIDE:
                raise GradebookError(f"{d}: row {key} appears twice")
            rows.setdefault(key, r)  # class-wide rows (an unknown assignment named) are in every shard: kept once
        feedback = d / "feedback"
        if feedback.is_dir():
            for child in sorted(feedback.iterdir()):
                if child.is_symlink() or not (child.name in students and child.is_dir() or child.name.startswith("_")):
                    # (a name starting with '_' is never a student's: shared assets of the pages)
                    raise GradebookError(f"{child}: expected a feedback folder of one of the shard's students; "
                                         "the shard folder is malformed")
    listed = [s for m in manifests for s in m["students"]]
    if len(listed) != first["class_size"] or _class_digest(listed) != first["class_digest"]:
        raise GradebookError(f"the shards list {len(listed)} students between them but the class they were cut from has "
                             f"{first['class_size']}: a shard.json was edited or comes from another run")
    # every listed student has a row per test cell of every notebook of the run (or one grader-failure
    # row for the notebook): a shard killed midway, or a gradebook that lost a row, has not
    cells: dict[tuple[str, str], set[str]] = {}
    for r in rows.values():
        if r["notebook"] and r["student"] != CLASS_WIDE:
            cells.setdefault((r["assignment"], r["notebook"]), set()).add(r["grade_id"])
    expected = {k: ids - {""} for k, ids in cells.items()}
    have: dict[tuple[str, str, str], set[str]] = {}
    for r in rows.values():
        have.setdefault((r["student"], r["assignment"], r["notebook"]), set()).add(r["grade_id"])
    for m, d in zip(manifests, dirs):
        lost = [f"{s}/{a}/{nb}" + (f" ({', '.join(sorted(want - have.get((s, a, nb), set())))})" if (s, a, nb) in have else "")
                for s in m["students"] for (a, nb), want in sorted(expected.items())
                if have.get((s, a, nb)) not in (want, {""})]
        if lost:
            raise GradebookError(f"{d} (shard {m['shard']}/{n}): the gradebook lacks rows for {len(lost)} notebook(s) of its "
                                 f"students, e.g. {'; '.join(lost[:5])}: the shard's run did not finish or its gradebook "
                                 "was cut; grade that shard again")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise GradebookError(f"course merge: the output folder {out_dir} is not empty; give a new or empty folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    for d in dirs:
        if (d / "feedback").is_dir():
            shutil.copytree(d / "feedback", out_dir / "feedback", dirs_exist_ok=True, symlinks=True)
    merged = [Row(**{k: r[k] for k in ROW_FIELDS}) for r in rows.values()]
    if isinstance(first.get("seed"), int):  # run.json, as a single run writes it
        _write_text(out_dir / "run.json", json.dumps({"seed": first["seed"], "history": [
            {"seed": first["seed"], "graded": f"merge of {n} shards"}]}, indent=1))
    return write_gradebook(out_dir, merged, set())


def not_graded(rows: list[dict]) -> bool:
    return any(_not_graded(r) for r in rows)


__all__ = ["CLASS_WIDE", "FORMATS", "GradebookError", "csv_cell", "export", "export_text", "merge", "parse_shard",
           "read_columns", "read_roster", "read_rows", "ungraded",
           "refresh", "shard_of", "summarize_rows", "summary_csv", "terminal_table", "write_manifest"]
