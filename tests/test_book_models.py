"""The chapters' trained models in the built book, run by ONNX Runtime Web in Chromium, equal PyTorch.

Playwright types into the chapter 1 date translator and the chapter 8 fill-mask demo
(course_lib/book/demos.py, course_lib/book/web/demos.js) and compares what the page computed
with PyTorch on the same trained weights: the model is rebuilt with course_lib from the
``model.pt`` that the chapter exported next to the ONNX files (``<build>/_build/.course-models/``),
so the reference is computed here, independently of the page. Same decoded strings and top-k
tokens, probabilities and attention weights within 1e-4, for 20+ inputs per demo, edge cases
included; bad input gets its message in the page; nothing of the runtime or the model loads
before the reader touches the demo; file:// says how to serve the book. Each heatmap has a colour
bar on the scale its cells are coloured on (compared as rendered), and the page carries the
repository's demos.js (not an older one from the jupyter cache).

COURSE_BOOK_HTML may also name a one-chapter build
(``jupyter-book build chapters/01_seq2seq_attention.ipynb --path-output P`` ->
``P/_build/_page/01_seq2seq_attention/html``; build with COURSE_NODE_MODULES=<repo>/node_modules
so that ONNX Runtime Web is staged); then run only that chapter's tests (``-k ch01``).
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from browser import BOOK_HTML, allowed, open_page

from course_lib.book import demos as bd
from course_lib.bert import fill_mask
from course_lib.data.dates import load_date_task
from course_lib.tokenization import load_tokenizer

ATOL = 1e-4
MODELS = BOOK_HTML.parent / ".course-models"  # written by the chapters when the book was built
CH01 = "chapters/01_seq2seq_attention.html"
CH08 = "chapters/08_bert.html"


def _page(path: str) -> str:
    """`path` in a whole-book build; in a one-chapter build (`jupyter-book build chapters/X.ipynb`,
    COURSE_BOOK_HTML=<path-output>/_build/_page/X/html) the chapter is the site's root page."""
    if (BOOK_HTML / path).is_file() or not (BOOK_HTML / path.rsplit("/", 1)[-1]).is_file():
        return path
    return path.rsplit("/", 1)[-1]

ON_DEMAND = ("onnxruntime-web/", "course-models/")

DATES = [
    "Sat, 4 Jul 1976", "4th of july 1976", "Jan 1 2001", "12.3.45", "1994/09/27", "27-SEP-94",
    "TUESDAY, SEPTEMBER 27, 1994", "september 27, 1994", "9/27/94", "the 1st of january 2000",
    "Wed, 31 Dec 2099", "7", "  1976 07 04  ", "19760704", ",,,", "July 4, 1976 ☀", "éàü",
    "😀" * 100, "1976 " * 40, "4 juli 1976", "a/b/c", "   ", "",
]
SENTENCES = [
    "the rain falls [MASK] .", "the [MASK] barks .", "paris is a city in [MASK] .", "after monday comes [MASK] .",
    "two plus three is [MASK] .", "tom has a red kite . he gives the kite to mia . now mia has the red [MASK] .",
    "[MASK]", "[MASK] [MASK] [MASK]", "The Rain Falls [MASK] .", "café [MASK] naïve", "雨 が [MASK] 降る",
    "paris,[MASK]!", "the zebra [MASK] .", "[MASK][MASK]", "[UNK] [CLS] [MASK] [SEP]", "x" * 120 + " [MASK]",
    "a [MASK] b [MASK] c", "'[MASK]'", "the sky is [MASK] .", "the wind blows [MASK] .",
    # bad input: a message, no prediction
    "", "   ", "the [mask] barks .", "the dog barks .", "a " * 130 + "[MASK]",
]


def _demo(page, kind):
    return page.locator(f"#course-demo-{kind}")


def _type(page, kind, text):
    """Set the box to `text` (an input event, as typing does) and wait until the page has rendered it."""
    page.fill(f"#course-demo-{kind} .course-demo-input", text)
    page.wait_for_function(
        "([id, text]) => document.getElementById(id).dataset.renderedFor === text", arg=[f"course-demo-{kind}", text]
    )
    return page.evaluate(f"window.CourseDemos.results[{json.dumps(kind)}]")


