"""No number typed by hand in the chapters' prose: measured numbers are glued (issue 16).

Every number a chapter's markdown quotes from a computation must come from it, with MyST-NB's
glue: in a code cell `glue("name", value, display=False)`, in the prose {glue:text}`name:.1f`.
This test lists the numeric literals left in the markdown cells of every chapter that are
neither glued nor on the allow-list below (paper facts, constants set in code, arithmetic a
reader can check), and fails on any new one.

What is read: every markdown cell, maths included ($...$ and $$...$$: a result in an equation
must be glued too). What is not: fenced code blocks and inline code spans (code, not claims),
MyST roles and their targets ({glue:text}`...`, {doc}`...`), link targets and URLs, and the
References section of a chapter (bibliographic facts: years, volumes, arXiv ids).

To quote a new number: glue it. If it is a fact from a paper or a constant fixed in the code
(never a measurement), add it to ALLOWED under its chapter, with the reason.
"""

from __future__ import annotations

import json
import pathlib
import re

import pytest
from pending import chapters_with_pending

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))


def _small(text: str) -> bool:
    return text.isdigit() and int(text) <= 12


def _year(text: str) -> bool:
    return text.isdigit() and len(text) == 4 and 1990 <= int(text) <= 2026


def _power_of_two(text: str) -> bool:
    return text.isdigit() and 16 <= int(text) <= 4096 and int(text) & (int(text) - 1) == 0


#: Numbers allowed in every chapter: (test, reason).
ALLOWED_EVERYWHERE = (
    (_small, "0 to 12: counts, chapter, section and list numbers, sizes of hand-made examples"),
    (_year, "a publication year (1990-2026), as in 'Vaswani et al., 2017' (not when a lowercase word "
            "follows: '2000 test sequences' is a count)"),
    (_power_of_two, "16 to 4096, powers of two: layer sizes and batch sizes of the papers' and the "
                    "chapters' configurations, fixed in code (d_model = 512, d_ff = 2048, ...)"),
)

#: Paper facts and constants allowed in every chapter: literal -> reason.
ALLOWED_CONSTANTS = {
    "0.1": "the paper's dropout P_drop and label smoothing eps_ls (Vaswani et al., sec. 5.4)",
    "0.9": "Adam's beta_1 in the paper (sec. 5.3)",
    "0.98": "Adam's beta_2 in the paper (sec. 5.3)",
    "4000": "the paper's warmup_steps (sec. 5.3)",
    "0.6": "GNMT's length-penalty alpha, used by the paper's beam search (sec. 6.1)",
    "100": "per cent; 100 as a round count",
    "768": "BERT-base's hidden size (Devlin et al.)",
    "3072": "BERT-base's feed-forward size (Devlin et al.)",
    "10000": "the sinusoidal encoding's base, 10000 (Vaswani et al., sec. 3.5)",
    "0.5": "a half: exponents (step^-0.5, d_model^-0.5) and 50/50 splits",
}

