"""course_lib.viz: bertviz views with local d3/jQuery, truncation of long inputs; course_lib.book.assets.

The HTML tests need node_modules/ (`make book` runs `npm ci`); the last test draws a view
in Chromium (marked `browser`), with require.js on the page as in classic Jupyter.
"""

from __future__ import annotations

import functools
import http.server
import json
import pathlib
import re
import threading

import pytest
import torch

from course_lib import viz
from course_lib.book import assets as book_assets

CDN = re.compile(r"cdnjs|unpkg|jsdelivr|googleapis|cloudflare|(src|href)\s*=\s*[\"']?(https?:)?//", re.I)
needs_assets = pytest.mark.skipif(bool(book_assets.missing()), reason="node_modules/ not installed (run `npm ci` or `make book`)")


def _attention(n_layers=2, n_heads=3, T=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.softmax(torch.randn(1, n_heads, T, T, generator=g), dim=-1) for _ in range(n_layers))


def _tokens(T):
    return [f"tok{i}" for i in range(T)]


def _params(html: str) -> dict:
    match = re.search(r"const params = (\{.*?\}); // HACK", html, re.S)
    assert match, "no view parameters in the generated HTML"
    return json.loads(match.group(1).replace("\\u003c", "<"))


@needs_assets
@pytest.mark.parametrize("view", [viz.head_view, viz.model_view])
def test_view_html_references_no_cdn(view):
    html = view(_attention(), _tokens(6), html_action="return").data
    assert not CDN.search(html), f"CDN reference in the generated HTML: {CDN.search(html).group(0)!r}"
    assert "require.config" not in html, "bertviz's require.config (CDN paths) was not removed"
    assert html.count('data-course-asset="d3"') == 1 and html.count('data-course-asset="jquery"') == 1
    assert re.search(r'<div id="bertviz-[0-9a-f]+"', html)
    assert _params(html)["attention"][0]["left_text"] == _tokens(6)


@needs_assets
def test_long_input_is_truncated_with_a_notice():
    T, limit = 100, 20
    html = viz.head_view(_attention(T=T), _tokens(T), max_tokens=limit, html_action="return").data
    assert f"Showing the first {limit} of {T} tokens" in html
    params = _params(html)
    assert params["attention"][0]["left_text"] == _tokens(limit)
    assert len(params["attention"][0]["attn"][0][0]) == limit  # (L, H, T, T) -> T rows in layer 0, head 0


@needs_assets
def test_default_limits_and_no_notice_for_short_inputs():
    html = viz.model_view(_attention(T=viz.MAX_TOKENS_MODEL_VIEW + 1), _tokens(viz.MAX_TOKENS_MODEL_VIEW + 1), html_action="return").data
    assert f"first {viz.MAX_TOKENS_MODEL_VIEW} of" in html
    short = viz.head_view(_attention(T=5), _tokens(5), html_action="return").data
    assert "course-viz-notice" not in short
    untouched = viz.head_view(_attention(T=80), _tokens(80), max_tokens=None, html_action="return").data
    assert "course-viz-notice" not in untouched and len(_params(untouched)["attention"][0]["left_text"]) == 80


@needs_assets
def test_sentence_b_beyond_the_limit_is_dropped_with_a_notice():
    html = viz.head_view(_attention(T=30), _tokens(30), sentence_b_start=25, max_tokens=10, html_action="return").data
    assert "Sentence B (from token 25) is beyond the limit" in html
    assert len(_params(html)["attention"]) == 1  # no sentence-pair filters left


@needs_assets
def test_tokens_cannot_close_the_script_early():
    tokens = ["</script>", "<b>", "ok"]
    html = viz.head_view(_attention(T=3), tokens, html_action="return").data
    script = html.split('data-course-asset="d3"', 1)[1]
    assert "</script><b>" not in script and script.count("</script>") == 2  # end of d3, end of the view
    assert _params(html)["attention"][0]["left_text"] == tokens