def _open(browser_context, site, path):
    page, log = open_page(browser_context, site + _page(path))
    page.wait_for_load_state("networkidle")
    early = [u for u in log.requests if any(part in u for part in ON_DEMAND)]
    assert not early, f"{path}: the runtime or the model loaded before any interaction: {early}"
    return page, log


def _ours(message: str) -> bool:
    """A console error or failed request of the demo (the rest of the page is tests/test_book_browser.py's)."""
    return "Failed to load resource" not in message or any(part in message for part in ON_DEMAND)


def _no_errors(log, path):
    errors = [e for e in log.errors if not allowed(e) and _ours(e)]
    assert not errors, f"{path}: console errors {errors}"
    assert not log.outside, f"{path}: requests outside 127.0.0.1 {log.outside}"
    failed = [f for f in log.failed if any(part in f for part in ON_DEMAND)]
    assert not failed, f"{path}: failed requests {failed}"


def _exported(name):
    folder = MODELS / name
    if not (folder / "model.pt").is_file():
        pytest.fail(f"no exported model in {folder}: build the book (make book) so that the chapter exports it", pytrace=False)
    return folder


@pytest.fixture(scope="module")
def dates_reference():
    folder = _exported("dates")
    task = load_date_task()  # the chapter's task: the same vocabularies and padded lengths
    meta = json.loads((BOOK_HTML / "_static" / bd.SITE_FOLDER / "dates" / "meta.json").read_text())
    assert meta["src_itos"] == task.src_vocab.itos and meta["tgt_itos"] == task.tgt_vocab.itos
    assert meta["max_chars"] == bd.date_max_chars(task) and meta["max_steps"] == task.max_tgt_len
    return bd.load_date_translator(folder), task


def test_date_translator_equals_pytorch(site, browser_context, dates_reference):
    model, task = dates_reference
    page, log = _open(browser_context, site, CH01)
    demo = _demo(page, "dates")
    assert "run the model" in demo.inner_text()
    worst, compared, strings = 0.0, 0, 0
    for text in DATES + ["Sat, 4 Jul 1976 "]:
        got = _type(page, "dates", text)
        typed = bd.prepare_date_input(text, task.src_vocab, bd.date_max_chars(task))
        assert got["messages"] == typed.messages, text
        shown = demo.locator(".course-demo-output").inner_text()
        for message in typed.messages:
            assert message in shown, (text, message)
        if not typed.ids:
            assert got["decoded"] is None and demo.locator("rect[data-w]").count() == 0, text
            continue
        assert got["text"] == typed.text
        out = model.greedy_decode(torch.tensor([typed.ids]), max_len=task.max_tgt_len)
        steps = out.tokens[0].tolist()
        assert got["steps"] == steps, (text, got["steps"], steps)
        decoded = task.tgt_vocab.decode(out.tokens[0])
        assert got["decoded"] == decoded, text
        assert demo.locator(".course-demo-answer").inner_text().split("\u2192")[-1].strip() == decoded, text
        strings += 1
        weights = np.array(got["weights"])  # (steps, S)
        reference = out.weights[0].numpy()
        assert weights.shape == reference.shape == (len(steps), len(typed.ids)), text
        worst = max(worst, float(np.abs(weights - reference).max()))
        assert demo.locator("rect[data-w]").count() == weights.size  # the heatmap shows every weight
        compared += 1
    print(f"\nchapter 1 in Chromium vs PyTorch: {compared} inputs, {strings} decoded strings equal, "
          f"max |attention weight difference| {worst:.2e}")
    assert compared >= 20
    assert worst <= ATOL
    _no_errors(log, CH01)
    page.close()


@pytest.fixture(scope="module")
def fill_mask_reference():
    folder = _exported("fill_mask")
    tokenizer = load_tokenizer(folder / "vocab.txt")
    return bd.load_fill_mask(folder), tokenizer


