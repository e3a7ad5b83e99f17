"""The JavaScript libraries course_lib serves from the course's ``node_modules/`` (npm).

``make book`` (and ``make test``) install the npm packages pinned in ``package.json`` /
``package-lock.json`` (``npm ci``). Three parts of the course read them:

* ``course_lib.viz`` inlines d3 and jQuery (:func:`wrapped_library`) into each bertviz
  view, so a view draws offline in a live kernel;
* the book's build (``course_lib.book.assets``) copies these and MathJax, require.js,
  the widget manager, Vega and ONNX Runtime Web into the site;
* the grader's feedback pages (``course_lib.grading.feedback``) link MathJax.
"""

from __future__ import annotations

import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: Environment variable naming the node_modules folder to use (the Sphinx extension
#: sets it so that notebooks executed by the build use the same files).
ENV_NODE_MODULES = "COURSE_NODE_MODULES"


#: The libraries bertviz needs, wrapped by :func:`wrapped_library` (name -> file in node_modules).
BERTVIZ_LIBRARIES: dict[str, str] = {
    # bertviz's JavaScript is written for d3 v5 (event handlers take (d, i)), so pin 5.7.0 as bertviz does.
    "d3": "d3/dist/d3.min.js",
    "jquery": "jquery/dist/jquery.min.js",
}

#: Vega, Vega-Lite and vega-embed for the explorers (course_lib.explorers), wrapped by
#: :func:`wrapped_global` (name -> file in node_modules). Loaded only on pages with an explorer.
VEGA_LIBRARIES: dict[str, str] = {
    "vega": "vega/build/vega.min.js",
    "vega-lite": "vega-lite/build/vega-lite.min.js",
    "vega-embed": "vega-embed/build/vega-embed.min.js",
}

def node_modules_dir() -> pathlib.Path:
    """The node_modules folder to read assets from (it may not exist)."""
    env = os.environ.get(ENV_NODE_MODULES)
    return pathlib.Path(env) if env else ROOT / "node_modules"


def missing_libraries(paths, node_modules: pathlib.Path | None = None) -> list[str]:
    """Those of ``paths`` (relative to node_modules) that are not installed."""
    nm = node_modules or node_modules_dir()
    return [p for p in paths if not (nm / p).exists()]


def wrapped_library(name: str, node_modules: pathlib.Path | None = None) -> str:
    """The source of a bertviz library (``d3`` or ``jquery``), wrapped to be loaded safely anywhere.

    The wrapper hides ``define``/``module``/``exports`` from the library, so it neither
    registers with require.js (which the widget pages also load: an anonymous
    ``define`` from a plain script tag is a require.js error) nor replaces the page's
    own ``window.jQuery``; it stores the library on ``window.courseViz.lib`` and runs
    any bertviz view that was waiting for it. Loading it twice is harmless.
    """
    if name not in BERTVIZ_LIBRARIES:
        raise ValueError(f"unknown bertviz library {name!r}: expected one of {sorted(BERTVIZ_LIBRARIES)}")
    source = ((node_modules or node_modules_dir()) / BERTVIZ_LIBRARIES[name]).read_text(encoding="utf-8")
    if name == "d3":
        # d3's UMD header attaches to `this` when there is no module system: here NS.lib.
        load = "(function (define, module, exports) {\n" + source + "\n}).call(NS.lib, undefined, undefined, undefined);\n"
    else:
        # jQuery attaches to window; noConflict(true) restores the page's jQuery (if any) and hands ours over.
        load = (
            "(function (define, module, exports) {\n" + source + "\n}).call(window, undefined, undefined, undefined);\n"
            "NS.lib.jquery = window.jQuery.noConflict(true);\n"
        )
    return (
        f"/* {BERTVIZ_LIBRARIES[name]} for course_lib.viz (see course_lib/assets.py) */\n"
        "(function () {\n"
        "var NS = window.courseViz = window.courseViz || {lib: {}, pending: []};\n"
        f"if (!NS.lib.{name}) {{\n{load}}}\n"
        "NS.pending = NS.pending.filter(function (draw) { return !draw(); });\n"
        "})();\n"
    )


def wrapped_global(name: str, node_modules: pathlib.Path | None = None) -> str:
    """A Vega library (``vega``, ``vega-lite``, ``vega-embed``) that always sets its browser global.

    Their UMD headers call an AMD ``define`` when one exists: on a page that also loads
    require.js (widget pages), a plain script tag would then be a require.js error and set
    no global. Hiding ``define``/``module``/``exports`` makes each set ``window.vega``,
    ``window.vegaLite`` and ``window.vegaEmbed``, in that order.
    """
    if name not in VEGA_LIBRARIES:
        raise ValueError(f"unknown Vega library {name!r}: expected one of {sorted(VEGA_LIBRARIES)}")
    source = ((node_modules or node_modules_dir()) / VEGA_LIBRARIES[name]).read_text(encoding="utf-8")
    return (
        f"/* {VEGA_LIBRARIES[name]} for course_lib.explorers (see course_lib/assets.py) */\n"
        "(function (define, module, exports) {\n" + source + "\n}).call(window, undefined, undefined, undefined);\n"
    )
