import pathlib

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Deliberately different sizes so that swapped axes fail (STYLE.md).
B, T, S, C, H = 3, 5, 7, 12, 3


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def root() -> pathlib.Path:
    return ROOT


def pytest_terminal_summary(terminalreporter):
    """Print each chapter's execution time from the last book build."""
    from course_lib.book.timing import CHAPTER_BUDGET_S, chapter_execution_seconds

    times = chapter_execution_seconds()
    if times:
        terminalreporter.write_sep("-", "chapter execution times (last book build)")
        for name, seconds in sorted(times.items()):
            budget = CHAPTER_BUDGET_S.get(name)
            terminalreporter.write_line(f"{name:<28}{seconds:8.1f} s" + (f"   (budget {budget} s)" if budget else ""))


@pytest.fixture(scope="module")
def site():
    """The built book (tests/browser.py's BOOK_HTML) served on 127.0.0.1; yields its base URL."""
    from browser import BOOK_HTML, serve

    url, server = serve(BOOK_HTML)
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    """One Chromium (headless, an empty profile, no background networking) for the module.

    Fails, never skips, when no browser is found (tests/browser.py says where it looks).
    """
    from browser import CHROMIUM_ARGS, find_browser

    try:
        executable = find_browser()
    except FileNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("the playwright package is not installed in .venv: run `make test`, which installs '.[test]'", pytrace=False)
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
            service_workers="block",
        )
        context.set_default_timeout(30_000)
        yield context
        context.close()
