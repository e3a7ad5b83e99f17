"""Out of distribution: which inputs the chapter 1 date model was trained on, and what it does with the rest.

A trained model answers every input, even one unlike anything it saw in training, and it
answers just as confidently. Chapter 1's translator was trained on dates written in the 17
``FORMATS`` of ``course_lib.data.dates``, years 1900-2099 (1950-2049 for two-digit years), with
the real weekday, in the characters of ``SOURCE_CHARS``. This module says whether a typed text
is such an input (``date_input_reasons``: the reasons it is not), whether an output is a real
calendar date (``date_output_problem``), and measures the model on families of inputs it never
saw (``ood_families``, ``ood_table``).

The page's demo (``course_lib/book/web/demos.js``) applies the same rules line by line, from
``DATE_TEMPLATES`` and the names exported into the demo's meta.json (``date_rules``);
tests/test_demo_ood.py checks that the templates write exactly what ``format_date`` writes, and
that the page's JavaScript and this module give the same reasons on thousands of strings.

Shapes: the measuring functions decode N strings at once, src (N, S) -> tokens (N, T).
"""

from __future__ import annotations

import calendar
import datetime as dt
import random
import re
from dataclasses import dataclass

from course_lib.data.dates import (
    FIRST_DAY,
    FIRST_DAY_YY,
    FORMATS,
    LAST_DAY,
    LAST_DAY_YY,
    MONTHS,
    SOURCE_CHARS,
    WEEKDAYS,
    format_date,
)

__all__ = [
    "DATE_TEMPLATES",
    "NOT_TRAINED",
    "date_input_reasons",
    "date_output_problem",
    "date_rules",
    "days_in_month",
    "ood_families",
    "ood_table",
    "render_template",
]

#: What the reader is told first when an input is unlike the training data (the page says it too).
NOT_TRAINED = "the model was never trained on inputs like this; it still answers, and here is why you should not trust it:"

#: Each format of ``FORMATS`` as a template: the fields in braces, the rest written as is.
#: tests/test_demo_ood.py checks that each writes what FORMATS' function writes, for every format.
DATE_TEMPLATES: dict[str, str] = {
    "month d, yyyy": "{month} {d}, {yyyy}",
    "Month d yyyy": "{Month} {d} {yyyy}",
    "WEEKDAY, MONTH d, yyyy": "{WEEKDAY}, {MONTH} {d}, {yyyy}",
    "weekday, month d, yyyy": "{weekday}, {month} {d}, {yyyy}",
    "m/d/yy": "{m}/{d}/{yy}",
    "mm/dd/yyyy": "{mm}/{dd}/{yyyy}",
    "d mon yyyy": "{d} {mon} {yyyy}",
    "dd.mm.yyyy": "{dd}.{mm}.{yyyy}",
    "d.m.yy": "{d}.{m}.{yy}",
    "Mon d yyyy": "{Mon} {d} {yyyy}",
    "mon. d, yyyy": "{mon}. {d}, {yyyy}",
    "yyyy mm dd": "{yyyy} {mm} {dd}",
    "yyyy/mm/dd": "{yyyy}/{mm}/{dd}",
    "d Month yyyy": "{d} {Month} {yyyy}",
    "Wkd, d Mon yyyy": "{Wkd}, {d} {Mon} {yyyy}",
    "the dth of month yyyy": "the {dth} of {month} {yyyy}",
    "dd-MON-yy": "{dd}-{MON}-{yy}",
}
if list(DATE_TEMPLATES) != list(FORMATS):
    raise RuntimeError(f"DATE_TEMPLATES must list FORMATS' names in order: {list(FORMATS)}")

_FIELD = re.compile(r"\{(\w+)\}")
_NUMBER = {"d": "[0-9]{1,2}", "dd": "[0-9]{2}", "m": "[0-9]{1,2}", "mm": "[0-9]{2}", "yyyy": "[0-9]{4}", "yy": "[0-9]{2}",
           "dth": "[0-9]{1,2}(?:st|nd|rd|th)"}  # fmt: skip
