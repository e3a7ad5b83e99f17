"""bertviz attention views that need no CDN: in a live Jupyter session and in the built book.

``head_view`` and ``model_view`` take bertviz's arguments (and pass the optional
ones through), so chapters call these, never bertviz directly. What differs:

* bertviz's HTML loads require.js, d3 and jQuery from public CDNs. Here the view is
  drawn by bertviz's own JavaScript (``head_view.js``/``model_view.js`` shipped in
  the bertviz package, with its parameters) and d3/jQuery come from the npm packages
  that ``make book`` installs into ``node_modules/``
  (see ``course_lib.book.assets``):

  - **live session**: the two libraries are inlined into the cell output (about
    330 kB, loaded once per page however many views it shows), so the view works
    wherever the notebook runs: JupyterLab, classic Notebook, VS Code, offline.
  - **built book**: ``course_lib.book.sphinxext`` replaces each inline copy by a
    ``<script src>`` link to the same file under ``_static/course-assets/bertviz/``,
    so pages stay small and the browser caches the libraries.
  - **no node_modules** (npm was not available): the view falls back to bertviz's
    own CDN-based HTML and says so above the view.

* Long inputs are truncated to ``max_tokens`` tokens, with a notice above the view,
  rather than freezing the page: a head view draws H * T * T lines per layer and a
  model view L * H thumbnails of T * T lines each.

Shapes:
    attention: a tuple with one tensor per layer, each (B=1, H, T, T)
    tokens: T strings
"""

from __future__ import annotations

import html
import json
import pathlib
import re
from typing import Sequence

import torch

from course_lib import assets
from course_lib.extras import require

#: Default token limits: beyond them drawing takes seconds and the view is unreadable anyway.
MAX_TOKENS_HEAD_VIEW = 64
MAX_TOKENS_MODEL_VIEW = 32

_MARKER = "PYTHON_PARAMS"  # bertviz's template marker for the view's parameters
_REQUIRE_CONFIG = re.compile(r"require\.config\(\{.*?\}\);\s*", re.S)  # bertviz's CDN paths for d3/jQuery


def _check(attention, tokens: Sequence[str]) -> None:
    if not isinstance(attention, (tuple, list)) or not attention:
        raise TypeError("attention must be a non-empty tuple of per-layer tensors of shape (1, H, T, T)")
    for i, a in enumerate(attention):
        if not isinstance(a, torch.Tensor) or a.dim() != 4 or a.shape[0] != 1 or a.shape[-1] != len(tokens) or a.shape[-2] != len(tokens):
            got = tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__
            raise ValueError(f"layer {i}: expected attention of shape (1, H, T, T) with T={len(tokens)} tokens, got {got}")


def _truncate(attention, tokens: list[str], sentence_b_start: int | None, max_tokens: int | None):
    """Keep the first ``max_tokens`` tokens; return the new inputs and a notice ('' if nothing was cut)."""
    T = len(tokens)
    if max_tokens is None or T <= max_tokens:
        return attention, tokens, sentence_b_start, ""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    n = max_tokens
    attention = tuple(a[:, :, :n, :n] for a in attention)  # (1, H, T, T) -> (1, H, n, n)
    notice = (
        f"Showing the first {n} of {T} tokens: drawing every token would make the page slow to respond. "
        f"Attention to the hidden tokens is left out, so rows no longer sum to 1. "
        f"Pass max_tokens=... to change the limit."
    )
    if sentence_b_start is not None and sentence_b_start >= n:
        notice += f" Sentence B (from token {sentence_b_start}) is beyond the limit, so the sentence filter is off."
        sentence_b_start = None
    return attention, tokens[:n], sentence_b_start, notice


def _bertviz_parts(kind: str, attention, tokens, sentence_b_start, kwargs) -> tuple[str, str, str]:
    """Run bertviz (html_action='return'); return (its HTML, its view <div>, the parameters as JSON).

    bertviz builds its view parameters (sentence-pair filters, layer and head selection,
    display mode) and substitutes them for PYTHON_PARAMS in its JavaScript file; taking
    them back out of its output reuses all of that logic unchanged.
    """
    bertviz = require("bertviz", "chapters", "the head and model views")

    view = getattr(bertviz, kind)
    page = view(attention, tokens, sentence_b_start, html_action="return", **kwargs).data
    template = _bertviz_js(kind)
    head, sep, script = page.partition('\n<script type="text/javascript">\n')
    if not sep or not script.endswith("\n</script>\n"):
        raise RuntimeError(f"unexpected HTML from bertviz.{kind} (has bertviz changed?): cannot find its script")
    js = script[: -len("\n</script>\n")]
    n_markers = template.count(_MARKER)
    before = template.split(_MARKER, 1)[0]
    width = (len(js) - (len(template) - n_markers * len(_MARKER))) // max(n_markers, 1)
    params = js[len(before) : len(before) + width]
    if not js.startswith(before) or template.replace(_MARKER, params) != js:
        raise RuntimeError(f"cannot recover the view parameters from bertviz.{kind} (has bertviz changed?)")
    json.loads(params)  # a clear error here beats a blank view
    div = re.sub(r"^\s*<script src=\"[^\"]*\"></script>", "", head)
    return page, div, params


