"""Explorers: figures with sliders that work in the static book, offline, with no kernel.

An explorer is a Vega-Lite chart, written with Altair, whose data are computed in Python
(with course_lib, when the book builds) for every position of its sliders. Each slider is
a Vega-Lite parameter bound to an HTML input; moving it filters the precomputed data and
the browser redraws the figure. No kernel, no widget manager, and the same figure at
any size (SVG).

    import altair as alt
    from course_lib.explorers import show_explorer

    d_k = alt.param(name="log2_dk", value=6, bind=alt.binding_range(min=0, max=10, step=1))
    chart = alt.Chart(frame).mark_bar().encode(...).add_params(d_k).transform_filter(...)
    show_explorer(chart, "dk")

``show_explorer`` displays:

* in the book build (``course_lib.runtime.building_book()``): an HTML output holding the
  Vega-Lite spec (data included) and a call to ``vegaEmbed``. The page loads vega,
  vega-lite and vega-embed from its own ``_static/course-assets/vega/`` (copied from
  node_modules by ``course_lib.book.assets``); ``course_lib.book.sphinxext`` adds those three
  scripts only to pages that contain :data:`MARKER`. The drawn view is kept in
  ``window.courseExplorers[name]`` (the browser tests read it).
* in a live kernel (JupyterLab, Notebook 7, VS Code): the same spec as the mimetype
  :data:`LIVE_MIMETYPE`, which JupyterLab's built-in renderer draws with the Vega it bundles:
  offline, no CDN, no extension to install. Altair's own output would not do: its HTML loads
  Vega from a CDN, and JupyterLab 4 has no renderer for Vega-Lite 6's mimetype. The spec is
  Altair's (Vega-Lite 6) with only its ``$schema`` set to Vega-Lite 5: the explorers use
  nothing that 6 added (tests/test_explorers.py checks the spec, tests/test_lab_ui.py draws
  chapter 3's explorer in a real JupyterLab with the network off).
"""

from __future__ import annotations

import json
import re

from course_lib.runtime import building_book

__all__ = ["LIVE_MIMETYPE", "MARKER", "Explorer", "explorer_html", "live_bundle", "show_explorer"]

#: Attribute on the explorer's container in the built page; the Sphinx extension looks for it.
MARKER = "data-course-explorer"

#: The mimetype a live kernel's explorer is sent as: JupyterLab 4 (and Notebook 7) draw it offline.
LIVE_MIMETYPE = "application/vnd.vegalite.v5+json"
_V5_SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,40}$")

# vegaEmbed options: SVG (crisp, and its marks carry aria-labels the tests read);
# no actions menu (its links open the online Vega editor).
_EMBED_OPTIONS = {"renderer": "svg", "actions": False}


def _spec(chart) -> dict:
    """The chart's Vega-Lite spec with its data inline (no row limit: the data are ours)."""
    import altair as alt

    with alt.data_transformers.disable_max_rows():
        return chart.to_dict()


def _script_json(value: object) -> str:
    """JSON safe inside a <script> element (no '</' that would close it)."""
    return json.dumps(value, separators=(",", ":")).replace("</", "<\\/")


def explorer_html(chart, name: str) -> str:
    """The HTML the built book shows for ``chart``: a container, its spec, and the embed call.

    The script waits for the page to load, then draws with the page's vega-embed; if vega-embed
    is missing it says so in the page instead of leaving a blank space.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"explorer name must be lower-case letters, digits, '-' or '_' (a letter first, "
                         f"at most 41 characters), got {name!r}")
    spec = _spec(chart)
    return f"""<div class="course-explorer" {MARKER}="{name}" style="max-width: 100%; overflow-x: auto;">
<div class="course-explorer-chart"></div>
<script type="application/json" class="course-explorer-spec">{_script_json(spec)}</script>
<script type="text/javascript">
(function () {{
  var box = document.currentScript.parentElement;
  function say(message) {{
    var p = document.createElement("p");
    p.className = "course-explorer-error";
    p.textContent = message;
    box.appendChild(p);
  }}
  function draw() {{
    if (typeof window.vegaEmbed !== "function") {{
      say("This interactive figure needs vega-embed, which this page did not load. "
          + "Build the book with node_modules/ installed (make book), or run the notebook.");
      return;
    }}
    var spec = JSON.parse(box.querySelector(".course-explorer-spec").textContent);
    window.vegaEmbed(box.querySelector(".course-explorer-chart"), spec, {_script_json(_EMBED_OPTIONS)})
      .then(function (result) {{ (window.courseExplorers = window.courseExplorers || {{}})["{name}"] = result.view; }})
      .catch(function (err) {{ say("This interactive figure could not be drawn: " + err); console.error(err); }});
  }}
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw); else draw();
}})();
</script>
</div>"""


def live_bundle(chart, name: str) -> dict:
    """What a live kernel displays: the book's spec as Vega-Lite 5, which JupyterLab draws offline."""
    spec = _spec(chart)
    spec["$schema"] = _V5_SCHEMA  # the only change: the book's page draws the same spec with Vega-Lite 6
    return {LIVE_MIMETYPE: spec, "text/plain": f"<explorer {name!r}: a Vega-Lite chart (JupyterLab, Notebook 7 and VS Code draw it)>"}


class Explorer:
    """A chart displayed as an explorer: static-page HTML in the book build, Vega-Lite 5 JSON in a live kernel."""

    def __init__(self, chart, name: str) -> None:
        self.chart = chart
        self.name = name
        if building_book():
            self.html = explorer_html(chart, name)  # fails early on a bad name or an invalid spec

    def _repr_mimebundle_(self, include=None, exclude=None):
        if building_book():
            return {"text/html": self.html, "text/plain": f"<explorer {self.name!r}: open the book page to use it>"}
        return live_bundle(self.chart, self.name)

    def __repr__(self) -> str:
        return f"Explorer({self.name!r})"


def show_explorer(chart, name: str) -> Explorer:
    """``chart`` as an explorer named ``name`` (unique on its page); the notebook displays the returned object."""
    return Explorer(chart, name)
