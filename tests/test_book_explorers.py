"""The explorers (course_lib.explorers) in the built book, in Chromium, with no kernel and offline.

Each explorer is a Vega-Lite chart whose sliders filter data precomputed at build time. For each
one, the test moves every slider (sets the input's value and dispatches input/change events, as a
drag does) and checks that the figure shows the precomputed values for that setting: the SVG
marks' aria-labels (Vega writes each mark's fields there) and the text read-outs, against the
data embedded in the page and, where there is a formula, against the formula itself. Every
page must also load without a console error and without a request outside 127.0.0.1.

* ch03 "dk": log2(d_k) from 0 to 10: the read-out line, one query's 32 weight bars, the score
  histogram and the dashed d_k rules.
* ch05 "position-dimension": position 0-99 and dimension 0-63: the 64 bars of PE(position)
  against sin/cos of the formula, the marked point PE(position)[dimension], the two read-outs.
* every explorer of every page (also future ones): it draws, and each slider changes the figure.

Vega, Vega-Lite and vega-embed must load only on the pages that hold an explorer.
"""

from __future__ import annotations

import json
import math
import re
from urllib.parse import quote

import pytest

from browser import BOOK_HTML, BOOK_SOURCE, allowed, open_page
from course_lib.book.timing import toc_files
from course_lib.explorers import MARKER

PAGES = toc_files(BOOK_SOURCE)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not BOOK_HTML.is_dir(), reason=f"no built book at {BOOK_HTML}: run `make book` first (make test does)"),
]

CH03, CH05 = "chapters/03_scaled_dot_product", "chapters/05_positional_encoding"


def _html(page: str) -> str:
    return (BOOK_HTML / f"{page}.html").read_text(encoding="utf-8")


def _explorers(html: str) -> list[str]:
    return re.findall(MARKER + r'="([^"]+)"', html)


# --------------------------------------------------------------------------- browser helpers

_DRAWN = """name => !!(window.courseExplorers && window.courseExplorers[name]
  && document.querySelector(`[data-course-explorer="${name}"] svg`))"""

_MOVE = """async ([name, param, value]) => {
  const box = document.querySelector(`[data-course-explorer="${name}"]`);
  const input = box.querySelector(`.vega-bindings input[name="${param}"]`);
  if (!input) return 'no input named ' + param;
  input.value = String(value);
  input.dispatchEvent(new Event('input', {bubbles: true}));
  input.dispatchEvent(new Event('change', {bubbles: true}));
  await window.courseExplorers[name].runAsync();
  return '';
}"""

_SIGNAL = "([name, param]) => window.courseExplorers[name].signal(param)"

_MARKS = """name => Array.from(document.querySelectorAll(`[data-course-explorer="${name}"] svg [aria-roledescription]`))
  .filter(e => e.getAttribute('aria-label'))
  .map(e => [e.getAttribute('aria-roledescription'), e.getAttribute('aria-label')])"""

_INPUTS = """name => Array.from(document.querySelectorAll(`[data-course-explorer="${name}"] .vega-bindings input[type=range]`))
  .map(i => ({name: i.name, min: +i.min, max: +i.max, step: +i.step || 1, value: +i.value}))"""

_SVG = "name => document.querySelector(`[data-course-explorer=\"${name}\"] svg`).innerHTML"

_SPEC = """name => document.querySelector(`[data-course-explorer="${name}"] .course-explorer-spec`).textContent"""


def _fields(label: str) -> dict[str, str]:
    """'key: 3; weight: 0.12; kind: scaled' -> {'key': '3', ...} (Vega's aria-label of a mark)."""
    if label.startswith("text: "):  # a text mark: its whole text (which may contain '; ')
        return {"text": label[len("text: "):]}
    out = {}
    for part in label.split("; "):
        name, _, value = part.partition(": ")
        out[name] = value
    return out


def _number(text: str) -> float:
    return float(text.replace("\u2212", "-").replace(",", ""))  # d3 writes a real minus sign


def _datasets(spec: dict, columns: set[str]) -> list[dict]:
    """The rows of the spec's one dataset whose rows have exactly these columns."""
    found = [rows for rows in spec.get("datasets", {}).values() if rows and set(rows[0]) == columns]
    assert len(found) == 1, f"expected one dataset with columns {sorted(columns)}, found {len(found)}"
    return found[0]