def test_fill_mask_equals_pytorch(site, browser_context, fill_mask_reference):
    model, tokenizer = fill_mask_reference
    page, log = _open(browser_context, site, CH08)
    demo = _demo(page, "fill-mask")
    prob_diff = attention_diff = 0.0
    predicted = 0
    for text in SENTENCES:
        got = _type(page, "fill-mask", text)
        checked = bd.fill_mask_input(text, tokenizer, model.config.max_len)
        assert (got["ids"], got["error"], got["notes"]) == (checked.ids, checked.error, checked.notes), text
        assert got["tokens"] == checked.tokens, text
        shown = demo.locator(".course-demo-output").inner_text()
        if checked.error:
            assert checked.error in shown and demo.locator("table").count() == 0, text
            continue
        reference = fill_mask(model, tokenizer, text, k=5)
        assert len(got["masks"]) == len(reference), text
        for mask, ref in zip(got["masks"], reference):
            tokens, probs = [t for t, _ in mask["top"]], [p for _, p in mask["top"]]
            ref_tokens, ref_probs = [t for t, _ in ref], [p for _, p in ref]
            for i, (a, b) in enumerate(zip(tokens, ref_tokens)):  # equal, except within a near-tie
                assert a == b or abs(probs[i] - ref_probs[i]) < ATOL, (text, tokens, ref_tokens)
            prob_diff = max(prob_diff, float(np.abs(np.array(probs) - np.array(ref_probs)).max()))
            assert tokens[0] in shown
        with torch.no_grad():
            out = model(torch.tensor([checked.ids]), need_weights=True)
        ref_att = torch.stack(out.attentions, dim=1).numpy()  # (1, L, H, T, T)
        att = np.array(got["attentions"]["data"]).reshape(got["attentions"]["dims"])
        attention_diff = max(attention_diff, float(np.abs(att - ref_att).max()))
        predicted += 1
    print(f"\nchapter 8 in Chromium vs PyTorch: {predicted} predictions ({len(SENTENCES) - predicted} refused with a message), "
          f"max |probability difference| {prob_diff:.2e}, max |attention weight difference| {attention_diff:.2e}")
    assert predicted >= 20
    assert prob_diff <= ATOL and attention_diff <= ATOL

    # the heatmap follows the chosen layer and head, and shows their weights
    _type(page, "fill-mask", "the rain falls [MASK] .")
    checked = bd.fill_mask_input("the rain falls [MASK] .", tokenizer, model.config.max_len)
    with torch.no_grad():
        attentions = model(torch.tensor([checked.ids]), need_weights=True).attentions
    for layer in range(model.config.n_layers):
        for head in range(model.config.n_heads):
            page.select_option("#course-demo-fill-mask .course-demo-layer", str(layer))
            page.select_option("#course-demo-fill-mask .course-demo-head", str(head))
            assert demo.get_attribute("data-attention-shown") == f"{layer},{head}"
            cells = np.array([float(w) for w in demo.locator("rect[data-w]").evaluate_all("rs => rs.map(r => r.dataset.w)")])
            assert np.abs(cells - attentions[layer][0, head].numpy().ravel()).max() <= ATOL
    _no_errors(log, CH08)
    page.close()


