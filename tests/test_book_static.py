"""Checks on the built book's HTML, page by page, with no browser.

For every page of the table of contents (read from _toc.yml when the tests run):

* every figure has a caption or alt text: each <img> has a real alt text (not the
  file name docutils puts there by default) or sits in a <figure> with a <figcaption>;
* headings are in order: one <h1>, first, and no level skipped (h2 -> h4);
* the sidebar reaches every page of the table of contents (chapters, the exercises
  guide, the grading guide);
* no script, stylesheet, image or frame is loaded from outside the site, and no
  stylesheet of the site imports anything from outside.

The site is `_build/html` (`make test` builds it first) or COURSE_BOOK_HTML.
"""

from __future__ import annotations

import os
import pathlib
import posixpath
import re
from urllib.parse import unquote, urlparse

import pytest

from course_lib.book.timing import ROOT, toc_files

BOOK_HTML = pathlib.Path(os.environ.get("COURSE_BOOK_HTML", ROOT / "_build" / "html")).resolve()
BOOK_SOURCE = pathlib.Path(os.environ.get("COURSE_BOOK_SOURCE", ROOT))  # where _toc.yml is
PAGES = toc_files(BOOK_SOURCE)

pytestmark = pytest.mark.skipif(not BOOK_HTML.is_dir(), reason=f"no built book at {BOOK_HTML}: run `make book` first (make test does)")


def _soup(page: str):
    from bs4 import BeautifulSoup

    path = BOOK_HTML / f"{page}.html"
    assert path.exists(), f"{page}.html is not in the built book at {BOOK_HTML}"
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def _article(soup):
    return soup.select_one("article.bd-article") or soup.find("article") or soup.body


def test_toc_lists_the_guides():
    for guide in ("chapters/exercises_guide", "chapters/grading_guide"):
        assert guide in PAGES, f"_toc.yml does not list {guide}: the sidebar cannot reach it"


@pytest.mark.parametrize("page", PAGES)
def test_every_image_has_alt_text_or_caption(page):
    soup = _soup(page)
    bad = []
    for img in soup.find_all("img"):
        src = img.get("src", "")
        alt = (img.get("alt") or "").strip()
        # docutils (and so myst-nb) fills a missing alt with the image's path: that is no description
        real_alt = bool(alt) and alt != src and posixpath.basename(alt) != posixpath.basename(src)
        figure = img.find_parent("figure")
        caption = figure.find("figcaption") if figure else None
        if not real_alt and not (caption and caption.get_text(strip=True)):
            bad.append(src)
    assert not bad, (
        f"{page}: {len(bad)} image(s) with neither alt text nor a caption: {bad}. In a notebook cell, set "
        'metadata {"mystnb": {"figure": {"caption": "...", "name": "fig-..."}, "image": {"alt": "..."}}}'
    )


@pytest.mark.parametrize("page", PAGES)
def test_headings_are_in_order(page):
    headings = [(int(h.name[1]), h.get_text(" ", strip=True).rstrip("#").strip()) for h in _article(_soup(page)).find_all(re.compile(r"^h[1-6]$"))]
    assert headings, f"{page}: no heading at all"
    assert headings[0][0] == 1, f"{page}: the first heading is h{headings[0][0]} {headings[0][1]!r}, expected the page title as h1"
    h1s = [text for level, text in headings if level == 1]
    assert len(h1s) == 1, f"{page}: {len(h1s)} h1 headings {h1s}, expected exactly one (the title; then ##, ###)"
    for (prev, _), (level, text) in zip(headings, headings[1:]):
        assert level <= prev + 1, f"{page}: heading {text!r} is h{level} right after an h{prev}: a level is skipped"


def _resolve(page: str, href: str) -> str | None:
    """The toc page an internal link points to (without .html), or None for other links."""
    parsed = urlparse(href)
    if parsed.scheme or parsed.netloc or not parsed.path:
        return None
    target = posixpath.normpath(posixpath.join(posixpath.dirname(page), unquote(parsed.path)))
    return target[: -len(".html")] if target.endswith(".html") else None


@pytest.mark.parametrize("page", PAGES)
def test_sidebar_reaches_every_page(page):
    soup = _soup(page)
    nav = soup.select_one("nav.bd-docs-nav") or soup.select_one(".bd-sidebar-primary")
    assert nav is not None, f"{page}: no sidebar navigation (nav.bd-docs-nav) found"
    reached = {_resolve(page, a["href"]) for a in nav.find_all("a", href=True)}
    # the root page is the book's home: the sidebar's logo/title link, or a toc entry
    home = soup.select_one(".navbar-brand, a.logo__link, .bd-sidebar-primary a[href]")
    if home is not None and home.get("href"):
        reached.add(_resolve(page, home["href"]))
    if _resolve(page, "index.html") in reached:
        reached.add(PAGES[0])
    missing = [p for p in PAGES if p not in reached and p != page]
    assert not missing, f"{page}: the sidebar has no link to {missing}"


_OUTSIDE = re.compile(r"^(https?:)?//", re.I)


@pytest.mark.parametrize("page", PAGES)
def test_page_loads_nothing_from_outside(page):
    soup = _soup(page)
    outside = []
    for tag, attr in (("script", "src"), ("img", "src"), ("iframe", "src"), ("source", "src"), ("video", "src"), ("audio", "src"), ("embed", "src")):
        outside += [f"<{tag} {attr}={el[attr]}>" for el in soup.find_all(tag) if el.get(attr) and _OUTSIDE.match(el[attr])]
    for link in soup.find_all("link", href=True):
        rel = set(link.get("rel") or [])
        if rel & {"stylesheet", "preload", "modulepreload", "icon", "prefetch"} and _OUTSIDE.match(link["href"]):
            outside.append(f"<link rel={' '.join(sorted(rel))} href={link['href']}>")
    assert not outside, f"{page} loads from outside the site: {outside}"


def test_stylesheets_import_nothing_from_outside():
    bad = []
    for css in (BOOK_HTML / "_static").rglob("*.css"):
        text = css.read_text(encoding="utf-8", errors="replace")
        for match in re.finditer(r"""(?:@import\s+(?:url\()?|url\()\s*['"]?((?:https?:)?//[^'")\s]+)""", text):
            bad.append(f"{css.relative_to(BOOK_HTML)}: {match.group(1)}")
    assert not bad, f"stylesheets fetch from outside the site: {bad[:10]}"
