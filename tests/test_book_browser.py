"""The built book in a real browser, offline: Debian's Chromium driven by Playwright.

For every page of the table of contents (read from _toc.yml when the tests run, so
new chapters are covered as they land), served from 127.0.0.1 by a thread of this
process:

* no request leaves 127.0.0.1 (every request is recorded; others are aborted and fail the test),
  and no local file is missing (HTTP status >= 400);
* maths is typeset where the page has maths (MathJax output inside every .math element,
  no TeX error, no raw $$ or \\( \\[ delimiters left in the text);
* every image loads (naturalWidth > 0);
* widgets render their initial state where the page has widget outputs;
* bertviz draws its SVG where the page has a bertviz view;
* the browser console shows no error beyond CONSOLE_ALLOWED below;
* a full-page screenshot is saved to _build/screenshots/<page>.png.

And the book's search page finds each page by a word of its text.

The site is `_build/html` (built by `make book`, which `make test` runs first), or the
folder named by COURSE_BOOK_HTML (with its _toc.yml in COURSE_BOOK_SOURCE, default: the repository).
Chromium: /usr/bin/chromium (`make test` installs
the Debian package when it is missing and we are root), or COURSE_CHROMIUM (see tests/browser.py);
never `playwright install`.
"""

from __future__ import annotations

import collections
import json
import pathlib
import re
import time
from urllib.parse import quote

import pytest

from browser import BOOK_HTML, BOOK_SOURCE, SCREENSHOTS, allowed as _allowed, open_page as _open
from course_lib.book.timing import toc_files

PAGES = toc_files(BOOK_SOURCE)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not BOOK_HTML.is_dir(), reason=f"no built book at {BOOK_HTML}: run `make book` first (make test does)"),
]


_WAIT_FOR_MATHJAX = """async () => {
  // MathJax is loaded with `defer`; startup.promise settles after the first typesetting pass.
  const t0 = Date.now();
  while (document.querySelector('.math') && !(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
    if (Date.now() - t0 > 20000) return 'MathJax never started';
    await new Promise(r => setTimeout(r, 50));
  }
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  return '';
}"""

_MATHS_REPORT = """() => {
  const maths = Array.from(document.querySelectorAll('.math'));
  const untypeset = maths.filter(m => !m.querySelector('mjx-container') && m.tagName !== 'MJX-CONTAINER')
                         .map(m => m.textContent.trim().slice(0, 80));
  const errors = Array.from(document.querySelectorAll('mjx-merror')).map(e => e.textContent.slice(0, 80));
  // raw TeX delimiters left in the article's text, outside code
  const article = document.querySelector('article') || document.body;
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  const raw = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.parentElement.closest('pre, code, script, style, mjx-container, .highlight, textarea')) continue;
    if (/\\$\\$|\\\\\\(|\\\\\\[|\\\\begin\\{/.test(n.textContent)) raw.push(n.textContent.trim().slice(0, 80));
  }
  return {count: maths.length, typeset: document.querySelectorAll('mjx-container').length, untypeset, errors, raw};
}"""

_IMAGES_REPORT = """async () => {
  const images = Array.from(document.images);
  images.forEach(img => { img.loading = 'eager'; });
  await Promise.all(images.map(img => img.complete ? null : new Promise(r => { img.onload = img.onerror = r; setTimeout(r, 10000); })));
  return {count: images.length, broken: images.filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.getAttribute('src'))};
}"""

_WIDGETS_RENDERED = """() => {
  const views = Array.from(document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]'));
  return views.every(v => {
    const area = v.parentElement.querySelector('.widget-subarea');
    return area && area.querySelector('.jupyter-widgets') && area.getBoundingClientRect().height > 0;
  });
}"""

_WIDGET_VALUES = """() => {
  const areas = Array.from(document.querySelectorAll('.widget-subarea'));
  const inputs = areas.flatMap(a => Array.from(a.querySelectorAll('input, textarea')).map(i => i.value));
  const readouts = areas.flatMap(a => Array.from(a.querySelectorAll('.widget-readout')).map(r => (r.value !== undefined && r.value !== '' ? r.value : r.textContent).trim()));
  return {inputs, readouts};
}"""

_BERTVIZ_DRAWN = """() => Array.from(document.querySelectorAll('div[id^="bertviz-"]'))
  .every(div => { const svg = div.querySelector('svg'); return svg && svg.querySelectorAll('line, rect, text').length > 0; })"""


def _widget_expectations(page_html: str) -> list[tuple[str, str]]:
    """(kind, value) pairs the rendered widgets must show, from the page's saved widget state."""
    match = re.search(r'<script type="application/vnd.jupyter.widget-state\+json">(.*?)</script>', page_html, re.S)
    if not match:
        return []
    state = json.loads(match.group(1))["state"]
    expected = []
    for model in state.values():
        name, s = model.get("model_name", ""), model.get("state", {})
        if name in ("TextModel", "TextareaModel") and s.get("value"):
            expected.append(("input", str(s["value"])))
        elif name in ("IntSliderModel",) and s.get("readout", True):
            expected.append(("readout", str(s.get("value"))))
    return expected