#: Per chapter (notebook stem): literal -> reason. Paper facts and code constants only.
ALLOWED: dict[str, dict[str, str]] = {
    "00_introduction": {},
    "01_seq2seq_attention": {
        "2.7": "e = 2.718..., Euler's number: a score larger by 1 gives a weight e times larger",
        "1900": "the date task's first year, fixed in code (course_lib.data.dates.FIRST_DAY)",
        "2099": "the date task's last year, fixed in code (course_lib.data.dates.LAST_DAY)",
        "1950": "first year of the two-digit-year formats, fixed in code (dates.FIRST_DAY_YY)",
        "2049": "last year of the two-digit-year formats, fixed in code (dates.LAST_DAY_YY)",
        "31": "the days of the longest month (a calendar fact): chance for the day is 1 in 31 at best",
        "50": "Bahdanau et al.'s RNNsearch-50, trained on sentences of up to 50 words (a paper fact)",
    },
    "02_query_key_value": {},
    "04_multi_head": {
        "1,050,624": "4 * 512^2 + 4 * 512, the formula's arithmetic on the paper's sizes",
        "2,362,368": "4 * 768^2 + 4 * 768, answer 1's arithmetic on BERT-base's sizes",
        "0.09": "1/11, a uniform head's weight on 11 keys (T = 12 positions, fixed in code)",
        "20": "10 + 10 outputs of the readout: two digits (fixed in code)",
        "0.9": "the paper's table 3, row A: single-head attention is 0.9 BLEU worse",
        "10": "ten digits; chance for a digit is 1 in 10",
        "50": "a 50/50 split of one head's weights (the intuition's illustration)",
        "24": "question 1: 'would 24 heads change that number?' (an illustration)",
    },
    "06_masking": {},
    "08_bert": {
        "100,000": "all-MiniLM-L6-v2's sentence-embedding training: 100,000 steps (its model card, a fact of the weights)",
        "2.0": "the name of the weights' licence, Apache-2.0",
        "384": "all-MiniLM-L6-v2's hidden size H = 384 (its config.json, checked when the chapter loads it)",
        "72": "the real model's heads: 6 layers x 12 heads (its config, fixed)",
        "200": "the head analysis reads 100 sentence pairs = 200 sentences (N_PAIRS = 100, fixed in code)",
        "40": "each sentence cut to 40 tokens in the head analysis (CUT = 40, fixed in code)",
        "15": "BERT's masking rate: 15% of the tokens are chosen (Devlin et al., sec. 3.1)",
        "80": "of the chosen tokens 80% become [MASK] (Devlin et al., sec. 3.1)",
        "1.5": "10% of 15%: the share of all tokens replaced at random (Devlin et al., appendix A.1)",
        "0.8": "mask_tokens' threshold for [MASK] on its uniform draw (the 80%, fixed in code)",
        "50": "NSP: 50% real next sentences, 50% random ones (Devlin et al., sec. 3.1)",
        "24": "BERT-large's L = 24 layers (Devlin et al., sec. 3)",
        "144": "12 layers x 12 heads of BERT-base (arithmetic on the paper's sizes)",
        "30,522": "the vocabulary size of Google's English BERT checkpoints (BertConfig.base)",
        "120": "the deliberately small WordPiece vocabulary, fixed in code (vocab_size=120)",
        "1,000": "the book tokenizer's vocabulary bound, fixed in code (train_wordpiece's default)",
        "1,000,000": "BERT's 1,000,000 pretraining steps (Devlin et al., appendix A.2)",
        "90": "90% of BERT's pretraining steps used 128-token sequences (appendix A.2)",
        "7,087,872": "parameters of one BERT-base layer, answer 3's arithmetic on H = 768",
    },
    "07_transformer": {
        # the paper's tables 2 and 3 (Vaswani et al., 2017)
        **{bleu: "BLEU in the paper's table 2" for bleu in
           ("24.6", "39.92", "25.16", "40.46", "26.03", "40.56", "27.3", "38.1", "28.4", "41.8")},
        **{flops: "training FLOPs (mantissa or exponent) in the paper's table 2" for flops in
           ("2.3", "1.4", "9.6", "1.5", "2.0", "1.2", "3.3", "18", "19", "20")},
        "65": "the paper's base-model parameter count, 65M (table 3)",
        "213": "the paper's big-model parameter count, 213M (table 3)",
        "37,000": "the paper's shared EN-DE BPE vocabulary, about 37,000 tokens (sec. 5.1)",
        "0.4": "the paper's seconds per step, base model (sec. 5.2)",
        "3.5": "the paper's 3.5 days of training for the big model (sec. 5.2)",
        "100,000": "the paper's 100,000 training steps (base model, sec. 5.2)",
        "300,000": "the paper's 300,000 training steps (big model, sec. 5.2)",
        "2014": "WMT 2014, the paper's data set",
        "45,000": "the date task's training split, fixed in code (load_date_task(n_train=45_000))",
        "1,000": "test dates per checkpoint, fixed in code (N_EVAL = 1000)",
        "1.0": "the gradient-clipping norm, fixed in code (fit(..., clip_norm=1.0))",
        "30": "a typical sentence length, n of about 30 (an illustration, not a measurement)",
        "50": "answer 6: n = 50",
        "5000": "answer 6: n = 5000 (the RNN's 5000 steps)",
        "0.907": "1 - 0.1 + 0.1/15: label smoothing's optimum for V = 15 (answer 5, arithmetic)",
        "0.91": "1 - 0.1 + 0.1/15 rounded (arithmetic on constants)",
        "15": "the date task's target vocabulary, 15 tokens (fixed by the task)",
        "7.0": "answer 4: 512^-0.5 * 4000^-0.5 = 7.0e-4 (arithmetic on the paper's constants)",
        "13": "exponents in answer 6 (1.3e6, 1.3e7, 1.3e9, 1.3e10; arithmetic, n^2 d and n d^2)",
        "1.3": "answer 6's mantissas: 50^2 * 512 and 50 * 512^2 (arithmetic)",
        "1.07": "11 * log(0.907): a certain 11-token answer's log P under label smoothing (arithmetic)",
        "-1.07": "the same, with its sign",
        "1x1": "a 1x1 convolution (kernel width 1)",
        "12": "the paper's 12 hours of training for the base model (sec. 5.2)",
        **{bleu: "BLEU of the ensembles in the paper's table 2" for bleu in ("26.30", "41.16", "26.36", "41.29")},
        **{flops: "training FLOPs (mantissas) of the ensembles in the paper's table 2" for flops in ("1.8", "1.1", "7.7")},
        "41.0": "the big model's EN-FR BLEU in the paper's NeurIPS version (41.8 in the current arXiv version)",
        "99": "the 99% line of the training-curve figure, fixed in code (seconds_to's target)",
        "0.8": "the threshold of 'nearly all the weight on one position', fixed in code (decoder heads)",
        "200": "the date task's 200 years of four-digit years, 1900-2099 (fixed by the generator)",
    },
}

