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


# --- `make lab`: the server a learner starts (Makefile, target lab) -------------------------

def _path_without_venv() -> str:
    """PATH as a learner's fresh shell has it: no activated venv."""
    venv_bin = str(Path(sys.prefix) / "bin")
    return os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and Path(p) != Path(venv_bin))


@pytest.fixture(scope="module")
def make_lab(tmp_path_factory):
    """`make lab` itself (the install step taken as done: `make -o`), token-protected on a free port.

    Runs in a shell without the venv on PATH, as a learner's does; yields (base URL, token).
    """
    root = Path(__file__).resolve().parents[1]
    if not (root / ".venv" / "bin" / "jupyter").exists():
        pytest.fail("no .venv/bin/jupyter: run `make lab` once (or `make test`)", pytrace=False)
    tmp = tmp_path_factory.mktemp("make-lab")
    env = {k: v for k, v in os.environ.items() if k not in ("JUPYTER_CONFIG_PATH", "JUPYTER_PATH", "JUPYTER_NO_CONFIG", "VIRTUAL_ENV")}
    for name in ("config", "data", "runtime"):
        (tmp / name).mkdir()
    env.update(JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_DATA_DIR=str(tmp / "data"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"))
    env["PATH"] = _path_without_venv()
    port, token = _free_port(), "course-test-" + os.urandom(8).hex()
    lab_args = f"--no-browser --allow-root --ServerApp.ip=127.0.0.1 --ServerApp.port={port} --ServerApp.port_retries=0 --IdentityProvider.token={token}"
    command = ["make", "--no-print-directory", "-o", ".venv/.installed-lab", "lab", f"LAB_ARGS={lab_args}"]
    log = tmp / "make-lab.log"
    with open(log, "w") as out:
        server = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _serving(f"{url}/api/status?token={token}"):
            if server.poll() is not None:
                pytest.fail(f"make lab exited with {server.returncode} before serving:\n{log.read_text()[-3000:]}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"make lab did not serve on {url} within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}", pytrace=False)
            time.sleep(0.5)
        yield url, token
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # make and the jupyter it started: its own session only
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _serving(url: str) -> bool:
    try:
        return _get(url)[0] == 200
    except OSError:
        return False


def test_make_lab_serves_the_repository_root(make_lab):
    """chapters/ and exercises/ are both reachable from the one JupyterLab."""
    url, token = make_lab
    status, body = _get(f"{url}/api/contents?token={token}")
    assert status == 200, f"/api/contents answered {status}"
    names = {item["name"] for item in json.loads(body)["content"]}
    assert {"chapters", "exercises"} <= names, f"make lab's root holds {sorted(names)}: expected the repository root"


def _terminal_output(url: str, token: str, command: str, until: str, timeout_s: float = 60) -> str:
    """Run `command` in a terminal the server spawns (POST /api/terminals, then its websocket)."""
    import websocket  # websocket-client, a dependency of jupyter_server

    request = urllib.request.Request(f"{url}/api/terminals?token={token}", data=b"", method="POST")
    with OPENER.open(request, timeout=30) as response:
        name = json.loads(response.read())["name"]
    ws = websocket.create_connection(f"ws://{url.split('://', 1)[1]}/terminals/websocket/{name}?token={token}", timeout=10)
    output = ""
    try:
        ws.send(json.dumps(["stdin", command + "\r"]))
        deadline = time.monotonic() + timeout_s
        while until not in output and time.monotonic() < deadline:
            try:
                message = json.loads(ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            if message[0] == "stdout":
                output += message[1]
    finally:
        ws.close()
        OPENER.open(urllib.request.Request(f"{url}/api/terminals/{name}?token={token}", method="DELETE"), timeout=30)
    return output


def test_make_lab_terminal_finds_course(make_lab):
    """A terminal in make lab's JupyterLab runs `course` without `source .venv/bin/activate`."""
    url, token = make_lab
    root = Path(__file__).resolve().parents[1]
    # printf splits the marker so that the echoed command line does not contain it
    out = _terminal_output(url, token, "command -v course; course --help | head -n 1; printf 'DO%s\\n' NE", "DONE")
    assert "DONE" in out, f"the terminal did not answer:\n{out}"
    assert str(root / ".venv" / "bin" / "course") in out, (
        f"make lab's terminal does not find .venv's `course` (PATH is not set for the server):\n{out}"
    )
    assert "usage: course" in out, f"`course --help` did not run:\n{out}"