def _page_file(page: str) -> pathlib.Path:
    return BOOK_HTML / f"{page}.html"


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_offline(page, site, browser_context):
    path = _page_file(page)
    assert path.exists(), f"{page}.html is not in the built book at {BOOK_HTML}"
    source = path.read_text(encoding="utf-8")
    started = time.perf_counter()
    tab, log = _open(browser_context, site + quote(f"{page}.html"))
    try:
        problems: list[str] = []

        started_maths = tab.evaluate(_WAIT_FOR_MATHJAX)
        if started_maths:
            problems.append(started_maths)
        maths = tab.evaluate(_MATHS_REPORT)
        if maths["count"]:
            if maths["untypeset"]:
                problems.append(f"{len(maths['untypeset'])} of {maths['count']} maths elements not typeset by MathJax, e.g. {maths['untypeset'][:3]}")
            if maths["errors"]:
                problems.append(f"MathJax TeX errors: {maths['errors'][:3]}")
        if maths["raw"]:
            problems.append(f"raw TeX delimiters left in the text: {maths['raw'][:3]}")

        images = tab.evaluate(_IMAGES_REPORT)
        if images["broken"]:
            problems.append(f"images that did not load: {images['broken']}")

        n_views = source.count('type="application/vnd.jupyter.widget-view+json"')
        if n_views:
            try:
                tab.wait_for_function(_WIDGETS_RENDERED, timeout=20_000)
            except Exception:
                problems.append(f"{n_views} widget views on the page, not all rendered by the widget manager")
            values = tab.evaluate(_WIDGET_VALUES)
            for kind, value in _widget_expectations(source):
                shown = values["inputs"] if kind == "input" else values["readouts"]
                if value not in shown:
                    problems.append(f"widget {kind} should show its saved value {value!r}; the page shows {shown}")

        if 'id="bertviz-' in source:
            try:
                tab.wait_for_function(_BERTVIZ_DRAWN, timeout=20_000)
            except Exception:
                problems.append("a bertviz view did not draw its SVG")

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(SCREENSHOTS / f"{page.replace('/', '__')}.png"), full_page=True)
        tab.wait_for_timeout(200)  # late console messages (e.g. from widget rendering)

        if log.outside:
            problems.append(f"requests left 127.0.0.1: {sorted(set(log.outside))}")
        if log.failed:
            problems.append(f"local files missing: {log.failed}")
        errors = [e for e in log.errors if not _allowed(e)]
        if errors:
            problems.append(f"console errors: {errors}")
        print(f"{page}: {len(log.requests)} requests, {maths['count']} maths, {images['count']} images, "
              f"{n_views} widget views, {time.perf_counter() - started:.1f} s")
        assert not problems, f"{page}.html:\n  " + "\n  ".join(problems)
    finally:
        tab.close()


_STOPWORDS = set(
    "about above after again against also because been before being below between both cannot could does doing down "
    "during each every from further have having here into itself just more most only other over same should some such "
    "than that their theirs them then there these they this those through under until very were what when where which "
    "while with would your yours chapter".split()
)


def _page_words(page: str) -> collections.Counter:
    """Words of a page's own paragraphs (not the shared sidebar), as Sphinx's search can find them."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_page_file(page).read_text(encoding="utf-8"), "html.parser")
    article = soup.find("article") or soup
    text = " ".join(p.get_text(" ") for p in article.find_all(["p", "h1", "h2", "h3", "li"]))
    words = re.findall(r"\b[a-z]{5,}\b", text.lower())
    return collections.Counter(w for w in words if w not in _STOPWORDS)


def _search_word(page: str) -> str:
    """The word of this page that the fewest other pages contain (ties: the most frequent on the page)."""
    words = {p: _page_words(p) for p in PAGES if _page_file(p).exists()}
    mine = words[page]
    assert mine, f"{page}.html has no searchable words"
    return min(mine, key=lambda w: (sum(w in other for other in words.values()), -mine[w], w))


@pytest.mark.parametrize("page", PAGES)
def test_search_finds_page(page, site, browser_context):
    word = _search_word(page)
    tab, log = _open(browser_context, site + f"search.html?q={quote(word)}")
    try:
        tab.wait_for_function(
            """() => { const s = document.querySelector('#search-results .search-summary');
                       return s && /finished|did not match/i.test(s.textContent); }""",
            timeout=30_000,
        )
        links = tab.eval_on_selector_all("#search-results ul.search li a", "els => els.map(a => a.getAttribute('href'))")
        found = {re.sub(r"(\.html)?([?#].*)?$", "", link) for link in links}
        assert page in found, f"searching the book for {word!r} (a word of {page}) did not list {page}: got {sorted(found)}"
        assert not log.outside, f"the search page made requests outside 127.0.0.1: {log.outside}"
        errors = [e for e in log.errors if not _allowed(e)]
        assert not errors, f"console errors on the search page: {errors}"
    finally:
        tab.close()
