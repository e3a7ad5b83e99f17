"""course_lib.explorers without a browser: what the book build and a live kernel display.

The explorers' behaviour in the page is tested in Chromium by tests/test_book_explorers.py.
"""

import json
import re

import altair as alt
import pandas as pd
import pytest

from course_lib.book import assets as book_assets
from course_lib.runtime import BUILD_ENV
from course_lib.explorers import LIVE_MIMETYPE, MARKER, explorer_html, show_explorer


def _chart(text="a </script> b"):
    k = alt.param(name="k", value=1, bind=alt.binding_range(min=0, max=2, step=1))
    frame = pd.DataFrame({"k": [0, 1, 2], "v": [1.0, 2.0, 3.0], "label": [text] * 3})
    return alt.Chart(frame).mark_bar().encode(x="k:O", y="v:Q").transform_filter(alt.datum.k == k).add_params(k)


def test_book_build_shows_the_spec_and_the_embed_call(monkeypatch):
    monkeypatch.setenv(BUILD_ENV, "1")
    bundle = show_explorer(_chart(), "t-1")._repr_mimebundle_()
    html = bundle["text/html"]
    assert f'{MARKER}="t-1"' in html and "vegaEmbed" in html
    spec_text = re.search(r'class="course-explorer-spec">(.*?)</script>', html, re.S).group(1)
    assert "</script>" not in spec_text, "a '</script>' in the data would close the element early"
    spec = json.loads(spec_text)
    assert spec["params"][0]["name"] == "k"
    assert [row["v"] for rows in spec["datasets"].values() for row in rows] == [1.0, 2.0, 3.0]
    # nothing fetched from outside: the only URL is the $schema, which vega-embed reads, not loads
    assert set(re.findall(r"https?://[^\"\s]+", html)) == {spec["$schema"]}


def test_live_kernel_sends_the_same_spec_as_vega_lite_5(monkeypatch):
    """JupyterLab 4 draws application/vnd.vegalite.v5+json with the Vega it bundles (offline);
    an HTML output would win over it in JupyterLab's ranking and load Vega from a CDN."""
    monkeypatch.setenv(BUILD_ENV, "1")
    html = show_explorer(_chart(), "t")._repr_mimebundle_()["text/html"]
    book_spec = json.loads(re.search(r'class="course-explorer-spec">(.*?)</script>', html, re.S).group(1))
    monkeypatch.delenv(BUILD_ENV, raising=False)
    bundle = show_explorer(_chart(), "t")._repr_mimebundle_()
    assert set(bundle) == {LIVE_MIMETYPE, "text/plain"}, "no text/html: JupyterLab would prefer it to the Vega renderer"
    live_spec = bundle[LIVE_MIMETYPE]
    assert live_spec["$schema"] == "https://vega.github.io/schema/vega-lite/v5.json"
    assert book_spec["$schema"].endswith("/v6.json") or "/v6." in book_spec["$schema"]
    assert {k: v for k, v in live_spec.items() if k != "$schema"} == {k: v for k, v in book_spec.items() if k != "$schema"}, (
        "one spec for the book and the kernel"
    )
    assert not re.search(r"https?://", json.dumps({k: v for k, v in live_spec.items() if k != "$schema"})), "nothing to fetch"


def test_live_kernel_output_has_no_cdn(monkeypatch):
    monkeypatch.delenv(BUILD_ENV, raising=False)
    text = json.dumps(show_explorer(_chart(), "t")._repr_mimebundle_())
    assert "cdn." not in text and "<script" not in text and MARKER not in text


def test_no_row_limit_for_our_own_data(monkeypatch):
    monkeypatch.setenv(BUILD_ENV, "1")
    big = alt.Chart(pd.DataFrame({"x": range(6400)})).mark_tick().encode(x="x:Q")  # Altair's default limit: 5000
    spec_text = re.search(r'class="course-explorer-spec">(.*?)</script>', explorer_html(big, "big"), re.S).group(1)
    assert sum(len(rows) for rows in json.loads(spec_text)["datasets"].values()) == 6400


@pytest.mark.parametrize("name", ["", "Has Space", "1abc", "a/b", 'x"y', None])
def test_bad_names_are_refused_with_what_was_expected(name):
    with pytest.raises(ValueError, match="explorer name must be"):
        explorer_html(_chart(), name)


def test_vega_libraries_set_their_globals_even_beside_require_js():
    for name in book_assets.VEGA_LIBRARIES:
        wrapped = book_assets.wrapped_global(name)
        assert wrapped.startswith("/* ") and "(function (define, module, exports) {" in wrapped
        assert wrapped.rstrip().endswith(".call(window, undefined, undefined, undefined);")
    with pytest.raises(ValueError, match="unknown Vega library"):
        book_assets.wrapped_global("d3")
