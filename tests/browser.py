"""Shared machinery for the tests that drive the built book in Chromium.

The fixtures `site` (the built book served on 127.0.0.1) and `browser_context` (one headless
Chromium) live in tests/conftest.py and use this module; test files import the helpers:

    from browser import BOOK_HTML, open_page, allowed

The site is `_build/html` (built by `make book`, which `make test` runs first), or the folder
named by COURSE_BOOK_HTML (with its _toc.yml in COURSE_BOOK_SOURCE, default: the repository).

The browser is the first of: the executable named by COURSE_CHROMIUM, then `chromium`,
`chromium-browser`, `google-chrome`, `google-chrome-stable` on PATH. It is driven by Playwright
with `executable_path`; never `playwright install` (it downloads a browser). With no browser the
tests fail (never skip) and say how to install one.
"""

from __future__ import annotations

import functools
import http.server
import os
import pathlib
import re
import shutil
import threading
from urllib.parse import urlparse

from course_lib.book.timing import ROOT

BOOK_HTML = pathlib.Path(os.environ.get("COURSE_BOOK_HTML", ROOT / "_build" / "html")).resolve()
BOOK_SOURCE = pathlib.Path(os.environ.get("COURSE_BOOK_SOURCE", ROOT))  # where _toc.yml is
SCREENSHOTS = BOOK_HTML.parent / "screenshots"

BROWSER_ENV = "COURSE_CHROMIUM"
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1"}
NON_NETWORK_SCHEMES = {"data", "blob", "about", "chrome-extension"}

#: Console errors that do not mean a broken page: (regular expression, why it is harmless).
#: Every other console error (and every uncaught exception) fails the page's test.
CONSOLE_ALLOWED: tuple[tuple[str, str], ...] = (
    (
        r"^Got invalid theme mode: \. Resetting to auto\.",
        "pydata-sphinx-theme, on a reader's first visit (empty localStorage, as in our fresh profile): "
        "the book sets no default colour mode, so the theme logs this and uses 'auto' (follow the system), "
        "which is the intended behaviour; later pages read the stored mode and do not log it.",
    ),
)

INSTALL_HINT = (
    "Install Chromium (Debian/Ubuntu: `sudo apt-get install chromium`, which `make test` does as root; "
    "Fedora: `sudo dnf install chromium`; macOS: `brew install --cask chromium`), or point "
    f"{BROWSER_ENV} at a Chromium or Chrome executable, e.g. `{BROWSER_ENV}=/path/to/chrome make test`. "
    "Do not use `playwright install`: it downloads a browser."
)


def find_browser() -> str:
    """The Chromium executable to drive; raises FileNotFoundError with install advice when none."""
    named = os.environ.get(BROWSER_ENV)
    if named:
        path = shutil.which(named) or (named if os.access(named, os.X_OK) else None)
        if not path:
            raise FileNotFoundError(f"{BROWSER_ENV}={named!r} is not an executable file. {INSTALL_HINT}")
        return path
    for name in BROWSER_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError(f"no Chromium found (looked for {BROWSER_ENV}, then {', '.join(BROWSER_NAMES)} on PATH). {INSTALL_HINT}")


def allowed(message: str) -> bool:
    return any(re.search(pattern, message) for pattern, _why in CONSOLE_ALLOWED)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the signature is http.server's
        pass


def serve(directory: pathlib.Path):
    """Serve `directory` on 127.0.0.1 (a free port) from a daemon thread; returns (base URL, server)."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/", server


class PageLog:
    """Every request, failed response and console error of one page."""

    def __init__(self):
        self.requests: list[str] = []
        self.outside: list[str] = []
        self.failed: list[str] = []
        self.errors: list[str] = []


def is_local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in NON_NETWORK_SCHEMES or parsed.hostname in LOCAL_HOSTS


def open_page(context, url: str, wait_until: str = "load") -> tuple[object, PageLog]:
    """Open `url` in a new tab of `context`; requests outside 127.0.0.1 are aborted and logged."""
    log = PageLog()
    page = context.new_page()

    def route(route_):
        request_url = route_.request.url
        log.requests.append(request_url)
        if is_local(request_url):
            route_.continue_()
        else:  # never let it out (and never wait for a network we do not have)
            log.outside.append(request_url)
            route_.abort()

    page.route("**/*", route)
    page.on("response", lambda r: r.status >= 400 and log.failed.append(f"{r.status} {r.url}"))

    def console(msg):
        if msg.type == "error":
            where = msg.location.get("url", "") if msg.location else ""
            log.errors.append(f"{msg.text} (at {where})" if where else msg.text)

    page.on("console", console)
    page.on("pageerror", lambda exc: log.errors.append(f"uncaught: {exc}"))
    page.goto(url, wait_until=wait_until)
    return page, log