def _bertviz_js(kind: str) -> str:
    bertviz = require("bertviz", "chapters", "the head and model views")

    return (pathlib.Path(bertviz.__file__).parent / f"{kind}.js").read_text(encoding="utf-8")


def _draw_script(kind: str, params: str) -> str:
    """bertviz's JavaScript, with its CDN require.config removed, run once d3 and jQuery are loaded."""
    js, n = _REQUIRE_CONFIG.subn("", _bertviz_js(kind), count=1)
    if n != 1:
        raise RuntimeError(f"bertviz's {kind}.js has no require.config block to remove (has bertviz changed?)")
    safe_params = params.replace("<", "\\u003c")  # no '</script>' can end the script early
    js = js.replace(_MARKER, safe_params, 1)
    return (
        '<script type="text/javascript">\n'
        "(function () {\n"
        "var NS = window.courseViz = window.courseViz || {lib: {}, pending: []};\n"
        "function draw() {\n"
        "  if (!NS.lib.d3 || !NS.lib.jquery) return false;\n"
        "  // bertviz calls requirejs(['jquery', 'd3'], factory): hand it the local copies.\n"
        "  var requirejs = function (deps, factory) { factory(NS.lib.jquery, NS.lib.d3); };\n"
        f"{js}\n"
        "  return true;\n"
        "}\n"
        "if (!draw()) NS.pending.push(draw);\n"
        "})();\n"
        "</script>\n"
    )


def asset_script(name: str) -> str:
    """The inline <script> carrying a wrapped library; the book's extension turns it into a link."""
    body = assets.wrapped_library(name)
    if "</script" in body.lower() or "<!--" in body:
        raise RuntimeError(f"{name} cannot be inlined in a <script> element as it is")
    return f'<script type="text/javascript" data-course-asset="{name}">\n{body}</script>\n'


def _notice(text: str) -> str:
    if not text:
        return ""
    return f'<p class="course-viz-notice" style="font-style:italic;margin:0.3em 0">{html.escape(text)}</p>\n'


#: decimals kept of each attention weight in a view's page
WEIGHT_DECIMALS = 3


def _render(kind: str, attention, tokens, sentence_b_start, max_tokens, kwargs):
    from IPython.display import HTML, display

    html_action = kwargs.pop("html_action", "view")
    if html_action not in ("view", "return"):
        raise ValueError(f"html_action must be 'view' or 'return', got {html_action!r}")
    tokens = list(tokens)
    _check(attention, tokens)
    attention, tokens, sentence_b_start, notice = _truncate(attention, tokens, sentence_b_start, max_tokens)
    # weights to WEIGHT_DECIMALS places: the views draw shades and show no numbers, and a float32's full
    # repr is ~20 characters (a 6-layer, 12-head view of 31 tokens: 3.4 MB of HTML, 1.3 MB rounded)
    attention = tuple(a.detach().double().round(decimals=WEIGHT_DECIMALS) for a in attention)
    page, div, params = _bertviz_parts(kind, attention, tokens, sentence_b_start, kwargs)
    gaps = assets.missing_libraries(assets.BERTVIZ_LIBRARIES.values())
    if gaps:
        notice += (
            " d3 and jQuery are not installed locally (run `npm ci` or `make book`), so this view loads them "
            "from a public CDN and stays blank offline."
        )
        out = _notice(notice.strip()) + page
    else:
        out = _notice(notice) + div + asset_script("jquery") + asset_script("d3") + _draw_script(kind, params)
    out = f'<div class="course-viz course-viz-{kind}">\n{out}</div>\n'
    if html_action == "return":
        return HTML(out)
    display(HTML(out))
    return None


def head_view(attention, tokens: Sequence[str], sentence_b_start: int | None = None, *, max_tokens: int | None = MAX_TOKENS_HEAD_VIEW, **kwargs):
    """Interactive per-head view of one or more layers (bertviz ``head_view``), served locally.

    Other keyword arguments (``layer``, ``heads``, ``include_layers``, ``prettify_tokens``,
    ``html_action='view'|'return'``) are bertviz's. Inputs longer than ``max_tokens``
    (None: no limit) are cut to their first ``max_tokens`` tokens, with a notice.

    Shapes:
        attention: tuple of L tensors, each (1, H, T, T)
        tokens: T strings
    """
    return _render("head_view", attention, tokens, sentence_b_start, max_tokens, dict(kwargs))


def model_view(attention, tokens: Sequence[str], sentence_b_start: int | None = None, *, max_tokens: int | None = MAX_TOKENS_MODEL_VIEW, **kwargs):
    """Every layer and head at once (bertviz ``model_view``), served locally.

    Other keyword arguments (``include_layers``, ``include_heads``, ``display_mode``,
    ``prettify_tokens``, ``html_action``) are bertviz's; ``display_mode`` defaults to
    ``"light"`` here to match the book's theme. Inputs longer than ``max_tokens``
    are cut, with a notice.

    Shapes:
        attention: tuple of L tensors, each (1, H, T, T)
        tokens: T strings
    """
    kwargs = dict(kwargs)
    kwargs.setdefault("display_mode", "light")
    return _render("model_view", attention, tokens, sentence_b_start, max_tokens, kwargs)