_NAMES = {"month": MONTHS, "mon": [m[:3] for m in MONTHS], "weekday": WEEKDAYS, "wkd": [w[:3] for w in WEEKDAYS]}
_CASES = {"lower": str.lower, "title": str.title, "upper": str.upper}


def _name_field(field: str) -> tuple[list[str], str] | None:
    """``Month`` -> (MONTHS, "title"), ``MON`` -> (3-letter months, "upper"), ...; None for a number field."""
    key = field.lower()
    if key not in _NAMES:
        return None
    case = "upper" if field.isupper() else "title" if field[0].isupper() else "lower"
    return _NAMES[key], case


def _pattern(template: str) -> re.Pattern:
    """The template as a regular expression with one group per field (names in any case the field allows)."""
    parts, at = [], 0
    for match in _FIELD.finditer(template):
        parts.append(re.escape(template[at : match.start()]))
        field = match.group(1)
        named = _name_field(field)
        alternatives = [_CASES[named[1]](n) for n in named[0]] if named else None
        parts.append("(" + ("|".join(alternatives) if alternatives else _NUMBER[field]) + ")")
        at = match.end()
    parts.append(re.escape(template[at:]))
    return re.compile("".join(parts))


_PATTERNS = {name: _pattern(t) for name, t in DATE_TEMPLATES.items()}


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 11 <= n % 100 <= 13 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def render_template(template: str, year: int, month: int, day: int, weekday: int | None = None) -> str:
    """Write a day in a template; ``weekday`` (0 = Monday) is needed only by templates that name it.

    Unlike ``format_date`` it also writes days that do not exist (31 February), for ood_families.
    """
    values = {"d": str(day), "dd": f"{day:02d}", "m": str(month), "mm": f"{month:02d}", "yyyy": f"{year:04d}",
              "yy": f"{year % 100:02d}", "dth": _ordinal(day)}  # fmt: skip

    def field(match: re.Match) -> str:
        name = match.group(1)
        named = _name_field(name)
        if not named:
            return values[name]
        index = weekday if name.lower() in ("weekday", "wkd") else month - 1
        return _CASES[named[1]](named[0][index])

    return _FIELD.sub(field, template)


def days_in_month(year: int, month: int) -> int:
    """Days in a month of the proleptic Gregorian calendar (any year, 0 included: the page computes the same)."""
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]


