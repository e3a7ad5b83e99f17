"""Out-of-distribution inputs (issue 21, item 1): the demos say when an input is unlike the training data.

* course_lib.ood's templates write exactly what the task's generator (``format_date``) writes,
  for every format, and every generated training source is "in distribution" (no reason given);
* the inputs the issue found answered with confident nonsense each get the right reason;
* the page's JavaScript (course_lib/book/web/demos.js, run here by Node.js on its own, no build
  needed) gives the same messages as Python on thousands of strings, for both demos, and the
  same verdict on the model's output (a real calendar date or not);
* the measuring function gives every family the flag it should (in distribution: none).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
import subprocess

import pytest

from course_lib.book import demos as bd
from course_lib.data.dates import (
    FORMATS,
    SOURCE_CHARS,
    CharVocab,
    format_date,
    make_date_pairs,
)
from course_lib.demo_inputs import (
    NOT_TRAINED,
    NOT_TRAINED_SENTENCE,
    fill_mask_input,
    prepare_date_input,
)
from course_lib.ood import (
    DATE_TEMPLATES,
    date_input_reasons,
    date_output_problem,
    ood_families,
    render_template,
)
from course_lib.tokenization import load_tokenizer

VOCAB = CharVocab(SOURCE_CHARS)
MAX_CHARS = 120


class _Task:  # what date_meta reads of a DateTask, without generating 50,000 pairs
    src_vocab = VOCAB
    tgt_vocab = CharVocab("-0123456789")
    max_src_len = MAX_CHARS // 3
    max_tgt_len = 11


def test_templates_write_what_the_generator_writes():
    rng = random.Random(0)
    for name, (write, two_digit) in FORMATS.items():
        first, last = (dt.date(1950, 1, 1), dt.date(2049, 12, 31)) if two_digit else (dt.date(1900, 1, 1), dt.date(2099, 12, 31))
        for _ in range(400):
            d = first + dt.timedelta(days=rng.randrange((last - first).days + 1))
            assert render_template(DATE_TEMPLATES[name], d.year, d.month, d.day, d.weekday()) == format_date(d, name), name


def test_every_training_source_is_in_distribution():
    pairs = make_date_pairs(20_000, seed=0)
    flagged = [(s, date_input_reasons(s)) for s, _ in pairs if date_input_reasons(s)]
    assert not flagged, f"{len(flagged)} generated sources flagged, e.g. {flagged[:3]}"
    assert all(prepare_date_input(s, VOCAB, MAX_CHARS).messages == [] for s, _ in pairs[:2000])


ISSUE_INPUTS = {  # text -> a phrase its reason must contain (the issue's confident-nonsense list)
    "31 February 2001": "not a real date",
    "13/13/13": "no month 13",
    "2/29/01": "February 2001 has 28 days",
    "hello world": "not written in any of the 17 formats",
    "1976": "not written in any of the 17 formats",
    "ñ": "characters the model never saw",
    "2001-02-03": "ISO format",
    "sept 9 09": "not written in any of the 17 formats",
    "12/25/1850": "the year 1850 is outside",
    "1 January 2150": "the year 2150 is outside",
    "Sat, 4 Jul 1976": "was a Sunday, not a Saturday",
}


@pytest.mark.parametrize("text, phrase", ISSUE_INPUTS.items())
def test_issue_inputs_are_flagged(text, phrase):
    messages = prepare_date_input(text, VOCAB, MAX_CHARS).messages
    assert messages[0] == NOT_TRAINED, messages
    assert any(phrase in m for m in messages), (text, messages)


def test_output_check():
    assert date_output_problem("2000-02-29") is None and date_output_problem("1976-07-04") is None
    for bad in ("2001-02-31", "2013-13-13", "2001-09-00", "1900-02-29", "0000-01-01", "20010231", "2001-2-3", ""):
        assert date_output_problem(bad), bad


# --------------------------------------------------------------------------- the page's JavaScript, in Node.js

_NODE_RUNNER = r"""
const fs = require('fs');
globalThis.window = {};
eval(fs.readFileSync(process.argv[1], 'utf8'));
const I = window.CourseDemos._internals;
const job = JSON.parse(fs.readFileSync(0, 'utf8'));
const dmeta = job.dates, fmeta = job.fill;
dmeta.stoi = new Map(); dmeta.src_itos.forEach((s, i) => { if (i >= 4) dmeta.stoi.set(s, i); });
fmeta.stoi = new Map(); fmeta.vocab.forEach((s, i) => fmeta.stoi.set(s, i));
const out = {
  dates: job.dates_texts.map(t => I.prepareDate(t, dmeta).messages),
  answers: job.answers.map(a => I.dateOutputProblem(a)),
  fill: job.fill_texts.map(t => { const f = I.fillMaskInput(t, fmeta); return [f.ids, f.error, f.notes]; }),
};
process.stdout.write(JSON.stringify(out));
"""


def _node(payload: dict) -> dict:
    node = shutil.which("node")
    if not node:
        pytest.fail("Node.js is needed to run the page's JavaScript (the book's build needs it too: `npm ci`)", pytrace=False)
    done = subprocess.run([node, "-e", _NODE_RUNNER, str(bd.WEB / "demos.js")], input=json.dumps(payload),
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _date_texts(rng: random.Random) -> list[str]:
    texts = [s for s, _ in make_date_pairs(1500, seed=1)] + list(ISSUE_INPUTS)
    for family in ood_families(make_date_pairs(200, seed=2), n=150, seed=3):
        texts += family.texts
    pieces = list("0123456789 ,.-/abcthsSTMJ") + ["january", "Feb", "SEP", "sep.", "the", "1st", "22nd", "of", "1976",
                                                "Mon", "monday", "TUESDAY", "ñ", "😀", "\u00a0", "\ufeff"]  # fmt: skip
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 8))) for _ in range(1500)]
    # real shapes with wrong fields: invalid days and months, padding, wrong weekdays, years 0-9999
    for _ in range(1500):
        name = rng.choice(list(DATE_TEMPLATES))
        y, m, d, w = rng.randint(0, 9999), rng.randint(0, 13), rng.randint(0, 32), rng.randint(0, 6)
        if m in range(1, 13):
            texts.append(render_template(DATE_TEMPLATES[name], y if "yy}" not in DATE_TEMPLATES[name] else 1900 + y % 100,
                                         m, d, w))  # fmt: skip
        texts.append(f"{m}/{d}/{y % 100:02d}")
    return texts


def test_page_javascript_equals_python():
    rng = random.Random(0)
    tokenizer = load_tokenizer()
    vocab = [tokenizer.hf.id_to_token(i) for i in range(tokenizer.vocab_size)]

    class _Config:
        max_len, n_layers, n_heads = 64, 2, 2

    dates = _date_texts(rng)
    answers = [f"{rng.randint(0, 2999):04d}-{rng.randint(0, 13):02d}-{rng.randint(0, 32):02d}" for _ in range(3000)]
    answers += ["2000-02-29", "1900-02-29", "2001-9-00", "", "1976-07-04", "????-??-??"]
    words = ["the", "rain", "falls", "zebra", "café", "unbelievably", "[MASK]", "[UNK]", ".", "雨", "sings", "dog", "kite",
             "Paris", "x" * 120, "naïve", "heavily"]  # fmt: skip
    fill = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 8))) for _ in range(1500)]
    got = _node({"dates": bd.date_meta(_Task()), "fill": bd.fill_mask_meta(tokenizer, _Config(), vocab),
                 "dates_texts": dates, "answers": answers, "fill_texts": fill})  # fmt: skip
    bad = [(t, g, prepare_date_input(t, VOCAB, MAX_CHARS).messages) for t, g in zip(dates, got["dates"])
           if g != prepare_date_input(t, VOCAB, MAX_CHARS).messages]  # fmt: skip
    assert not bad, f"{len(bad)} of {len(dates)} dates: the page says otherwise than Python, e.g. {bad[:3]}"
    bad = [(a, g) for a, g in zip(answers, got["answers"]) if g != date_output_problem(a)]
    assert not bad, f"{len(bad)} answers judged differently, e.g. {bad[:3]}"
    flagged = 0
    for text, (ids, error, notes) in zip(fill, got["fill"]):
        f = fill_mask_input(text, tokenizer, _Config.max_len)
        assert (ids, error, notes) == (f.ids, f.error, f.notes), text
        flagged += bool(notes)
    assert flagged > 100 and sum(bool(m) for m in got["dates"]) > 1000


def test_fill_mask_says_when_words_are_outside_the_corpus():
    tokenizer = load_tokenizer()
    assert fill_mask_input("the rain falls [MASK] .", tokenizer, 64).notes == []
    notes = fill_mask_input("the zebra [MASK] .", tokenizer, 64).notes
    assert notes[0] == NOT_TRAINED_SENTENCE and "zebra (" in notes[1], notes
    notes = fill_mask_input("雨 [MASK] .", tokenizer, 64).notes
    assert notes[0] == NOT_TRAINED_SENTENCE and "[UNK]" in notes[1], notes


def test_families_are_flagged_and_in_distribution_is_not():
    families = ood_families(make_date_pairs(400, seed=5), n=200, seed=0)
    assert [f.key for f in families] == ["in", "invalid", "iso", "years", "french", "german"]
    assert not any(date_input_reasons(t) for t in families[0].texts)
    for family in families[1:]:
        assert all(date_input_reasons(t) for t in family.texts), family.name
        assert len(family.texts) == 200
    assert all(t is None for t in families[1].targets)  # invalid dates have no right answer
