"""Figure labels are readable where they are drawn: at least 9 px, on a laptop and on a phone.

Issue 16: several figures were shrunk to half size with 5-7 px labels. The chapters now draw
figures as SVG, at most 7.8 in wide, with labels of at least 9 pt; the book's column shrinks a
figure that is wider than itself, and `_static/course-layout.css` keeps figures at 0.8 of their
natural size on a phone (their output box scrolls sideways).

This measures what a reader sees. For every figure of every page, in Chromium at 1280 and at
390 px: the width the image is drawn at, over the SVG's own width in points, times the size in
points of the smallest text the SVG holds (Matplotlib draws text as glyph paths scaled by
font size / 100, or as <text> with a font size), is the size of that text on the screen in CSS px.
Raster figures (PNG) cannot be measured that way; they are listed and must stay on RASTER_OK.
"""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

import pytest

from browser import BOOK_HTML, BOOK_SOURCE, open_page
from course_lib.book.timing import toc_files

PAGES = toc_files(BOOK_SOURCE)
WIDTHS = (390, 1280)
MIN_PX = 9.0

#: Superscripts and subscripts (10^3 on a log axis, d_k) are drawn smaller than the label they
#: belong to (Matplotlib's mathtext: 0.7 of it). They are not counted when smaller than this
#: share of the figure's most common text size.
SCRIPT_SHARE = 0.75

#: Pages whose raster figures are accepted, with the reason. Every other figure is SVG.
RASTER_OK: dict[str, str] = {}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not BOOK_HTML.is_dir(), reason=f"no built book at {BOOK_HTML}: run `make book` first (make test does)"),
]

_POINTS = {"pt": 1.0, "px": 0.75, "in": 72.0, "": 0.75}
_GLYPH_SCALE = re.compile(r'transform="[^"]*scale\(([0-9.]+) -\1\)"')
_FONT_SIZE = re.compile(r"font(?:-size)?:\s*(?:[a-z]+\s+)*([0-9.]+)px")


def svg_text_sizes(svg: str) -> tuple[float, list[float]]:
    """(width of the drawing in pt, sizes in pt of every piece of text in it)."""
    head = re.search(r"<svg[^>]*>", svg)
    if head is None:
        raise ValueError("not an SVG document: no <svg> element")
    width = re.search(r'\swidth="([0-9.]+)([a-z]*)"', head.group(0))
    if width is None:
        raise ValueError(f"the SVG has no width attribute: {head.group(0)[:120]}")
    width_pt = float(width.group(1)) * _POINTS.get(width.group(2), 0.75)
    sizes = [float(s) * 100 for s in _GLYPH_SCALE.findall(svg)]  # Matplotlib's text as paths
    sizes += [float(s) * 0.75 for s in _FONT_SIZE.findall(svg)]  # svg.fonttype "none"
    return width_pt, sizes


def label_sizes(sizes: list[float]) -> list[float]:
    """The sizes that are labels, not superscripts of a label (see SCRIPT_SHARE)."""
    if not sizes:
        return []
    common = max(set(sizes), key=sizes.count)
    return [s for s in sizes if s >= SCRIPT_SHARE * common]


_FIGURES = """() => [...document.querySelectorAll('.cell_output img')]
  .filter(img => img.getBoundingClientRect().width > 0)
  .map(img => ({src: img.currentSrc || img.src, drawn: img.getBoundingClientRect().width,
                alt: (img.alt || '').slice(0, 60)}))"""


def _file(url: str, site: str) -> Path:
    path = urllib.parse.urlparse(url).path
    prefix = urllib.parse.urlparse(site).path
    return BOOK_HTML / urllib.parse.unquote(path[len(prefix):] if path.startswith(prefix) else path.lstrip("/"))


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page", PAGES)
def test_figure_labels_are_readable(page, width, site, browser_context):
    tab, _log = open_page(browser_context, site + f"{page}.html")
    try:
        tab.set_viewport_size({"width": width, "height": 900})
        tab.wait_for_timeout(300)
        figures = tab.evaluate(_FIGURES)
    finally:
        tab.close()
    small, raster = [], []
    for fig in figures:
        file = _file(fig["src"], site)
        if file.suffix.lower() != ".svg":
            raster.append(file.name)
            continue
        width_pt, sizes = svg_text_sizes(file.read_text(encoding="utf-8"))
        labels = label_sizes(sizes)
        if not labels:
            continue  # a drawing without text
        # a pt of the drawing is 4/3 CSS px at natural size, and the figure is drawn at
        # drawn / (width_pt * 4/3) of that: on screen, a pt of it is drawn / width_pt px
        smallest = min(labels) * fig["drawn"] / width_pt
        if smallest < MIN_PX:
            small.append(f"{file.name} ('{fig['alt']}'): {min(labels):.1f} pt drawn at "
                         f"{fig['drawn'] / (width_pt * 4 / 3):.2f} of its size = {smallest:.1f} px")
    if page not in RASTER_OK:
        assert not raster, f"{page}: raster figures (draw them as SVG, or list the page in RASTER_OK with the reason): {raster}"
    assert not small, f"{page} at {width} px: labels under {MIN_PX} px:\n" + "\n".join(small)


def test_the_measure_reads_glyph_paths_and_text_sizes():
    paths = ('<svg width="540pt" height="100pt"><g transform="translate(1 2) scale(0.09 -0.09)"/>'
             '<g transform="translate(3 4) scale(0.1 -0.1)"/><g transform="scale(0.1 -0.1)"/>'
             '<g transform="translate(5 6) scale(0.063 -0.063)"/></svg>')
    width, sizes = svg_text_sizes(paths)
    assert width == 540 and sorted(sizes) == pytest.approx([6.3, 9, 10, 10])
    assert sorted(label_sizes(sizes)) == pytest.approx([9, 10, 10])  # the 6.3 pt superscript is set aside
    text = '<svg width="720px"><text style="font: 12px \'DejaVu Sans\'">a</text></svg>'
    assert svg_text_sizes(text) == (540, [9.0])
    with pytest.raises(ValueError, match="no width"):
        svg_text_sizes("<svg><g/></svg>")