def test_tokenisers_in_the_page_equal_python(site, browser_context, dates_reference, fill_mask_reference):
    """Thousands of random strings (specials, accents, CJK, emoji, controls) through the page's JavaScript."""
    _, task = dates_reference
    model, tokenizer = fill_mask_reference
    rng = random.Random(0)
    pieces = list("abcXYZ019 .,;!?'-[]()#/") + ["[MASK]", "[UNK]", "[CLS]", "[mask]", "İ", "é", "ß", "ﬁ", "Σ", "雨", "が",
                                               "😀", "\u200b", "\u00ad", "\t", "\x85", "\u3000", "\ufeff", "\x1c", "Å",
                                               "\u0301", "ı", "K", "the", "rain", "paris", "\ufffd", "july", "1976"]
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 14))) for _ in range(2000)]
    page, log = _open(browser_context, site, CH08)
    page.locator("#course-demo-fill-mask .course-demo-input").focus()
    page.wait_for_function("document.getElementById('course-demo-fill-mask').dataset.loaded === '1'")
    got = page.evaluate(
        """async (texts) => {
            const I = window.CourseDemos._internals;
            const meta = document.getElementById('course-demo-fill-mask').courseDemo.model.meta;
            const base = new URL(document.documentElement.dataset.content_root + '_static/course-models/dates/meta.json', document.baseURI);
            const dmeta = await (await fetch(base)).json();
            dmeta.stoi = new Map(); dmeta.src_itos.forEach((s, i) => { if (i >= 4) dmeta.stoi.set(s, i); });
            return texts.map(t => { const f = I.fillMaskInput(t, meta), d = I.prepareDate(t, dmeta);
                                    return [f.ids, f.tokens, f.error, f.notes, d.text, d.ids, d.messages]; });
        }""",
        texts,
    )
    bad = []
    for text, (ids, tokens, error, notes, d_text, d_ids, d_messages) in zip(texts, got):
        f = bd.fill_mask_input(text, tokenizer, model.config.max_len)
        d = bd.prepare_date_input(text, task.src_vocab, bd.date_max_chars(task))
        if (ids, tokens, error, notes) != (f.ids, f.tokens, f.error, f.notes) or (d_text, d_ids, d_messages) != tuple(d):
            bad.append(text)
    assert not bad, f"{len(bad)} of {len(texts)} strings tokenised differently, e.g. {bad[:5]!r}"
    _no_errors(log, CH08)
    page.close()


def test_pages_say_how_to_serve_them_from_disk(browser_context):
    page = browser_context.new_page()
    try:
        for path, kind in ((CH01, "dates"), (CH08, "fill-mask")):
            page.goto((BOOK_HTML / _page(path)).as_uri(), wait_until="load")
            status = _demo(page, kind).locator(".course-demo-status").inner_text()
            assert "python -m http.server" in status, status
            assert _demo(page, kind).locator(".course-demo-input").is_disabled()
    finally:
        page.close()


# --------------------------------------------------------------------------- the heatmaps' colour bar

BAR_INPUTS = (
    (CH01, "dates", ("Sat, 4 Jul 1976", "12.3.45")),
    (CH08, "fill-mask", ("the rain falls [MASK] .", "the [MASK] barks .")),
)


def _pixel(image, x, y):
    return np.array(image.getpixel((round(x), round(y)))[:3], dtype=float)


