"""The generated data read as data: grammar, the calendar, and the examples beside the code.

Issue 25: the word lists in ``course_lib/data/`` were reviewed for membership and grammar (the
review is in ``course_lib/data/corpus.py``'s docstring); this file checks what can be checked
mechanically, over generated text rather than a few hand-picked sentences:

* agreement: "one" takes the singular, 2-12 the plural, a singular subject the verb in -s
  ("the dog barks", "the plum is"), a plural one the bare verb; "a"/"an" follows the next word's
  first sound (with a small exception list: "an hour", "a university"), over
  ``make_corpus(4000)`` (both splits), ``topic_task()`` and ``TINY_CORPUS``;
* the date formats: the example written beside each entry of ``FORMATS`` is what
  ``format_date`` writes for that day;
* a date written with its weekday anywhere in the book's prose, the exercises or the code is
  true of the calendar (or listed in ``KNOWN_WRONG_WEEKDAYS`` with the reason it is wrong on
  purpose).

Each check is shown to fail on a planted example.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import pathlib
import re

import pytest

from course_lib.data import dates
from course_lib.data.corpus import ANIMALS, FRUIT, NUMBERS, article, make_corpus, topic_task
from course_lib.data.synthetic import TINY_CORPUS

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: words with their singular and plural forms, for "one" + noun agreement
_SINGULARS = set(ANIMALS) | set(FRUIT)
_PLURALS = {plural for plural, *_ in ANIMALS.values()} | {plural for plural, _ in FRUIT.values()}
PLURAL = _PLURALS - _SINGULARS  # "sheep" is both, so it is neither here
SINGULAR = _SINGULARS - _PLURALS
#: verb forms: the sound an animal makes, for one ("barks") and for many ("bark")
VERB_ONE = {one for _, one, many in ANIMALS.values() if one != many} | {"is"}
VERB_MANY = {many for _, one, many in ANIMALS.values() if one != many} | {"are"}


def agreement_errors(sentence: str) -> list[str]:
    """What is wrong with the sentence's articles and number words (empty when nothing)."""
    words = sentence.split()
    errors = []
    for word, nxt in zip(words, words[1:]):
        if word.lower() in ("a", "an") and nxt.isalpha():
            right = article(nxt)
            if word.lower() != right:
                errors.append(f"{word!r} before {nxt!r} (should be {right!r})")
        if word == "one" and nxt in PLURAL:
            errors.append(f"'one {nxt}': one takes the singular")
        if word in NUMBERS[2:] and nxt in SINGULAR:
            errors.append(f"'{word} {nxt}': {word} takes the plural")
        if word in SINGULAR and nxt in VERB_MANY - VERB_ONE:
            errors.append(f"'{word} {nxt}': a singular subject takes the verb in -s")
        if word in PLURAL and nxt in VERB_ONE - VERB_MANY:
            errors.append(f"'{word} {nxt}': a plural subject takes the bare verb")
    return errors


def _generated_sentences() -> dict[str, list[str]]:
    task = topic_task()
    return {
        "make_corpus(4000)": list(make_corpus(4000).sentences()),
        "make_corpus(4000, heldout)": list(make_corpus(4000, split="heldout").sentences()),
        "topic_task()": [s for s, _ in task.train + task.test_seen + task.test_unseen],
        "TINY_CORPUS": list(TINY_CORPUS),
    }


def test_the_agreement_check_catches_planted_errors():
    assert agreement_errors("tom has one cherries .")
    assert agreement_errors("anna sees a owl .")
    assert agreement_errors("ben has an dog .")
    assert agreement_errors("leo has three cherry .")
    assert agreement_errors("the dog bark .") and agreement_errors("the dogs barks .")
    assert agreement_errors("cherries is red .")
    assert not agreement_errors("the dog barks and the dogs bark ; cherries are red .")
    assert not agreement_errors("tom has one cherry and sees an owl , a university and an hour .")
    assert not agreement_errors("she has two sheep and one sheep .")


@pytest.mark.parametrize("source, sentences", _generated_sentences().items())
def test_generated_sentences_agree(source, sentences):
    bad = {s: agreement_errors(s) for s in set(sentences) if agreement_errors(s)}
    assert not bad, f"{source}: {len(bad)} sentences, e.g. {list(bad.items())[:5]}"


def test_article_rule():
    assert [article(w) for w in ("owl", "egg", "hour", "university", "one", "dog")] == [
        "an", "an", "an", "a", "a", "a",
    ]  # fmt: skip


# --------------------------------------------------------------------------- dates