class Explorer:
    """One explorer on an open page."""

    def __init__(self, tab, name: str):
        self.tab, self.name = tab, name
        tab.wait_for_function(_DRAWN, arg=name, timeout=20_000)
        self.spec = json.loads(tab.evaluate(_SPEC, name))

    def move(self, param: str, value: int) -> None:
        problem = self.tab.evaluate(_MOVE, [self.name, param, value])
        assert not problem, f"explorer {self.name}: {problem}"
        assert self.tab.evaluate(_SIGNAL, [self.name, param]) == value, f"{param} did not move to {value}"

    def marks(self, role: str | None = None) -> list[dict[str, str]]:
        return [_fields(label) for r, label in self.tab.evaluate(_MARKS, self.name) if role is None or r == role]

    def texts(self) -> list[str]:
        return [m.get("text", "") for m in self.marks("text mark")]


@pytest.fixture(scope="module")
def pages(site, browser_context):
    """Open each explorer page once per module; yields {page: (tab, log)}; closes them at the end."""
    opened = {}

    def get(page: str):
        if page not in opened:
            opened[page] = open_page(browser_context, site + quote(f"{page}.html"))
        return opened[page]

    yield get
    for tab, _log in opened.values():
        tab.close()


def _clean(log) -> list[str]:
    problems = [f"console errors: {[e for e in log.errors if not allowed(e)]}"] if [e for e in log.errors if not allowed(e)] else []
    if log.outside:
        problems.append(f"requests left 127.0.0.1: {sorted(set(log.outside))}")
    if log.failed:
        problems.append(f"local files missing: {log.failed}")
    return problems


# --------------------------------------------------------------------------- ch03: d_k


def test_dk_explorer_follows_the_slider(pages):
    tab, log = pages(CH03)
    dk = Explorer(tab, "dk")
    readouts = {row["e"]: row["text"] for row in _datasets(dk.spec, {"e", "d_k", "text"})}
    weights = _datasets(dk.spec, {"e", "kind", "key", "weight"})
    hist = _datasets(dk.spec, {"e", "kind", "lo", "hi", "count"})
    assert sorted(readouts) == list(range(11)), "the read-outs should cover log2(d_k) = 0..10"
    assert dk.tab.evaluate(_SIGNAL, ["dk", "log2_dk"]) == 6, "the explorer should open at d_k = 64"
    seen = set()
    for e in (10, 0, 3, 9, 6):  # both ends, then back to the start value
        dk.move("log2_dk", e)
        texts = dk.texts()
        assert readouts[e] in texts, f"at log2(d_k) = {e} the read-out should say {readouts[e]!r}; it shows {texts}"
        assert texts.count(readouts[e]) == 1 and not any(readouts[o] in texts for o in readouts if o != e)
        assert f"d_k = {2**e}:" in readouts[e]

        shown = sorted((int(_number(m["key"])), m["kind"], round(_number(m["weight"]), 5)) for m in dk.marks("bar") if "key" in m)
        expected = sorted((r["key"], r["kind"], round(r["weight"], 5)) for r in weights if r["e"] == e)
        assert len(expected) == 32 and shown == expected, f"log2(d_k) = {e}: the weight bars do not show the precomputed weights"

        bins = sorted((m["kind"], round(_number(m["score"]), 3), int(_number(m["count"]))) for m in dk.marks("bar") if "score" in m)
        expected_bins = sorted((r["kind"], round(r["lo"], 3), int(r["count"])) for r in hist if r["e"] == e)
        assert bins == expected_bins, f"log2(d_k) = {e}: the histogram does not show the precomputed counts"
        assert 0.95 * 800 < sum(c for _, _, c in bins) <= 800, "400 unscaled and 400 scaled scores (bins cover +-4 std)"

        rules = [m for m in dk.marks("rule mark") if "d_k" in m]
        assert [_number(m["d_k"]) for m in rules] == [2**e, 2**e], f"the dashed lines should mark d_k = {2**e}: {rules}"
        seen.add(readouts[e])
    assert len(seen) == 5
    assert not _clean(log), _clean(log)


# --------------------------------------------------------------------------- ch05: position and dimension


