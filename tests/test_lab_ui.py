"""A learner's first hour in JupyterLab, in Chromium (#27 item 6).

One JupyterLab, started from this venv as `make lab` starts it (.venv/bin first on PATH, a
random port, a token, --no-browser), on a temporary folder laid out like the repository:
chapters/03_scaled_dot_product.ipynb and exercises/ch03_scaled_dot_product/ (copies, so the
notebooks that JupyterLab saves are not the repository's). Every request the page makes outside
127.0.0.1 is blocked and recorded (tests/browser.py's open_page), so both tests run offline.

(a) The exercise: run the set-up cell, type a wrong attention_weights (no 1/sqrt(d_k)) into the
    answer cell with the keyboard, run the check cell and read CheckFailed in the page; type
    the right line, run both again and read the tick.
(b) The chapter: run all of chapter 3's cells, and find its explorer drawn (JupyterLab's own
    Vega-Lite renderer: course_lib.explorers sends the spec as Vega-Lite 5) with no request
    leaving 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from browser import open_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "_build" / "screenshots"  # a screenshot when a cell does not finish
EXERCISE = "exercises/ch03_scaled_dot_product/scaled_dot_product.ipynb"
CHAPTER = "chapters/03_scaled_dot_product.ipynb"
START_TIMEOUT_S = 120
CELL_TIMEOUT_MS = 120_000  # one cell on a machine busy with other work
CHAPTER_TIMEOUT_MS = 600_000  # every cell of chapter 3: ~10 s alone, at 1 thread and shared longer
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1, no proxies

WRONG = "return torch.softmax(q @ k.transpose(-2, -1), dim=-1)"  # forgets 1/sqrt(d_k)
RIGHT = "return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _status(url: str) -> int:
    try:
        with OPENER.open(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab from the venv on copies of chapter 3 and its exercise; yields (base URL, token)."""
    tmp = tmp_path_factory.mktemp("lab-ui")
    work = tmp / "course"
    for relative in (EXERCISE, CHAPTER):
        (work / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, work / relative)
    for name in ("config", "data", "runtime"):
        (tmp / name).mkdir()
    venv_bin = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if k not in ("JUPYTER_CONFIG_PATH", "JUPYTER_PATH", "JUPYTER_NO_CONFIG")}
    env.update(
        JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_DATA_DIR=str(tmp / "data"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        PATH=f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",  # as the Makefile's lab target sets it
    )
    from course_lib.runtime import BUILD_ENV

    env.pop(BUILD_ENV, None)  # a learner's kernel, not the book's build
    port, token = _free_port(), "course-ui-" + os.urandom(8).hex()
    command = [
        str(venv_bin / "jupyter"), "lab", "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
    ]  # fmt: skip
    log = tmp / "jupyter-lab.log"
    with open(log, "w") as out:
        server = subprocess.Popen(command, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while _status(f"{url}/api/status?token={token}") != 200:
            if server.poll() is not None:
                pytest.fail(f"jupyter lab exited with {server.returncode}:\n{log.read_text()[-3000:]}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}", pytrace=False)
            time.sleep(0.5)
        yield url, token
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its kernels: its own session only
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _open_notebook(browser_context, lab, relative: str):
    url, token = lab
    # a workspace of its own: JupyterLab would otherwise reopen the other test's notebook beside it
    workspace = re.sub(r"[^a-z0-9]+", "-", relative.lower())
    page, log = open_page(browser_context, f"{url}/lab/workspaces/{workspace}/tree/{relative}?token={token}")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=CELL_TIMEOUT_MS)
    # a cell run before the kernel is connected is not run: wait for the status bar's "| Idle"
    page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\| Idle")).first.wait_for(timeout=CELL_TIMEOUT_MS)
    return page, log


def _cell(page, containing: str):
    """The notebook cell whose editor contains `containing` (exactly one)."""
    cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").filter(
        has=page.locator(".jp-InputArea-editor", has_text=containing)
    )
    deadline = time.monotonic() + CELL_TIMEOUT_MS / 1000
    while cells.count() != 1 and time.monotonic() < deadline:  # editors render after the notebook opens
        time.sleep(0.3)
    assert cells.count() == 1, f"{cells.count()} cells contain {containing!r}"
    return cells.first