def _two_digit_year(yy: int) -> int:
    """The century the task gives a two-digit year: 50-99 -> 19xx, 00-49 -> 20xx."""
    return (FIRST_DAY_YY.year // 100) * 100 + yy if yy >= FIRST_DAY_YY.year % 100 else (LAST_DAY_YY.year // 100) * 100 + yy


def date_input_reasons(text: str) -> list[str]:
    """Why ``text`` is unlike every source the model was trained on (empty: it is one of them).

    Read with the task's own generator: a text is in the distribution when it matches one of
    ``DATE_TEMPLATES`` and ``format_date`` writes exactly that text for the date it names.
    """
    reasons: list[str] = []  # characters outside SOURCE_CHARS match no template: prepare_date_input names them
    for name, template in DATE_TEMPLATES.items():
        match = _PATTERNS[name].fullmatch(text)
        if not match:
            continue
        fields = dict(zip(_FIELD.findall(template), match.groups()))
        year, month, day, typed_weekday = _fields(fields)
        two_digit = FORMATS[name][1]
        if not 1 <= month <= 12:
            return reasons + [f"there is no month {month}: it is not a real date"]
        days = days_in_month(year, month)
        if not 1 <= day <= days:
            return reasons + [f"{MONTHS[month - 1].title()} {year} has {days} days, not {day}: it is not a real date"]
        if not two_digit and not FIRST_DAY.year <= year <= LAST_DAY.year:
            return reasons + [f"the year {year} is outside the years it was trained on ({FIRST_DAY.year}-{LAST_DAY.year})"]
        date = dt.date(year, month, day)
        written = format_date(date, name)
        if written == text:
            return reasons
        if typed_weekday is not None and typed_weekday != date.weekday():
            return reasons + [(f"{date.isoformat()} was a {WEEKDAYS[date.weekday()].title()}, not a "
                              f"{WEEKDAYS[typed_weekday].title()}: in training the weekday always matched the date")]  # fmt: skip
        return reasons + [f"it looks like the format \u201c{name}\u201d but is written differently: the model saw {written!r}"]
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        return reasons + ["it is already written in the ISO format the model writes (YYYY-MM-DD), which it never read as input"]
    return reasons + [(f"it is not written in any of the {len(FORMATS)} formats the model was trained on "
                      "(such as september 27, 1994 or 27.09.1994 or 9/27/94)")]  # fmt: skip


def _fields(fields: dict[str, str]) -> tuple[int, int, int, int | None]:
    """(year, month, day, weekday or None) from a template's matched fields."""
    year = month = day = 0
    weekday = None
    for name, value in fields.items():
        key = name.lower()
        if key in ("yyyy",):
            year = int(value)
        elif key == "yy":
            year = _two_digit_year(int(value))
        elif key in ("m", "mm"):
            month = int(value)
        elif key in ("d", "dd"):
            day = int(value)
        elif key == "dth":
            day = int(value[:-2])
        elif key in ("month", "mon"):
            month = _NAMES[key].index(value.lower()) + 1
        else:  # weekday, wkd
            weekday = _NAMES[key].index(value.lower())
    return year, month, day, weekday


def date_output_problem(answer: str) -> str | None:
    """None when ``answer`` is a real calendar date written YYYY-MM-DD (proleptic Gregorian, year >= 1), else why not."""
    match = re.fullmatch(r"([0-9]{4})-([0-9]{2})-([0-9]{2})", answer)
    if not match:
        return f"the model's answer {answer!r} is not a date written YYYY-MM-DD: do not trust it"
    year, month, day = (int(g) for g in match.groups())
    if year < 1 or not 1 <= month <= 12 or not 1 <= day <= days_in_month(year, month):
        return f"the model's answer {answer} is not a real calendar date: do not trust it"
    return None


def date_rules() -> dict:
    """What the page needs to apply the same rules (exported into the demo's meta.json)."""
    return {
        "templates": [[name, t] for name, t in DATE_TEMPLATES.items()],
        "two_digit": [name for name, (_, yy) in FORMATS.items() if yy],
        "months": MONTHS,
        "weekdays": WEEKDAYS,
        "years": [FIRST_DAY.year, LAST_DAY.year],
        "years_yy": [FIRST_DAY_YY.year, LAST_DAY_YY.year],
        "known": SOURCE_CHARS,
        "not_trained": NOT_TRAINED,
    }


# --------------------------------------------------------------------------- measuring


FRENCH = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"]
GERMAN = ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November", "Dezember"]
_NO_WEEKDAY = [n for n, t in DATE_TEMPLATES.items() if "eekday" not in t.lower() and "wkd" not in t.lower()]


@dataclass(frozen=True)
class Family:
    """A family of inputs: the texts and, where one exists, the right ISO answer (None: no right answer)."""

    key: str  # a short name: in, invalid, iso, years, french, german
    name: str
    texts: list[str]
    targets: list[str | None]


def _random_day(rng: random.Random, first: dt.date, last: dt.date) -> dt.date:
    return first + dt.timedelta(days=rng.randrange((last - first).days + 1))


def ood_families(test_pairs: list[tuple[str, str]], n: int = 300, seed: int = 0) -> list[Family]:
    """The held-out test dates, then four families of inputs the model never saw, ``n`` of each.

    * invalid dates: 30-31 February, 29 February of a non-leap year, 31 April/June/September/
      November, in the formats without a weekday (no right answer);
    * the ISO format itself, ``1994-09-27`` (the answer is the input);
    * years outside 1900-2099 (1700-1899 and 2100-2299) in the four-digit-year formats;
    * other languages: French (``27 septembre 1994``) and German (``27. September 1994``) month names.
    """
    rng = random.Random(seed)
    held_out = rng.sample(list(test_pairs), min(n, len(test_pairs)))
    families = [Family("in", "in distribution (held-out test dates)", [s for s, _ in held_out], [t for _, t in held_out])]

    invalid = []
    while len(invalid) < n:
        year = rng.randrange(FIRST_DAY_YY.year, LAST_DAY_YY.year + 1)
        month = rng.choice([2, 4, 6, 9, 11])
        day = rng.choice([30, 31]) if month == 2 else 31
        if month == 2 and not calendar.isleap(year) and rng.random() < 0.3:
            day = 29
        invalid.append(render_template(DATE_TEMPLATES[rng.choice(_NO_WEEKDAY)], year, month, day))
    families.append(Family("invalid", "invalid dates (31 April, 30 February...)", invalid, [None] * n))

    iso = [_random_day(rng, FIRST_DAY, LAST_DAY).isoformat() for _ in range(n)]
    families.append(Family("iso", "the ISO format itself (1994-09-27)", iso, list(iso)))

    four_digit = [name for name, (_, yy) in FORMATS.items() if not yy]
    texts, targets = [], []
    for _ in range(n):
        early = rng.random() < 0.5
        date = _random_day(rng, dt.date(1700, 1, 1), dt.date(1899, 12, 31)) if early else \
            _random_day(rng, dt.date(2100, 1, 1), dt.date(2299, 12, 31))  # fmt: skip
        texts.append(FORMATS[rng.choice(four_digit)][0](date))  # the generator's own writing, outside its years
        targets.append(date.isoformat())
    families.append(Family("years", "years outside 1900-2099", texts, targets))

    for key, name, write in (
        ("french", "French month names (27 septembre 1994)", lambda d: f"{d.day} {FRENCH[d.month - 1]} {d.year}"),
        ("german", "German month names (27. September 1994)", lambda d: f"{d.day}. {GERMAN[d.month - 1]} {d.year}"),
    ):
        dates = [_random_day(rng, FIRST_DAY, LAST_DAY) for _ in range(n)]
        families.append(Family(key, name, [write(d) for d in dates], [d.isoformat() for d in dates]))
    return families


def ood_table(model, task, n: int = 300, seed: int = 0, batch: int = 500) -> list[dict]:
    """One row per family: how often the model is right, writes a real date, and is flagged by the demo's check.

    ``model`` is chapter 1's trained Seq2Seq (its ``greedy_decode``), ``task`` the DateTask.
    """
    import torch

    rows = []
    was_training = model.training
    model.eval()
    try:
        for family in ood_families(task.test_pairs, n, seed):
            answers = []
            for i in range(0, len(family.texts), batch):
                src = task.src_vocab.encode_batch(family.texts[i : i + batch])  # (N, S)
                with torch.no_grad():
                    tokens = model.greedy_decode(src, max_len=task.max_tgt_len).tokens  # (N, T)
                answers += task.tgt_vocab.decode_batch(tokens)
            scored = [(a, t) for a, t in zip(answers, family.targets) if t is not None]
            rows.append({
                "key": family.key,
                "inputs": family.name,
                "n": len(family.texts),
                "exact match": sum(a == t for a, t in scored) / len(scored) if scored else None,
                "year and day right": sum(a[:4] == t[:4] and a[8:] == t[8:] for a, t in scored) / len(scored) if scored else None,
                "answer is a real date": sum(date_output_problem(a) is None for a in answers) / len(answers),
                "flagged by the demo": sum(bool(date_input_reasons(t)) for t in family.texts) / len(family.texts),
                "example": f"{family.texts[0]} -> {answers[0]}",
            })  # fmt: skip
    finally:
        model.train(was_training)
    return rows