def test_bad_shapes_name_expected_and_actual():
    with pytest.raises(ValueError, match=r"expected attention of shape \(1, H, T, T\) with T=5 tokens, got \(1, 3, 6, 6\)"):
        viz.head_view(_attention(T=6), _tokens(5), html_action="return")
    with pytest.raises(TypeError, match="non-empty tuple"):
        viz.model_view((), [], html_action="return")


def test_without_node_modules_falls_back_to_the_cdn_and_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv(book_assets.ENV_NODE_MODULES, str(tmp_path / "nowhere"))
    html = viz.head_view(_attention(), _tokens(6), html_action="return").data
    assert "d3 and jQuery are not installed locally" in html
    assert "cdnjs.cloudflare.com" in html


@needs_assets
@pytest.mark.parametrize("name", sorted(book_assets.BERTVIZ_LIBRARIES))
def test_wrapped_libraries_can_be_inlined(name):
    text = book_assets.wrapped_library(name)
    assert "</script" not in text.lower() and "<!--" not in text
    assert f"NS.lib.{name}" in text


@needs_assets
def test_stage_copies_every_asset(tmp_path):
    assert book_assets.stage(tmp_path) > 100
    static = tmp_path / book_assets.STATIC_DIR
    for path in ("mathjax/tex-mml-chtml.js", "mathjax/output/chtml/fonts/woff-v2", "require.js", "html-manager/embed-amd.js", "bertviz/d3.js", "bertviz/jquery.js", "widget-setup.js"):
        assert (static / path).exists(), f"{path} not staged"
    assert not list(static.rglob("*.map")), "source maps should be left out"
    assert book_assets.stage(tmp_path) == 0, "a second stage() should copy nothing"


def test_config_names_only_staged_assets():
    """The local paths in _config.yml are files that book_assets stages (the extension checks it at build time too)."""
    import yaml

    config = yaml.safe_load((book_assets.ROOT / "_config.yml").read_text())["sphinx"]
    assert "course_lib.book.sphinxext" in config["extra_extensions"]
    staged = {f"{book_assets.STATIC_DIR}/{a.target}" for a in book_assets.ASSETS} | {f"{book_assets.STATIC_DIR}/{n}" for n in book_assets.GENERATED}
    named = [config["config"]["mathjax_path"], *config["config"]["nb_ipywidgets_js"]]
    for path in named:
        assert path in staged or any(path.startswith(s + "/") for s in staged), f"_config.yml names {path}, which is not staged"


# ---------------------------------------------------------------------------------------
# In a browser: the inline view draws, with and without require.js on the page.

@needs_assets
@pytest.mark.browser
@pytest.mark.parametrize("with_requirejs", [False, True], ids=["plain-page", "requirejs-page"])
def test_inline_view_draws_in_chromium(tmp_path, with_requirejs):
    sync_api = pytest.importorskip("playwright.sync_api")
    from browser import CHROMIUM_ARGS, _QuietHandler, find_browser

    try:
        chromium = find_browser()
    except FileNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)
    head = ""
    if with_requirejs:  # classic Jupyter and the book's widget pages have an AMD loader
        (tmp_path / "require.js").write_text((book_assets.node_modules_dir() / "requirejs/require.js").read_text())
        head = '<script src="require.js"></script>'
    views = viz.head_view(_attention(), _tokens(6), html_action="return").data + viz.model_view(_attention(), _tokens(6), html_action="return").data
    (tmp_path / "page.html").write_text(f'<!doctype html><html><head><link rel="icon" href="data:,">{head}</head><body>{views}</body></html>')
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    errors, outside = [], []
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: "127.0.0.1" not in r.url and outside.append(r.url))
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/page.html")
            page.wait_for_function(
                """() => { const divs = document.querySelectorAll('div[id^="bertviz-"]');
                           return divs.length === 2 && Array.from(divs).every(d => d.querySelector('svg line, svg rect')); }""",
                timeout=15_000,
            )
            page_jquery = page.evaluate("typeof window.jQuery")
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    assert not errors, errors
    assert not outside, outside
    assert page_jquery == "undefined", "the view leaked its jQuery into the page's window.jQuery"