def _run(page, cell) -> None:
    """Select `cell`, run it with Shift+Enter, and wait for its execution count."""
    cell.locator(".jp-InputArea-editor").click()  # puts the cursor in the cell, as a learner does
    before = cell.locator(".jp-InputPrompt").inner_text()
    page.keyboard.press("Shift+Enter")
    deadline = time.monotonic() + CELL_TIMEOUT_MS / 1000
    while True:
        prompt = cell.locator(".jp-InputPrompt").inner_text()
        if re.search(r"\[\d+\]", prompt) and prompt != before:
            return
        if time.monotonic() > deadline:
            page.screenshot(path=str(SCREENSHOTS / "lab-ui-timeout.png"))
            raise AssertionError(f"the cell did not finish within {CELL_TIMEOUT_MS / 1000:.0f} s (prompt {prompt!r})")
        time.sleep(0.2)


def _replace_line(page, cell, old: str, new: str) -> None:
    """Click the line holding `old` in the cell's editor, select it (after its indentation), type `new`."""
    line = cell.locator(".cm-line", has_text=old)
    line.click()
    page.keyboard.press("End")
    page.keyboard.press("Shift+Home")  # CodeMirror: to the end of the indentation
    page.keyboard.type(new, delay=5)
    assert new in cell.locator(".jp-InputArea-editor").inner_text()


def _output_text(cell) -> str:
    return cell.locator(".jp-OutputArea").inner_text()


def test_a_wrong_answer_is_named_then_the_fix_gets_a_tick(browser_context, lab):
    page, log = _open_notebook(browser_context, lab, EXERCISE)
    try:
        _run(page, _cell(page, "from course_lib.checks import"))
        answer = _cell(page, "def attention_weights(")
        check = _cell(page, "check_attention_weights(attention_weights)")

        _replace_line(page, answer, "raise NotImplementedError()", WRONG)
        _run(page, answer)
        _run(page, check)
        failed = _output_text(check)
        assert "CheckFailed" in failed, f"the check cell shows no CheckFailed after a wrong answer:\n{failed}"
        assert "✔" not in failed

        _replace_line(page, answer, WRONG, RIGHT)
        _run(page, answer)
        _run(page, check)
        passed = _output_text(check)
        assert "✔" in passed and "CheckFailed" not in passed, f"the right answer did not get a tick:\n{passed}"
        assert not log.outside, f"requests left 127.0.0.1: {log.outside[:5]}"
    finally:
        page.close()


def test_the_chapter_explorer_draws_offline(browser_context, lab):
    page, log = _open_notebook(browser_context, lab, CHAPTER)
    try:
        page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-item:not(.lm-mod-hidden)", has_text="Run All Cells").first.click()
        explorer = page.locator(".jp-RenderedVegaCommon5")
        prompts = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt")
        deadline = time.monotonic() + CHAPTER_TIMEOUT_MS / 1000
        while explorer.count() == 0 and time.monotonic() < deadline:
            texts = prompts.all_inner_texts()
            if texts and all(re.search(r"\[\d+\]", t) for t in texts):
                break  # every cell has run
            if page.locator(".jp-OutputArea-output", has_text="Traceback").count():
                break  # a cell failed
            time.sleep(2)
        if explorer.count() == 0:
            page.screenshot(path=str(SCREENSHOTS / "lab-ui-chapter.png"), full_page=True)
            kinds = page.locator(".jp-OutputArea-output").evaluate_all("els => els.map(e => e.dataset.mimeType)")
            failed = page.locator(".jp-OutputArea-output", has_text="Traceback").all_inner_texts()
            raise AssertionError(
                f"no Vega-Lite output in chapter 3 after running its cells (prompts {prompts.all_inner_texts()}, "
                f"outputs {kinds}); errors: {[t[-1500:] for t in failed[-2:]]}"
            )
        drawn = explorer.first.locator("svg, canvas").first
        drawn.wait_for(timeout=CELL_TIMEOUT_MS)
        box = drawn.bounding_box()
        assert box and box["width"] > 100 and box["height"] > 100, f"the explorer is not drawn (box {box})"
        assert explorer.first.locator("input[type='range']").count() >= 1, "the explorer's slider is missing"
        text = page.locator(".jp-Notebook").inner_text()
        assert "Error loading script" not in text and "cdn.jsdelivr" not in text
        # the whole chapter runs, top to bottom: every code cell gets its number, none shows a traceback
        # (a cell that JupyterLab's windowing has not drawn shows an empty prompt: not counted)
        def pending():
            return [t for t in prompts.all_inner_texts() if re.search(r"\[[ *]\]", t)]

        while pending() and time.monotonic() < deadline:
            time.sleep(1)
        unrun = pending()
        assert not unrun, f"{len(unrun)} cells of chapter 3 did not run"
        failed = page.locator(".jp-OutputArea-output", has_text="Traceback").all_inner_texts()
        assert not failed, f"a cell of chapter 3 failed in JupyterLab: {failed[0][-1500:]}"
        assert not log.outside, f"requests left 127.0.0.1: {log.outside[:5]}"
    finally:
        page.close()
