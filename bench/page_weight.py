"""Each page of the built book: its bytes as served gzip-compressed, before any interaction.

    python bench/page_weight.py [--html _build/html] [--json out.json]

Chromium (tests/browser.py finds it) opens every page of the table of contents from
127.0.0.1, as a reader would, with every image loaded (lazy ones too) and the network idle
(MathJax's fonts and extensions included). Every file it requested is read from the site
and gzip-compressed (level 6, as GitHub Pages and most servers serve text; PNG and WOFF
barely shrink), and summed per page: the HTML plus everything it loads before the reader
clicks or types anything.

On-demand resources (the ONNX Runtime Web runtime and the chapters' exported models,
ON_DEMAND below) are reported in their own column: the page weight counts them only if
the page fetched them before any interaction, which it should not.

The target (issue 15) is at most TARGET_BYTES per page; tests/test_page_weight.py asserts it.
"""

from __future__ import annotations

import argparse
import fnmatch
import gzip
import json
import pathlib
import sys
from dataclasses import dataclass, field
from urllib.parse import unquote, urlparse

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the shared browser machinery

#: The most a page may weigh, compressed, before any interaction (issue 15: 1.5 MB).
TARGET_BYTES = 1_500_000

#: Files a page must load only when the reader asks for them (file-name patterns).
ON_DEMAND = ("*.onnx", "*.onnx.data", "*.ort", "ort*.wasm", "ort*.mjs", "ort.*.js", "ort.js", "*.wasm", "*.wasm.gz", "*.onnx.gz")

_WAIT_FOR_MATHJAX = """async () => {
  const t0 = Date.now();
  while (document.querySelector('.math') && !(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
    if (Date.now() - t0 > 20000) return;
    await new Promise(r => setTimeout(r, 50));
  }
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
}"""

_LOAD_ALL_IMAGES = """async () => {
  const images = Array.from(document.images);
  images.forEach(img => { img.loading = 'eager'; });
  await Promise.all(images.map(img => img.complete ? null : new Promise(r => { img.onload = img.onerror = r; setTimeout(r, 10000); })));
}"""


def gzip_size(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=6, mtime=0))


def is_on_demand(path: str) -> bool:
    name = pathlib.PurePosixPath(path).name
    return any(fnmatch.fnmatch(name, pattern) for pattern in ON_DEMAND)


@dataclass
class PageWeight:
    page: str
    files: dict[str, tuple[int, int]] = field(default_factory=dict)  # site path -> (raw, gzip) bytes
    outside: list[str] = field(default_factory=list)  # requests that left 127.0.0.1 (aborted)
    on_demand_available: dict[str, tuple[int, int]] = field(default_factory=dict)  # referenced, not loaded

    @property
    def raw(self) -> int:
        return sum(r for r, _ in self.files.values())

    @property
    def compressed(self) -> int:
        return sum(g for _, g in self.files.values())

    @property
    def on_demand_loaded(self) -> list[str]:
        return [p for p in self.files if is_on_demand(p)]

    def largest(self, n: int = 5) -> list[tuple[str, int]]:
        return sorted(((p, g) for p, (_, g) in self.files.items()), key=lambda x: -x[1])[:n]


def _site_path(url: str, base: str) -> str | None:
    """The file (relative to the site root) a same-site URL names; None for other URLs."""
    if not url.startswith(base):
        return None
    path = unquote(urlparse(url).path).lstrip("/")
    return path + "index.html" if path.endswith("/") or not path else path


def _on_demand_files(html: pathlib.Path, site: pathlib.Path) -> dict[str, tuple[int, int]]:
    """On-demand files of the site that the page names (in its HTML or its own scripts)."""
    text = html.read_text(encoding="utf-8", errors="replace")
    found = {}
    for f in site.rglob("*"):
        if f.is_file() and is_on_demand(f.name) and f.name in text:
            data = f.read_bytes()
            found[f.relative_to(site).as_posix()] = (len(data), gzip_size(data))
    return found


def measure(context, base: str, site: pathlib.Path, page: str) -> PageWeight:
    """Open ``page`` (a toc entry, no suffix) in a new tab of ``context`` and weigh what it loaded."""
    from browser import open_page

    tab, log = open_page(context, base + f"{page}.html")
    try:
        tab.evaluate(_WAIT_FOR_MATHJAX)
        tab.evaluate(_LOAD_ALL_IMAGES)
        tab.wait_for_load_state("networkidle")
    finally:
        tab.close()
    weight = PageWeight(page, outside=sorted(set(log.outside)))
    for url in log.requests:
        path = _site_path(url, base)
        if path is None or path in weight.files:
            continue
        f = site / path
        if f.is_file():
            data = f.read_bytes()
            weight.files[path] = (len(data), gzip_size(data))
    weight.on_demand_available = _on_demand_files(site / f"{page}.html", site)
    return weight


def measure_book(site: pathlib.Path, pages: list[str]) -> list[PageWeight]:
    """Every page of ``pages`` in one headless Chromium (routing on, so no HTTP cache between pages)."""
    from browser import CHROMIUM_ARGS, find_browser, serve
    from playwright.sync_api import sync_playwright

    base, server = serve(site)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=find_browser(), headless=True, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
            try:
                return [measure(context, base, site, page) for page in pages if (site / f"{page}.html").is_file()]
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()


def table(weights: list[PageWeight]) -> str:
    mb = 1e6
    lines = [f"{'page':<34}{'files':>6}{'raw MB':>9}{'gzip MB':>9}{'target':>8}  {'on demand, gzip MB':<20} largest (gzip kB)"]
    for w in weights:
        demand = sum(g for _, g in w.on_demand_available.values())
        status = "ok" if w.compressed <= TARGET_BYTES else "OVER"
        largest = ", ".join(f"{pathlib.PurePosixPath(p).name} {g / 1e3:.0f}" for p, g in w.largest(3))
        lines.append(f"{w.page:<34}{len(w.files):>6}{w.raw / mb:>9.2f}{w.compressed / mb:>9.3f}{status:>8}  "
                     f"{demand / mb:<20.3f} {largest}")
    lines.append(f"target: at most {TARGET_BYTES / mb:.1f} MB per page, gzip-compressed, before any interaction")
    return "\n".join(lines)


def main() -> None:
    from browser import BOOK_HTML, BOOK_SOURCE

    from course_lib.book.timing import toc_files

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=pathlib.Path, default=BOOK_HTML, help="the built site (default: %(default)s)")
    parser.add_argument("--json", type=pathlib.Path, help="also write the measurements here")
    args = parser.parse_args()
    if not (args.html / "index.html").is_file():
        sys.exit(f"no built book at {args.html}: run `make book` first, or pass --html")
    pages = toc_files(BOOK_SOURCE)
    weights = measure_book(args.html.resolve(), pages)
    print(table(weights))
    missing = [p for p in pages if not (args.html / f"{p}.html").is_file()]
    if missing:
        print(f"not in this build (skipped): {', '.join(missing)}")
    if args.json:
        args.json.write_text(json.dumps({w.page: {"raw": w.raw, "gzip": w.compressed, "files": w.files,
                                                  "on_demand": w.on_demand_available} for w in weights}, indent=1))


if __name__ == "__main__":
    main()
