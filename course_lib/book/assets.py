"""The JavaScript the built book serves itself, so that it renders with no outside request.

By default a Jupyter Book loads MathJax, require.js and the Jupyter widget manager
from public CDNs, and bertviz loads require.js, d3 and jQuery from a CDN too:
offline, or on a restricted classroom network, maths stays raw TeX and widgets
and attention views stay blank. Instead:

1. ``make book`` installs the npm packages pinned in ``package.json`` /
   ``package-lock.json`` into ``node_modules/`` (``npm ci``).
2. ``course_lib.book.sphinxext`` (loaded by ``_config.yml``) calls :func:`stage` to copy
   the files listed in :data:`ASSETS` to ``<static>/course-assets/...``, which
   Sphinx publishes as ``_build/html/_static/course-assets/``, with the small files of
   :data:`GENERATED` (``widget-setup.js``: fixes for the widget manager on a local,
   MathJax 3 site); ``_config.yml`` points ``mathjax_path`` and ``nb_ipywidgets_js`` there.
3. ``course_lib.viz`` inlines d3 and jQuery (wrapped by :func:`wrapped_library`)
   into each bertviz view; in the book the extension swaps those inline copies for
   ``<script src>`` links to the same wrapped files under ``_static``.

Without npm (no ``node_modules/``), the extension switches the book back to the
CDN settings in :data:`CDN_FALLBACK` and prints a message saying so.
"""

from __future__ import annotations

import fnmatch
import gzip
import pathlib
import shutil
from dataclasses import dataclass

from course_lib.assets import (  # noqa: F401 (re-exported) the libraries' catalogue, shared with viz and the grader
    BERTVIZ_LIBRARIES,
    ENV_NODE_MODULES,
    ROOT,
    VEGA_LIBRARIES,
    missing_libraries,
    node_modules_dir,
    wrapped_global,
    wrapped_library,
)
from course_lib.files import replace_atomically

#: Folder under the site's ``_static/`` that holds every asset below.
STATIC_DIR = "course-assets"


@dataclass(frozen=True)
class Asset:
    """One file or folder of an npm package that the site serves."""

    package: str  # npm package name, as in package.json
    source: str  # file or folder inside node_modules/<package>
    target: str  # where it goes under _static/course-assets/
    exclude: tuple[str, ...] = ()  # glob patterns (file names) left out of a folder

    def __post_init__(self) -> None:
        if self.target.startswith("/") or ".." in pathlib.PurePosixPath(self.target).parts:
            raise ValueError(f"asset target must be a relative path inside {STATIC_DIR}/, got {self.target!r}")


ASSETS: tuple[Asset, ...] = (
    # MathJax 3: the combined TeX+MathML -> CommonHTML component, plus the pieces it
    # loads on demand (TeX extensions, CHTML fonts, the menu's accessibility tools).
    Asset("mathjax", "es5/tex-mml-chtml.js", "mathjax/tex-mml-chtml.js"),
    Asset("mathjax", "es5/input", "mathjax/input"),
    Asset("mathjax", "es5/output/chtml", "mathjax/output/chtml"),
    Asset("mathjax", "es5/output/chtml.js", "mathjax/output/chtml.js"),
    Asset("mathjax", "es5/a11y", "mathjax/a11y"),
    Asset("mathjax", "es5/ui", "mathjax/ui"),
    Asset("mathjax", "es5/sre", "mathjax/sre"),
    # ipywidgets: require.js, then the self-contained widget manager bundle
    # (it defines @jupyter-widgets/base, controls and html-manager/libembed-amd).
    Asset("requirejs", "require.js", "require.js"),
    Asset(
        "@jupyter-widgets/html-manager",
        "dist",
        "html-manager",
        exclude=("*.map", "*.LICENSE.txt", "embed.js", "libembed-amd.js"),
    ),
    # ONNX Runtime Web for the chapters' models in the page (course_lib.book.demos), fetched only when
    # a reader starts a demo: the WebAssembly-only script, the ES-module glue it imports and the one
    # SIMD WebAssembly binary that glue loads (not the rest of dist/, 136 MB of other builds and maps).
    Asset("onnxruntime-web", "dist/ort.wasm.min.js", "onnxruntime-web/ort.wasm.min.js"),
    Asset("onnxruntime-web", "dist/ort-wasm-simd-threaded.mjs", "onnxruntime-web/ort-wasm-simd-threaded.mjs"),
    Asset("onnxruntime-web", "dist/ort-wasm-simd-threaded.wasm", "onnxruntime-web/ort-wasm-simd-threaded.wasm"),
)

#: Assets also served gzip-compressed (``<target>.gz``, level 9), for servers that compress nothing
#: (python's http.server, many static hosts send .wasm as is): the page fetches the .gz and inflates
#: it with the browser's DecompressionStream (course_lib/book/web/demos.js). The WebAssembly runtime
#: is 14.2 MB raw, 3.7 MB compressed; the uncompressed copy stays for browsers without DecompressionStream.
GZIPPED: tuple[str, ...] = ("onnxruntime-web/ort-wasm-simd-threaded.wasm",)