_FENCE = re.compile(r"^(`{3,}|~{3,}).*?^\1\s*$", re.M | re.S)
_ROLE = re.compile(r"\{[\w:-]+\}`[^`]*`")
_CODE = re.compile(r"`[^`\n]*`")
_LINK_TARGET = re.compile(r"\]\([^)]*\)")
_URL = re.compile(r"https?://\S+")
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_REFERENCES = re.compile(r"^#+\s*References\b.*", re.M | re.S)
_LIST_MARKER = re.compile(r"^\s*\d+\.\s", re.M)
# "sec. 5.3", "section 3.2.2", "table 3", "appendix C.2": where in a paper, not a number
_SECTION = re.compile(r"\b(?:sec\.|sections?|tables?|appendix|figure|fig\.)\s+[A-Z]?\d+(?:\.\d+)*", re.I)
_NUMBER = re.compile(r"(?<![\w.])\d+(?:,\d{3})*(?:\.\d+)?(?:x\d+)?(?![\w])")


def prose(markdown: str) -> str:
    """The markdown with code, roles, link targets, URLs and the References section removed."""
    for pattern in (_REFERENCES, _FENCE, _COMMENT, _ROLE, _CODE, _LINK_TARGET, _URL, _LIST_MARKER, _SECTION):
        markdown = pattern.sub(" ", markdown)
    return markdown.replace("{,}", ",")  # LaTeX's 1{,}050{,}624 is 1,050,624


def _allowed(literal: str, chapter: str) -> bool:
    if literal in ALLOWED.get(chapter, {}) or literal in ALLOWED_CONSTANTS:
        return True
    plain = literal.replace(",", "")
    return any(test(plain) for test, _why in ALLOWED_EVERYWHERE)


def _counts_something(text: str, start: int, end: int) -> bool:
    """'over all 2000 test sequences' is a count; 'in 2014 to the models', 'the 2017 paper' are years:
    a number followed by a lowercase word, unless a word that introduces a year comes before it."""
    before = re.search(r"(?:\b(?:in|of|from|to|since|until|the)|al\.,|[(\-–])\s*$", text[:start])
    return re.match(r"\s+[a-z]", text[end:]) is not None and before is None


