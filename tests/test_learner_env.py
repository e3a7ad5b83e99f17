"""A learner's JupyterLab shows none of nbgrader's instructor tools, end to end.

nbgrader switches on, when installed, a JupyterLab extension (Formgrader menu, "Create
assignment", a Validate button that skips the hidden tests) and four Jupyter server extensions
(formgrader, validate_assignment, assignment_list, course_list). The Makefile's NBGRADER_OFF_PY
switches them off in the venv (README, "Doing an exercise"). This starts the JupyterLab a
learner starts (`jupyter lab --no-browser` from this venv, in an empty temporary folder, with
the user's own Jupyter config and data folders replaced by empty ones so that only the venv's
config counts), reads the page config JupyterLab hands the browser, asks for nbgrader's
server endpoints, and stops it. tests/test_repository.py reads the same config files;
this checks what the running server makes of them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

NBGRADER_LABEXTENSION = "@jupyter/nbgrader"
# Every route nbgrader's four server extensions add (nbgrader/server_extensions/*/handlers.py, 0.9.6)
NBGRADER_ROUTES = ["formgrader", "formgrader/manage_assignments", "formgraders", "assignments", "assignments/validate", "courses", "nbgrader_version"]
START_TIMEOUT_S = 120  # a few seconds alone; generous for a machine busy with other work
# HTTP without the environment's proxies: the server is on 127.0.0.1
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    try:
        with OPENER.open(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`jupyter lab` from this venv on a free port, token disabled; yields its base URL."""
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        pytest.fail("JupyterLab is not installed in this venv: run `make test` (it installs '.[test]')", pytrace=False)
    tmp = tmp_path_factory.mktemp("learner-lab")
    env = {k: v for k, v in os.environ.items() if k not in ("JUPYTER_CONFIG_PATH", "JUPYTER_PATH", "JUPYTER_NO_CONFIG")}
    for name in ("config", "data", "runtime", "work"):
        (tmp / name).mkdir()
    env.update(JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_DATA_DIR=str(tmp / "data"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"))
    port = _free_port()
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={tmp / 'work'}",
    ]  # fmt: skip
    log = tmp / "jupyter-lab.log"
    with open(log, "w") as out:
        server = subprocess.Popen(command, cwd=tmp / "work", env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"jupyter lab exited with {server.returncode} before serving:\n{log.read_text()[-3000:]}", pytrace=False)
            try:
                if _get(url + "/api/status")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer on {url} within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}", pytrace=False)
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)  # its own session: only what this test started
            server.wait()


def _page_config(html: str) -> dict:
    """The JSON JupyterLab (and Notebook 7) embed in each page: <script id="jupyter-config-data">."""
    found = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', html, re.S)
    assert found, "no jupyter-config-data script in the page"
    return json.loads(found.group(1))


@pytest.mark.parametrize("page", ["lab", "tree"])
def test_the_page_config_disables_nbgrader(lab, page):
    """/lab is JupyterLab, /tree Notebook 7's file browser: neither loads nbgrader's frontend.

    (Not checked: lockedExtensions, which keeps a learner from switching it back on in the
    Extension Manager. JupyterLab >= 4.1 writes it itself on start for every disabled extension.)
    """
    status, html = _get(f"{lab}/{page}")
    assert status == 200, f"/{page} answered {status}"
    config = _page_config(html)
    federated = [ext["name"] for ext in config.get("federated_extensions", [])]
    if NBGRADER_LABEXTENSION in federated:
        assert NBGRADER_LABEXTENSION in config.get("disabledExtensions", []), (
            f"/{page}: nbgrader's JupyterLab extension is installed and enabled (disabledExtensions: "
            f"{config.get('disabledExtensions')}): run `make lab` or `make test`, whose NBGRADER_OFF_PY disables it"
        )


@pytest.mark.parametrize("route", NBGRADER_ROUTES)
def test_nbgrader_server_endpoints_are_not_served(lab, route):
    status, _ = _get(f"{lab}/{route}")
    assert status == 404, (
        f"/{route} answered {status}: an nbgrader server extension is enabled in {sys.prefix}; "
        "run `make lab` or `make test`, whose NBGRADER_OFF_PY disables them"
    )


def test_the_server_itself_answers(lab):
    """The 404s above come from a working server whose extensions load, not a broken one."""
    assert _get(f"{lab}/api/status")[0] == 200
    status, body = _get(f"{lab}/lab/api/settings")  # served by the jupyterlab server extension
    assert status == 200 and json.loads(body)["settings"], f"/lab/api/settings answered {status}"
