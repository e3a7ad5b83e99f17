"""Sphinx extension (listed in ``_config.yml``): the book serves its own JavaScript.

With ``node_modules/`` installed (``make book`` runs ``npm ci``):

* ``config-inited``: copies the assets of ``course_lib.book.assets.ASSETS`` and the
  wrapped d3/jQuery for bertviz into ``node_modules/.course-book-static/course-assets/``
  and adds that folder to ``html_static_path`` (published as ``_static/course-assets/``),
  then checks that every local path ``_config.yml`` names (``mathjax_path``,
  ``nb_ipywidgets_js``) is one of them. It also exports ``COURSE_NODE_MODULES`` so the
  notebooks executed by the build find the same files.
* ``html-page-context``: lists each page script once (see ``_drop_duplicate_scripts``),
  adds vega, vega-lite and vega-embed to the pages that hold an explorer (``course_lib.explorers``),
  and drops MathJax from the pages without maths (``_drop_mathjax_without_maths``).
* ``build-finished``: removes the theme's ``fontawesome.js`` (543 kB compressed) from every page;
  its CSS draws the same icons with web fonts (see ``_drop_fontawesome_js``).
* ``doctree-resolved``: replaces the d3/jQuery copies that ``course_lib.viz`` inlines
  into each bertviz view by ``<script src>`` links to ``_static/course-assets/bertviz/``.

Without ``node_modules/`` (no npm), it switches ``mathjax_path`` and ``nb_ipywidgets_js``
back to the public CDNs and prints a message saying the book will not work offline.
"""

from __future__ import annotations

import os
import pathlib
import re

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError
from sphinx.util import logging
from sphinx.util.console import bold, red  # type: ignore[attr-defined]
from sphinx.util.osutil import relative_uri

from course_lib.book import assets as book_assets

logger = logging.getLogger(__name__)

STAGING = ".course-book-static"  # inside node_modules/, which git ignores
_INLINE_ASSET = re.compile(r'<script type="text/javascript" data-course-asset="(?P<name>[a-z0-9]+)">.*?</script>', re.DOTALL)


def _local_paths(config: Config) -> list[str]:
    """The asset paths the configuration expects under _static/ (URLs excluded)."""
    paths = [config.mathjax_path] + list(getattr(config, "nb_ipywidgets_js", {}) or {})
    return [p for p in paths if p and "://" not in p and not p.startswith("//")]


def _config_inited(app: Sphinx, config: Config) -> None:
    node_modules = pathlib.Path(os.environ.get(book_assets.ENV_NODE_MODULES) or pathlib.Path(app.srcdir) / "node_modules")
    gaps = book_assets.missing(node_modules)
    app.course_assets_staged = False  # type: ignore[attr-defined]
    if gaps:
        for key, value in book_assets.CDN_FALLBACK.items():
            setattr(config, key, value)
        # A message, not a warning: the build runs with -W and must still succeed without npm.
        logger.info(
            bold(red("course_lib.book.sphinxext: JavaScript assets not installed "))
            + f"({', '.join(gaps[:3])}{', ...' if len(gaps) > 3 else ''} missing from {node_modules}; "
            "install Node.js/npm and run `npm ci`, or `make book`). "
            + bold("The book will load MathJax, require.js, the widget manager, d3 and jQuery from public CDNs "
                   "and will NOT render offline.")
        )
        return
    os.environ[book_assets.ENV_NODE_MODULES] = str(node_modules)
    staging = node_modules / STAGING
    written = book_assets.stage(staging, node_modules)
    config.html_static_path = list(config.html_static_path) + [str(staging)]
    unknown = [p for p in _local_paths(config) if not (staging / p).is_file()]
    if unknown:
        raise ExtensionError(
            f"_config.yml names {unknown} under _static/, but course_lib.book.assets stages no such file "
            f"(expected paths under {book_assets.STATIC_DIR}/, e.g. {book_assets.STATIC_DIR}/mathjax/tex-mml-chtml.js)"
        )
    app.course_assets_staged = True  # type: ignore[attr-defined]
    logger.info(bold("course_lib.book.sphinxext: ") + f"serving MathJax, require.js, the widget manager, d3 and jQuery "
                f"from _static/{book_assets.STATIC_DIR}/ ({written} files updated)")