def typed_numbers(notebook: pathlib.Path) -> list[tuple[int, str, str]]:
    """(cell index, literal, context) for every number typed by hand in the markdown cells."""
    chapter = notebook.stem
    found = []
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        text = prose("".join(cell["source"]))
        for match in _NUMBER.finditer(text):
            year_as_count = _year(match.group()) and _counts_something(text, match.start(), match.end())
            if year_as_count and match.group() not in ALLOWED.get(chapter, {}) or not _allowed(match.group(), chapter):
                context = " ".join(text[max(0, match.start() - 40): match.end() + 30].split())
                found.append((index, match.group(), context))
    return found


def _notebook(tmp_path, chapter: str, *markdown: str) -> pathlib.Path:
    path = tmp_path / f"{chapter}.ipynb"
    cells = [{"cell_type": "markdown", "source": [m]} for m in markdown]
    path.write_text(json.dumps({"cells": [{"cell_type": "code", "source": ["accuracy = 0.934"]}, *cells]}))
    return path


def test_a_typed_result_is_caught_and_a_glued_one_is_not(tmp_path):
    typed = _notebook(tmp_path, "planted", "The model reaches 93.4% after 1,234 steps.")
    assert [literal for _, literal, _ in typed_numbers(typed)] == ["93.4", "1,234"]
    count = _notebook(tmp_path, "count", "Measured over 2000 test sequences (Vaswani et al., 2017).")
    assert [literal for _, literal, _ in typed_numbers(count)] == ["2000"]
    glued = _notebook(tmp_path, "glued", "The model reaches {glue:text}`accuracy:.1%` after {glue:text}`steps`.")
    assert typed_numbers(glued) == []


def test_results_inside_maths_are_caught_and_code_and_references_are_not(tmp_path):
    planted = _notebook(
        tmp_path, "planted",
        "The loss falls to $\\mathcal{L} = 0.347$, with\n\n$$p = 0.8123$$",
        "Call `fit(model, steps=1500)` and read [the paper](https://arxiv.org/abs/1706.03762).\n\n"
        "```python\nx = 123.4\n```",
        "## References\n\n* Someone (2017). Volume 9(8), pages 1735-1780.",
    )
    assert [(cell, literal) for cell, literal, _ in typed_numbers(planted)] == [(1, "0.347"), (1, "0.8123")]


def test_constants_need_their_chapter(tmp_path):
    # the paper's BLEU score is allowed in chapter 7, and only there
    assert typed_numbers(_notebook(tmp_path, "07_transformer", "EN-DE: 27.3 BLEU.")) == []
    assert [literal for _, literal, _ in typed_numbers(_notebook(tmp_path, "04_multi_head", "EN-DE: 27.3 BLEU."))] == ["27.3"]


def test_every_allow_list_entry_has_a_reason():
    for chapter, entries in {"*": ALLOWED_CONSTANTS, **ALLOWED}.items():
        for literal, reason in entries.items():
            assert _NUMBER.fullmatch(literal) or literal.startswith("-"), f"{chapter}: {literal!r} is not a number"
            assert len(reason) > 10, f"{chapter}: {literal!r} needs a reason"


#: Chapters not yet converted (issue 16 is open for them): see tests/pending.py.
NOT_YET_CONVERTED = ()


@pytest.mark.parametrize("notebook", chapters_with_pending(CHAPTERS, NOT_YET_CONVERTED), ids=lambda p: p.stem)
def test_no_number_typed_by_hand(notebook):
    found = typed_numbers(notebook)
    assert not found, (
        f"{notebook.name}: {len(found)} number(s) in the prose are neither glued nor allowed. Glue each "
        "measured one (glue('name', value, display=False), then {glue:text}`name:.2f`); a paper fact or "
        "a constant fixed in code goes into ALLOWED in tests/test_prose_numbers.py, with its reason:\n"
        + "\n".join(f"  cell {cell}: {literal!r} in '...{context}...'" for cell, literal, context in found)
    )