@pytest.mark.parametrize("path, kind, texts", BAR_INPUTS, ids=["ch01", "ch08"])
def test_heatmap_has_a_colour_bar_on_its_own_scale(site, browser_context, path, kind, texts):
    """Each demo heatmap has a colour bar: labelled 0 and 1 at its ends (the fixed scale the cells
    are coloured on, which the bar says), readable ticks, a text alternative, and it fits a phone.

    The colours are compared as rendered (a screenshot): the darkest, the lightest and a middle
    cell each look like the bar at the position of their weight. A bar on another scale (say 0 to
    the map's largest weight), a reversed bar, or a heatmap rescaled per input fails this (the
    last only where the map's largest weight is well below 1: chapter 8's heads; chapter 1's
    confident rows reach 0.99)."""
    from io import BytesIO

    from PIL import Image

    page, log = _open(browser_context, site, path)
    demo = _demo(page, kind)
    worst = 0.0
    for text in texts:
        _type(page, kind, text)
        figure = demo.locator(".course-demo-figure")
        bar = figure.locator(".course-demo-colourbar")
        assert bar.count() == 1, f"{path}: no colour bar under the heatmap for {text!r}"
        scale = bar.locator("svg")
        assert scale.get_attribute("role") == "img"
        label = scale.get_attribute("aria-label")
        assert "attention weight" in label and "from 0 " in label and "to 1 " in label, label
        said = bar.inner_text()
        assert "attention weight" in said and "fixed scale from 0 to 1" in said, said
        ticks = bar.locator("text").evaluate_all(
            """ts => ts.map(t => { const b = t.getBoundingClientRect();
                                  return [t.textContent, +t.dataset.value, parseFloat(getComputedStyle(t).fontSize),
                                          b.left + b.width / 2]; })"""
        )
        rect = bar.locator("rect").evaluate(
            "r => { const b = r.getBoundingClientRect(); return [b.left, b.top, b.width, b.height, +r.dataset.lo, +r.dataset.hi]; }"
        )
        left, top, width, height, lo, hi = rect
        assert (lo, hi) == (0.0, 1.0), rect
        assert (ticks[0][0], ticks[-1][0]) == ("0", "1"), ticks  # the end labels name the scale's ends
        for shown, value, size, centre in ticks:
            assert size >= 9, f"{path}: tick {shown!r} at {size} px"
            assert float(shown) == pytest.approx(value)
            assert abs(centre - (left + width * (value - lo) / (hi - lo))) <= 2, (shown, centre, rect)

        # rendered colours: cells against the bar at their weight
        figure.scroll_into_view_if_needed()
        cells = figure.locator("rect[data-w]").evaluate_all(
            "rs => rs.map(r => { const b = r.getBoundingClientRect(); return [+r.dataset.w, b.left + b.width / 2, b.top + b.height / 2]; })"
        )
        rect = bar.locator("rect").evaluate("r => { const b = r.getBoundingClientRect(); return [b.left, b.top, b.width, b.height]; }")
        left, top, width, height = rect
        image = Image.open(BytesIO(page.screenshot())).convert("RGB")
        zoom = image.width / page.viewport_size["width"]
        cells.sort()
        chosen = {"lightest": cells[0], "middle": cells[len(cells) // 2], "darkest": cells[-1]}
        assert cells[-1][0] - cells[0][0] > 0.3, f"{path}: {text!r} gives too flat a map to test colours: {cells[0][0]}..{cells[-1][0]}"
        for name, (w, x, y) in chosen.items():
            at = left + width * min(max((w - lo) / (hi - lo), 0.01), 0.99)  # 1% in from the ends, inside the outline
            on_bar = _pixel(image, at * zoom, (top + height / 2) * zoom)
            in_cell = _pixel(image, x * zoom, y * zoom)
            worst = max(worst, float(np.abs(on_bar - in_cell).max()))
            assert np.abs(on_bar - in_cell).max() <= 8, (
                f"{path} {text!r}: the {name} cell (weight {w:.3f}) is {in_cell}, the bar at {w:.3f} is {on_bar}"
            )
        caption = figure.locator("figcaption").inner_text()
        assert "colour bar" in caption and "darker = more weight" not in caption, caption
    print(f"\n{path}: cells vs colour bar at their weight, {3 * len(texts)} cells: max RGB difference {worst:.0f} of 255")

    # at a phone's width the bar and its text stay inside the page
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(200)
    right = bar.evaluate("b => Math.max(...[b, ...b.querySelectorAll('svg, p')].map(e => e.getBoundingClientRect().right))")
    assert right <= 390, f"{path}: the colour bar reaches {right} px at a 390 px viewport"
    assert bar.evaluate("b => b.scrollWidth <= b.clientWidth + 1"), f"{path}: the colour bar overflows its box at 390 px"
    _no_errors(log, path)
    page.close()


@pytest.mark.parametrize("path", [CH01, CH08], ids=["ch01", "ch08"])
def test_page_carries_the_current_demo_script(path):
    """The script is inlined into the chapter's output when the chapter executes, so a cached
    rebuild keeps an old one: the page must carry today's course_lib/book/web/demos.js and demos.css."""
    page = (BOOK_HTML / _page(path)).read_text(encoding="utf-8")
    for name in ("demos.js", "demos.css"):
        assert (bd.WEB / name).read_text(encoding="utf-8") in page, (
            f"{path} carries an older course_lib/book/web/{name} than the repository's: the chapter's output came "
            "from the jupyter cache; re-execute it (delete its entry in _build/.jupyter_cache, or `make clean`) and rebuild"
        )