def _link_inline_assets(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    if not getattr(app, "course_assets_staged", False) or app.builder.format != "html":
        return
    page = app.builder.get_target_uri(docname)

    def link(match: re.Match) -> str:
        name = match["name"]
        src = relative_uri(page, "_static/" + book_assets.bertviz_library_target(name))
        return f'<script type="text/javascript" data-course-asset="{name}" src="{src}"></script>'

    for node in list(doctree.findall(nodes.raw)):
        text = node.astext()
        if node.get("format") == "html" and "d3 and jQuery are not installed locally" in text:
            # an output cached by jupyter-cache from a build without node_modules/
            logger.warning(
                f"{docname}: a bertviz view was executed without node_modules/ and loads d3/jQuery from a CDN; "
                "re-execute the notebook (delete _build/.jupyter_cache, or `make clean`) so it is served locally",
                location=node,
            )
        if node.get("format") == "html" and "data-course-asset" in text:
            node.children = []
            node += nodes.Text(_INLINE_ASSET.sub(link, text))


#: Where the explorers' libraries come from when node_modules/ is missing (the versions of package.json).
VEGA_CDN = {
    "vega": "https://cdn.jsdelivr.net/npm/vega@6.4.0/build/vega.min.js",
    "vega-lite": "https://cdn.jsdelivr.net/npm/vega-lite@6.4.1/build/vega-lite.min.js",
    "vega-embed": "https://cdn.jsdelivr.net/npm/vega-embed@7.3.0/build/vega-embed.min.js",
}


def _add_explorer_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Load vega, vega-lite and vega-embed (in that order) on the pages that hold an explorer, and only there."""
    from course_lib.explorers import MARKER

    if MARKER not in (context.get("body") or ""):
        return
    for i, name in enumerate(book_assets.VEGA_LIBRARIES):
        staged = getattr(app, "course_assets_staged", False)
        # called during html-page-context, add_js_file adds the script to this page only
        app.add_js_file(book_assets.vega_library_target(name) if staged else VEGA_CDN[name], priority=600 + i)


#: What marks maths in a page's body: Sphinx's math nodes (inline and display, from $...$ and $$...$$
#: in markdown and from LaTeX outputs), and TeX delimiters left for MathJax to find.
_MATH_MARKERS = ('class="math', "\\(", "\\[", "$$", "\\begin{")
_WIDGET_STATE = re.compile(r'<script type="application/vnd.jupyter.widget-state\+json">(.*?)</script>', re.DOTALL)


def has_maths(body: str) -> bool:
    """Whether a page needs MathJax: maths in its text, or a "$" in the state of its widgets (typeset by MathJax)."""
    return any(marker in body for marker in _MATH_MARKERS) or any("$" in m for m in _WIDGET_STATE.findall(body))


def _drop_mathjax_without_maths(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Load MathJax (1.2 MB with its fonts) only on pages that have maths.

    The book's settings make Sphinx add MathJax and its configuration to every page; on a page
    whose body has no maths (see ``has_maths``), remove both.
    """
    scripts = context.get("script_files")
    if not isinstance(scripts, list) or has_maths(context.get("body") or ""):
        return
    mathjax = str(app.config.mathjax_path or "")
    def is_mathjax(js) -> bool:
        name = str(getattr(js, "filename", None) or js or "")
        body = str(getattr(js, "attributes", {}).get("body", ""))
        return bool(mathjax) and name.endswith(mathjax) or "window.MathJax" in body or "MathJax.Hub.Config" in body
    context["script_files"] = [js for js in scripts if not is_mathjax(js)]


def _publish_demo_models(app: Sphinx, exception: Exception | None) -> None:
    """Copy the models the chapters exported (``course_lib.book.demos``) into ``_static/course-models/``.

    Only the files the page loads (.onnx, .json); ``model.pt`` (for the parity tests) stays next to
    the jupyter cache in ``<build>/_build/.course-models/``, which outlives a cached rebuild.
    """
    from course_lib.book.demos import ENV_MODELS, SITE_FOLDER, SITE_SUFFIXES

    if exception is not None or app.builder.format != "html":
        return
    source = pathlib.Path(os.environ.get(ENV_MODELS, pathlib.Path(app.outdir).parent / ".course-models"))
    if not source.is_dir():
        return
    import shutil

    for f in sorted(source.rglob("*")):
        if f.is_file() and f.suffix in SITE_SUFFIXES:
            out = pathlib.Path(app.outdir) / "_static" / SITE_FOLDER / f.relative_to(source)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, out)


#: pydata-sphinx-theme's Font Awesome as JavaScript (SVG icons): 543 kB gzip-compressed on every page,
#: for icons that its CSS already draws with the Font Awesome web fonts it loads anyway.
_FONTAWESOME_JS = re.compile(r'\s*<script defer src="[^"]*_static/scripts/fontawesome\.js[^"]*"></script>')


def _drop_fontawesome_js(app: Sphinx, exception) -> None:
    """Remove the theme's fontawesome.js from every page (the icons stay: the CSS web fonts draw them)."""
    if exception or app.builder is None or app.builder.format != "html":
        return
    for page in pathlib.Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        slim = _FONTAWESOME_JS.sub("", text)
        if slim != text:
            page.write_text(slim, encoding="utf-8")


def _drop_duplicate_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """List each <script> once.

    Sphinx 7.4 lists twice an inline script (no file) that an extension adds once the
    builder exists: once as file None, once as file ''. sphinx-thebe's
    `const THEBE_JS_URL = ...` is such a script, and its second copy throws
    "Identifier 'THEBE_JS_URL' has already been declared" in every page's console.
    """
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen: set[str] = set()
    kept = []
    for js in scripts:
        key = repr((getattr(js, "filename", None) or "", getattr(js, "priority", None), sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    context["script_files"] = kept


def setup(app: Sphinx) -> dict:
    # the chapters' kernels inherit the environment: see course_lib.runtime.building_book()
    from course_lib.runtime import BUILD_ENV

    os.environ[BUILD_ENV] = "1"
    # after myst-nb and sphinx.ext.mathjax have registered their settings (default priority 500)
    app.connect("config-inited", _config_inited, priority=900)
    app.connect("doctree-resolved", _link_inline_assets)
    # the chapters' in-page models (course_lib.book.demos): exported next to the jupyter cache, published at the end
    from course_lib.book.demos import ENV_MODELS

    os.environ[ENV_MODELS] = str(pathlib.Path(app.outdir).parent / ".course-models")
    app.connect("build-finished", _publish_demo_models)
    app.connect("html-page-context", _add_explorer_scripts, priority=450)  # before the de-duplication
    app.connect("html-page-context", _drop_duplicate_scripts)
    app.connect("html-page-context", _drop_mathjax_without_maths, priority=800)  # after sphinx.ext.mathjax (500)
    app.connect("build-finished", _drop_fontawesome_js)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
