"""The demos and explorers by touch on a phone (issue 21, item 3): 390 x 844 CSS px, a touchscreen.

For each in-page model demo (chapters 1 and 8) and each explorer (chapters 3 and 5), Chromium
emulates a phone (``is_mobile``, ``has_touch``) and the test does the touching with
``page.touchscreen.tap``:

* every control (text box, button, select, slider) lies inside the 390 px viewport, with no
  sideways scrolling of the page or of its box, and is at least 24 x 24 CSS px (WCAG 2.2, 2.5.8);
* the demo runs when its box is tapped and typed into; its answer and read-outs wrap inside
  the column (the date is never broken at a hyphen);
* tapping a heatmap cell shows what hovering shows (the cell's weight, in the read-out line);
* tapping a slider of an explorer changes the chart's read-out.
"""

from __future__ import annotations

import pytest
from browser import BOOK_HTML, allowed, open_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not BOOK_HTML.is_dir(), reason=f"no built book at {BOOK_HTML}: run `make book` first (make test does)"),
]

PHONE = {"width": 390, "height": 844}
MIN_TARGET = 24
DEMOS = (("chapters/01_seq2seq_attention", "dates", "the 4th of july 1976"),
         ("chapters/08_bert", "fill-mask", "the [MASK] barks ."))  # fmt: skip
EXPLORERS = ("chapters/03_scaled_dot_product", "chapters/05_positional_encoding")


@pytest.fixture(scope="module")
def phone(tmp_path_factory):
    """A phone: one Chromium of its own (this module does not use the shared browser_context), 390 x 844, touch."""
    from browser import CHROMIUM_ARGS, find_browser
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_browser(), headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2,
                                      service_workers="block")  # fmt: skip
        context.set_default_timeout(30_000)
        yield context
        browser.close()


def _open(phone, site, page):
    tab, log = open_page(phone, site + f"{page}.html")
    tab.wait_for_load_state("networkidle")
    return tab, log


_CONTROLS = """(root) => Array.from(document.querySelectorAll(root)).flatMap(r =>
  Array.from(r.querySelectorAll('input, button, select')).filter(e => e.type !== 'hidden').map(e => {
    const b = e.getBoundingClientRect();
    return {what: e.tagName.toLowerCase() + (e.className ? '.' + String(e.className).split(' ')[0] : '') + (e.name ? '[' + e.name + ']' : ''),
            left: b.left, right: b.right, width: b.width, height: b.height};
  }))"""

_OVERFLOW = """() => ({page: document.documentElement.scrollWidth, viewport: window.innerWidth})"""


def _check_controls(tab, root: str, page: str) -> list[str]:
    problems = []
    for c in tab.evaluate(_CONTROLS, root):
        if c["left"] < -0.5 or c["right"] > PHONE["width"] + 0.5:
            problems.append(f"{c['what']} at x {c['left']:.0f}-{c['right']:.0f}: outside the {PHONE['width']} px screen")
        if c["width"] < MIN_TARGET or c["height"] < MIN_TARGET:
            problems.append(f"{c['what']} is {c['width']:.0f} x {c['height']:.0f} px, under {MIN_TARGET} x {MIN_TARGET}")
    widths = tab.evaluate(_OVERFLOW)
    if widths["page"] > widths["viewport"] + 1:
        problems.append(f"the page scrolls sideways: {widths['page']} px wide in a {widths['viewport']} px screen")
    return problems


def _tap(tab, locator):
    box = locator.bounding_box()
    assert box, f"{locator} is not on screen"
    tab.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


@pytest.mark.parametrize("page, kind, text", DEMOS, ids=["ch01", "ch08"])
def test_demo_by_touch(page, kind, text, site, phone):
    tab, log = _open(phone, site, page)
    try:
        demo = tab.locator(f"#course-demo-{kind}")
        demo.scroll_into_view_if_needed()
        box = demo.locator(".course-demo-input")
        _tap(tab, box)
        box.fill(text)
        tab.wait_for_function("([id, t]) => document.getElementById(id).dataset.renderedFor === t",
                              arg=[f"course-demo-{kind}", text], timeout=120_000)  # fmt: skip
        problems = _check_controls(tab, f"#course-demo-{kind}", page)
        right = demo.evaluate("d => Math.max(...Array.from(d.querySelectorAll('p, svg, table, li')).map(e => e.getBoundingClientRect().right))")
        if right > PHONE["width"] + 0.5:
            problems.append(f"the demo's output reaches x = {right:.0f}")
        if kind == "dates":
            decoded = demo.locator(".course-demo-decoded")
            lines = decoded.evaluate("e => e.getClientRects().length")
            if lines != 1:
                problems.append(f"the answer {decoded.inner_text()!r} is broken over {lines} lines")
        cells = demo.locator("rect[data-w]")
        cell = cells.nth(cells.count() // 2)
        cell.scroll_into_view_if_needed()
        _tap(tab, cell)
        said = demo.locator(".course-demo-readout").inner_text()
        hover = cell.locator("title").text_content()
        if said != hover:
            problems.append(f"tapping a cell shows {said!r}, hovering shows {hover!r}")
        if kind == "fill-mask":
            for name in ("layer", "head"):
                select = demo.locator(f".course-demo-{name}")
                _tap(tab, select)
                select.select_option("1")
            tab.wait_for_function("() => document.getElementById('course-demo-fill-mask').dataset.attentionShown === '1,1'")
        errors = [e for e in log.errors if not allowed(e) and "Failed to load resource" not in e]
        assert not errors, errors
        assert not problems, f"{page} at {PHONE['width']} px:\n  " + "\n  ".join(problems)
    finally:
        tab.close()


#: Issue 21 item 3 is done for the demos, not yet for the explorers: their sliders are 16 px high
#: (under 24) and ch05's sit right of the 390 px screen. Strict: the mark must go when they are fixed.
EXPLORERS_PENDING = pytest.mark.xfail(strict=True, reason="issue 21 item 3: the explorers do not reflow at 390 px yet")


@pytest.mark.parametrize("page", [pytest.param(p, marks=EXPLORERS_PENDING) for p in EXPLORERS], ids=["ch03", "ch05"])
def test_explorer_by_touch(page, site, phone):
    from course_lib.explorers import MARKER

    html = (BOOK_HTML / f"{page}.html").read_text(encoding="utf-8")
    assert MARKER in html, f"{page} holds no explorer"
    tab, _log = _open(phone, site, page)
    try:
        tab.wait_for_function("() => document.querySelectorAll('.vega-bindings input').length > 0", timeout=30_000)
        problems = _check_controls(tab, ".vega-embed", page)
        cut = tab.evaluate("""() => Array.from(document.querySelectorAll('.vega-embed')).map(v => {
            const box = v.closest('.output, .cell_output') || v.parentElement;
            return box.scrollWidth - box.clientWidth; })""")
        if any(c > 1 for c in cut):
            problems.append(f"an explorer's box scrolls sideways by {max(cut)} px")
        slider = tab.locator(".vega-bindings input[type=range]").first
        slider.scroll_into_view_if_needed()
        before = slider.input_value()
        b = slider.bounding_box()
        tab.touchscreen.tap(b["x"] + b["width"] * 0.85, b["y"] + b["height"] / 2)
        tab.wait_for_timeout(300)
        if slider.input_value() == before:
            problems.append("tapping near the end of the first slider did not move it")
        assert not problems, f"{page} at {PHONE['width']} px:\n  " + "\n  ".join(problems)
    finally:
        tab.close()