def format_examples() -> dict[str, str]:
    """FORMATS key -> the example in the comment beside it in dates.py."""
    source = inspect.getsource(dates)
    return dict(re.findall(r'^\s*"([^"]+)":\s*\(lambda.*#\s*(.+?)\s*$', source, re.MULTILINE))


def test_each_format_example_is_what_the_code_writes():
    examples = format_examples()
    assert set(examples) == set(dates.FORMATS), "every format has its example"
    day = dt.date(1994, 9, 27)
    wrong = {
        fmt: (shown, dates.format_date(day, fmt))
        for fmt, shown in examples.items()
        if dates.format_date(day, fmt) != shown
    }
    assert not wrong, f"example beside the format vs what format_date writes: {wrong}"


WEEKDAY_NAMES = "|".join(d[:3] + r"\w*" for d in dates.WEEKDAYS)
MONTH_NAMES = "|".join(m[:3] + r"\w*" for m in dates.MONTHS)
DATED = re.compile(
    rf"\b(?P<wd>{WEEKDAY_NAMES})\.?,?\s+(?:(?P<d1>\d{{1,2}})\s+(?P<m1>{MONTH_NAMES})\.?"
    rf"|(?P<m2>{MONTH_NAMES})\.?\s+(?P<d2>\d{{1,2}})),?\s+(?P<y>\d{{4}})\b",
    re.IGNORECASE,
)

#: dates written with a wrong weekday on purpose -> why
KNOWN_WRONG_WEEKDAYS: dict[str, str] = {}  # none: chapter 1's demo default is now 'Sun, 4 Jul 1976'


def wrong_weekdays(text: str) -> list[str]:
    out = []
    for m in DATED.finditer(text):
        month = [x[:3] for x in dates.MONTHS].index((m["m1"] or m["m2"])[:3].lower()) + 1
        day = dt.date(int(m["y"]), month, int(m["d1"] or m["d2"]))
        written = m["wd"][:3].lower()
        if written != dates.WEEKDAYS[day.weekday()][:3]:
            out.append(f"{m[0]!r}: {day} was a {dates.WEEKDAYS[day.weekday()]}")
    return out


def _texts() -> list[tuple[str, str]]:
    texts = []
    for path in sorted(ROOT.glob("chapters/*.ipynb")) + sorted(ROOT.glob("exercises/*/*.ipynb")):
        nb = json.loads(path.read_text())
        texts.append((str(path.relative_to(ROOT)), "\n".join("".join(c["source"]) for c in nb["cells"])))
    for path in [*ROOT.glob("chapters/*.md"), ROOT / "README.md", *ROOT.glob("course_lib/**/*.py")]:
        texts.append((str(path.relative_to(ROOT)), path.read_text()))
    return texts


def test_the_weekday_check_catches_a_planted_error():
    assert wrong_weekdays("e.g. Monday, September 27, 1994")
    assert not wrong_weekdays("e.g. TUESDAY, SEPTEMBER 27, 1994 and Tue, 27 Sep 1994")


def test_every_date_with_a_weekday_is_true_of_the_calendar():
    wrong = []
    for name, text in _texts():
        wrong += [
            f"{name}: {w}"
            for w in wrong_weekdays(text)
            if w.split("'")[1].lower() not in KNOWN_WRONG_WEEKDAYS
        ]
    assert not wrong, "\n".join(wrong)


def typed_date_pairs_wrong(text: str) -> list[str]:
    """A human date typed beside its ISO date (`...` in one sentence) must be what the task writes."""
    out = []
    for sentence in re.split(r"(?<=[.;])\s+|\n\n", text):
        spans = re.findall(r"`([^`\n]+)`", sentence)
        for iso in [s for s in spans if re.fullmatch(r"\d{4}-\d\d-\d\d", s)]:
            day = dt.date.fromisoformat(iso)
            written = {dates.format_date(day, f) for f in dates.FORMATS
                       if not dates.FORMATS[f][1] or 1950 <= day.year <= 2049}  # fmt: skip
            for other in spans:
                if other != iso and str(day.year) in other and other not in written:
                    out.append(f"`{other}` beside `{iso}`: no format writes it for that day")
    return out


def test_typed_date_examples_are_what_the_task_writes():
    assert typed_date_pairs_wrong("a date (`MONDAY, SEPTEMBER 27, 1994`) and (`1994-09-27`).")
    assert not typed_date_pairs_wrong("a date (`TUESDAY, SEPTEMBER 27, 1994`), ISO (`1994-09-27`).")
    wrong = []
    for name, text in _texts():
        if name.endswith(".ipynb"):
            wrong += [f"{name}: {w}" for w in typed_date_pairs_wrong(text)]
    assert not wrong, "\n".join(wrong)
