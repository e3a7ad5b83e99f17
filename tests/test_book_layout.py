"""No page of the built book scrolls sideways, on a phone (390 px) or a laptop (1280 px).

For every page of the table of contents, in Chromium at each width: the page's
document.documentElement.scrollWidth is at most the viewport width. Wide content (tables,
display equations, code) must fit the column or scroll inside its own box, never move the page.
When a page fails, the message names the widest elements that stick out, to find them quickly.

The site is `_build/html`, or COURSE_BOOK_HTML (see tests/browser.py).
"""

from __future__ import annotations

import pytest

from browser import BOOK_HTML, BOOK_SOURCE, open_page
from course_lib.book.timing import toc_files

PAGES = toc_files(BOOK_SOURCE)
WIDTHS = (390, 1280)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not BOOK_HTML.is_dir(), reason=f"no built book at {BOOK_HTML}: run `make book` first (make test does)"),
]

_OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const culprits = [];
  for (const el of document.querySelectorAll('body *')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.right <= width + 1) continue;
    // only the outermost element sticking out, and only if no scrolling box holds it
    let inner = false;
    for (let p = el.parentElement; p; p = p.parentElement) {
      const style = getComputedStyle(p);
      if (['auto', 'scroll', 'hidden'].includes(style.overflowX)) { inner = true; break; }
    }
    if (inner) continue;
    const name = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
                 (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
    culprits.push(`${name} (right edge ${Math.round(box.right)} px)`);
    if (culprits.length >= 8) break;
  }
  return {scroll: document.documentElement.scrollWidth, width, culprits};
}"""


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page", PAGES)
def test_page_does_not_scroll_sideways(page, width, site, browser_context):
    path = BOOK_HTML / f"{page}.html"
    assert path.exists(), f"{page}.html is not in the built book at {BOOK_HTML}"
    tab, _log = open_page(browser_context, site + f"{page}.html")
    try:
        tab.set_viewport_size({"width": width, "height": 900})
        tab.wait_for_timeout(300)  # let the theme re-lay out the page at the new width
        report = tab.evaluate(_OVERFLOW)
    finally:
        tab.close()
    assert report["scroll"] <= width, (
        f"{page} at {width} px is {report['scroll']} px wide: it scrolls sideways. Sticking out: "
        + "; ".join(report["culprits"] or ["(nothing found outside a scrolling box)"])
    )


def test_the_measure_catches_a_wide_page_and_spares_a_scrolling_box(browser_context):
    tab = browser_context.new_page()
    try:
        tab.set_viewport_size({"width": 390, "height": 900})
        tab.set_content('<body style="margin:0"><div style="overflow-x:auto">'
                        '<table style="width:900px"><tr><td>wide, but in its own scroller</td></tr></table></div></body>')
        fits = tab.evaluate(_OVERFLOW)
        tab.set_content('<body style="margin:0"><p>text</p><table id="wide" style="width:900px"><tr><td>x</td></tr></table></body>')
        wide = tab.evaluate(_OVERFLOW)
    finally:
        tab.close()
    assert fits["scroll"] <= 390 and not fits["culprits"]
    assert wide["scroll"] > 390 and wide["culprits"][0].startswith("table#wide")