#: Sphinx settings the book uses when the assets are missing (myst-nb's and Sphinx's defaults).
CDN_FALLBACK: dict[str, object] = {
    "mathjax_path": "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js",
    "nb_ipywidgets_js": {
        "https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.4/require.min.js": {
            "integrity": "sha256-Ae2Vz/4ePdIu6ZyI/5ZGsYnb+m0JlOmKPjt6XZ9JJkA=",
            "crossorigin": "anonymous",
        },
        "https://cdn.jsdelivr.net/npm/@jupyter-widgets/html-manager@1.0.6/dist/embed-amd.js": {
            "data-jupyter-widgets-cdn": "https://cdn.jsdelivr.net/npm/",
            "crossorigin": "anonymous",
        },
    },
}


#: Files this module writes itself into _static/course-assets/ (name -> content).
GENERATED: dict[str, str] = {
    # Loaded on widget pages between require.js and the widget manager (nb_ipywidgets_js in _config.yml).
    "widget-setup.js": """/* written by course_lib/book/assets.py */
(function () {
  // 1. The widget manager's CSS finds its icon fonts next to the URL require.js gives its
  //    module: by default <page folder>/@jupyter-widgets/html-manager/dist/ (404). Point it here.
  var here = document.currentScript.src.replace(/[^/]*$/, '');
  require.config({paths: {'@jupyter-widgets/html-manager/dist': here + 'html-manager'}});

  // 2. ipywidgets typesets widget descriptions with MathJax 2's MathJax.Hub.Queue; the book
  //    loads MathJax 3, where that throws "Cannot read properties of undefined (reading 'Queue')".
  //    Give MathJax 3 a Hub.Queue that typesets the element with MathJax 3's API.
  var hub = {Queue: function (job) {
    var el = job && job[2];
    if (el && window.MathJax && MathJax.typesetPromise) MathJax.typesetPromise([el]).catch(function () {});
  }};
  window.MathJax = window.MathJax || {};
  if (MathJax.version) { MathJax.Hub = MathJax.Hub || hub; return; }  // MathJax 3 already running
  MathJax.Hub = hub;  // until MathJax 3 starts, which replaces this configuration object by itself
  MathJax.startup = MathJax.startup || {};
  var ready = MathJax.startup.ready;
  MathJax.startup.ready = function () {
    if (ready) ready(); else MathJax.startup.defaultReady();
    MathJax.Hub = MathJax.Hub || hub;
  };
})();
""",
}


def missing(node_modules: pathlib.Path | None = None) -> list[str]:
    """Paths (relative to node_modules) of the assets that are not installed."""
    wanted = [f"{a.package}/{a.source}" for a in ASSETS] + list(BERTVIZ_LIBRARIES.values()) + list(VEGA_LIBRARIES.values())
    return missing_libraries(wanted, node_modules)


def vega_library_target(name: str) -> str:
    """Where the wrapped Vega library lives under ``_static/`` in the built book."""
    return f"{STATIC_DIR}/vega/{name}.js"


def bertviz_library_target(name: str) -> str:
    """Where the wrapped library lives under ``_static/`` in the built book."""
    return f"{STATIC_DIR}/bertviz/{name}.js"


def _needs_copy(src: pathlib.Path, dst: pathlib.Path) -> bool:
    if not dst.exists():
        return True
    s, d = src.stat(), dst.stat()
    return s.st_size != d.st_size or s.st_mtime_ns > d.st_mtime_ns


def _copy_tree(src: pathlib.Path, dst: pathlib.Path, exclude: tuple[str, ...]) -> int:
    copied = 0
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
    for f in files:
        if any(fnmatch.fnmatch(f.name, pattern) for pattern in exclude):
            continue
        out = dst if src.is_file() else dst / f.relative_to(src)
        if _needs_copy(f, out):
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, out)
            copied += 1
    return copied


def _gzip_copy(src: pathlib.Path) -> int:
    """Write ``src.gz`` (gzip level 9, no timestamp: the same bytes at every build) if it is missing or older; 1 if written."""
    out = src.with_name(src.name + ".gz")
    if out.exists() and out.stat().st_mtime_ns >= src.stat().st_mtime_ns:
        return 0
    data = gzip.compress(src.read_bytes(), compresslevel=9, mtime=0)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(out)  # readers see the old file or the whole new one
    return 1


def stage(static_root: pathlib.Path, node_modules: pathlib.Path | None = None) -> int:
    """Copy every asset to ``static_root/course-assets/`` (only what changed); return the number of files written.

    ``static_root`` is a folder that Sphinx's ``html_static_path`` publishes as ``_static/``.
    """
    nm = node_modules or node_modules_dir()
    gaps = missing(nm)
    if gaps:
        raise FileNotFoundError(f"JavaScript assets missing from {nm}: {', '.join(gaps)} (run `npm ci` in {ROOT})")
    written = 0
    for asset in ASSETS:
        written += _copy_tree(nm / asset.package / asset.source, static_root / STATIC_DIR / asset.target, asset.exclude)
    for target in GZIPPED:
        written += _gzip_copy(static_root / STATIC_DIR / target)
    generated = {bertviz_library_target(name): wrapped_library(name, nm) for name in BERTVIZ_LIBRARIES}
    generated.update({vega_library_target(name): wrapped_global(name, nm) for name in VEGA_LIBRARIES})
    generated.update({f"{STATIC_DIR}/{name}": text for name, text in GENERATED.items()})
    for target, text in generated.items():
        out = static_root / target
        if not out.exists() or out.read_text(encoding="utf-8") != text:
            out.parent.mkdir(parents=True, exist_ok=True)
            replace_atomically(out, lambda f, text=text: f.write(text))
            written += 1
    return written