def _pe(pos: int, dim: int, d_model: int = 64) -> float:
    angle = pos / 10000 ** (2 * (dim // 2) / d_model)
    return math.sin(angle) if dim % 2 == 0 else math.cos(angle)


def test_position_dimension_explorer_follows_the_sliders(pages):
    tab, log = pages(CH05)
    ex = Explorer(tab, "position-dimension")
    pos_text = {r["pos"]: r["text"] for r in _datasets(ex.spec, {"pos", "text"})}
    dim_text = {r["dim"]: r["text"] for r in _datasets(ex.spec, {"dim", "text"})}
    assert tab.evaluate(_SIGNAL, ["position-dimension", "position"]) == 20
    assert tab.evaluate(_SIGNAL, ["position-dimension", "dimension"]) == 6
    for pos, dim in ((0, 0), (99, 63), (57, 13), (3, 40), (20, 6)):
        ex.move("position", pos)
        ex.move("dimension", dim)
        bars = sorted((int(_number(m["dimension"])), _number(m["PE value"]), m["kind"]) for m in ex.marks("bar"))
        assert [b[0] for b in bars] == list(range(64)), f"position {pos}: expected 64 bars, one per dimension"
        for j, value, kind in bars:
            assert abs(value - _pe(pos, j)) < 1e-4, f"PE({pos})[{j}] shows {value}, the formula gives {_pe(pos, j):.5f}"
            assert kind == ("sin" if j % 2 == 0 else "cos")
        points = [m for m in ex.marks("point") if "position" in m]
        assert len(points) == 1, f"one marked point expected, got {points}"
        assert int(_number(points[0]["position"])) == pos
        assert abs(_number(points[0]["PE value"]) - _pe(pos, dim)) < 1e-4, f"the point should be PE({pos})[{dim}]"
        texts = ex.texts()
        assert pos_text[pos] in texts and dim_text[dim] in texts, f"read-outs for ({pos}, {dim}) missing: {texts}"
        assert len(texts) == 2, f"exactly the two read-outs of the chosen setting expected, got {texts}"
        wavelength = 2 * math.pi * 10000 ** (2 * (dim // 2) / 64)
        assert f"wavelength {wavelength:,.1f} positions" in dim_text[dim]
    assert not _clean(log), _clean(log)


# --------------------------------------------------------------------------- every explorer


def _explorer_pages() -> list[tuple[str, str]]:
    return [(page, name) for page in PAGES if (BOOK_HTML / f"{page}.html").exists() for name in _explorers(_html(page))]


def test_the_chapters_have_their_explorers():
    found = _explorer_pages()
    assert (CH03, "dk") in found and (CH05, "position-dimension") in found, f"explorers found: {found}"


@pytest.mark.parametrize("page_name", _explorer_pages(), ids=lambda x: f"{x[0]}:{x[1]}" if isinstance(x, tuple) else str(x))
def test_every_slider_changes_its_figure(page_name, pages):
    page, name = page_name
    tab, log = pages(page)
    ex = Explorer(tab, name)
    inputs = tab.evaluate(_INPUTS, name)
    assert inputs, f"explorer {name} on {page} has no slider"
    for control in inputs:
        before = tab.evaluate(_SVG, name)
        start = control["value"]
        other = control["max"] if start != control["max"] else control["min"]
        ex.move(control["name"], int(other))
        assert tab.evaluate(_SVG, name) != before, f"{page}: moving {control['name']} of {name} to {other} changed nothing"
        ex.move(control["name"], int(start))
        assert tab.evaluate(_SVG, name) == before, f"{page}: moving {control['name']} back to {start} did not restore the figure"
    assert not _clean(log), _clean(log)


@pytest.mark.parametrize("page", PAGES)
def test_vega_loads_only_where_an_explorer_is(page):
    html = _html(page)
    loads = [name for name in ("vega", "vega-lite", "vega-embed") if f"course-assets/vega/{name}.js" in html]
    if _explorers(html):
        assert loads == ["vega", "vega-lite", "vega-embed"], f"{page} has an explorer but loads {loads} of vega, vega-lite, vega-embed"
        order = [html.index(f"course-assets/vega/{name}.js") for name in loads]
        assert order == sorted(order), f"{page}: vega, vega-lite and vega-embed must load in that order"
    else:
        assert not loads and "cdn.jsdelivr.net/npm/vega" not in html, f"{page} has no explorer but loads {loads}"
