# A learner runs `make lab`; the course's authors run `make book` and `make test`.
# Each creates .venv on first use, installs what it needs, and reinstalls when pyproject.toml changes.
#
#   make lab        core + [grade] + [chapters], then JupyterLab at the repository root (chapters/ and
#                   exercises/), its terminals finding `course` (learners; no nbgrader instructor tools)
#   make book       core + [book]                 (pyproject.toml says what each extra holds)
#   make test       everything: [book,grade,test], then the book, then every test
#   make exercises  core + [grade], then regenerate exercises/ from solutions/

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet
# The long installs (torch, make lab's) show pip's progress: a first install takes minutes.
PIP_LOUD := $(PY) -m pip install --progress-bar on
JB     := $(VENV)/bin/jupyter-book

# torch is installed first and pinned, from PyTorch's CPU wheel index (as .github/workflows do):
# the default index's Linux wheel pulls several GB of CUDA libraries. pyproject.toml asks for a
# range (Colab keeps its own torch); the pin satisfies it, so pip leaves it alone afterwards.
TORCH          := torch==2.13.0
TORCH_INDEX    := https://download.pytorch.org/whl/cpu
# Seconds to wait for the CPU index before falling back to the default index.
TORCH_INDEX_TIMEOUT := 20
TORCH_STAMP    := $(VENV)/.torch
STAMP          := $(VENV)/.installed
STAMP_BOOK     := $(VENV)/.installed-book
STAMP_GRADE    := $(VENV)/.installed-grade
STAMP_LAB      := $(VENV)/.installed-lab

.PHONY: book test test-fast lab exercises bench clean chromium bubblewrap

# JavaScript the book serves itself so that it works offline (MathJax, require.js, the widget
# manager, d3 and jQuery for bertviz; see course_lib/book/assets.py): installed from the npm
# registry, again only when package.json or package-lock.json change. Without npm the book
# falls back to public CDNs, and this says so.
NPM_STAMP := node_modules/.installed

$(TORCH_STAMP):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@want=$$(echo '$(TORCH)' | sed 's/.*==//'); \
	if $(PY) -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '$$want')" 2>/dev/null; then \
		echo "$(TORCH) is already installed"; \
	else \
		probe="import urllib.request; urllib.request.urlopen('$(TORCH_INDEX)/torch/', timeout=$(TORCH_INDEX_TIMEOUT))"; \
		limit=""; if command -v timeout >/dev/null 2>&1; then limit="timeout $(TORCH_INDEX_TIMEOUT)"; fi; \
		if $$limit $(PY) -c "$$probe" >/dev/null 2>&1; then \
			echo "installing $(TORCH) (CPU build, about 200 MB) from $(TORCH_INDEX)"; \
			$(PIP_LOUD) --retries 2 --extra-index-url $(TORCH_INDEX) $(TORCH) || exit 1; \
		else \
			echo "*** $(TORCH_INDEX) could not be reached within $(TORCH_INDEX_TIMEOUT) s:"; \
			echo "*** installing $(TORCH) from the default index instead. On Linux x86_64, PyPI's wheel"; \
			echo "*** brings CUDA libraries (several GB); wheels found locally (pip's find-links) are used first."; \
			$(PIP) $(TORCH) || exit 1; \
		fi; \
	fi
	@$(PY) -W ignore -c "import torch; print('torch', torch.__version__, '(CUDA ' + torch.version.cuda + ')' if torch.version.cuda else '(CPU only)')"
	touch $@

# nbgrader enables its Jupyter extensions (formgrader, create assignment, validate, course
# list) on install; this course grades with `course grade`, so .venv switches them off and a
# learner's JupyterLab shows none of them (README, "Doing an exercise"). The files written are
# the ones `jupyter server extension disable --sys-prefix` and `jupyter labextension disable
# --level=sys_prefix` write, without the minute those commands take to import every extension.
define NBGRADER_OFF_PY
import json, pathlib, sys
etc = pathlib.Path(sys.prefix, "etc", "jupyter")
server = etc / "jupyter_server_config.d" / "zz-course-nbgrader-off.json"  # read after nbgrader.json
server.parent.mkdir(parents=True, exist_ok=True)
names = ("formgrader", "validate_assignment", "assignment_list", "course_list")
off = {f"nbgrader.server_extensions.{n}": False for n in names}
server.write_text(json.dumps({"ServerApp": {"jpserver_extensions": off}}, indent=2) + "\n")
page = etc / "labconfig" / "page_config.json"
page.parent.mkdir(parents=True, exist_ok=True)
config = json.loads(page.read_text()) if page.exists() else {}
for key in ("disabledExtensions", "lockedExtensions"):
    config.setdefault(key, {})["@jupyter/nbgrader"] = True
page.write_text(json.dumps(config, indent=2) + "\n")
print(f"nbgrader's Jupyter extensions are disabled in {sys.prefix} (the grader is `course grade`)")
endef
export NBGRADER_OFF_PY
NBGRADER_EXTENSIONS_OFF = @$(PY) -c "$$NBGRADER_OFF_PY"

# Everything (make test): the book, the grader and the test tools.
$(STAMP): pyproject.toml $(TORCH_STAMP)
	$(PIP) -e '.[test]'
	$(NBGRADER_EXTENSIONS_OFF)
	touch $(STAMP_BOOK) $(STAMP_GRADE) $@

$(STAMP_BOOK): pyproject.toml $(TORCH_STAMP)
	$(PIP) -e '.[book]'
	touch $@

$(STAMP_GRADE): pyproject.toml $(TORCH_STAMP)
	$(PIP) -e '.[grade]'
	$(NBGRADER_EXTENSIONS_OFF)
	touch $@

# A learner's set (make lab): the grader for `course check`, and what the chapters import.
$(STAMP_LAB): pyproject.toml $(TORCH_STAMP)
	@echo "make lab: installing course_lib with [grade] (course check) and [chapters] (pandas, bertviz,"
	@echo "make lab: chapter 8's BERT, about 130 MB): a few minutes the first time, pip's progress below"
	$(PIP_LOUD) -e '.[grade,chapters]'
	$(NBGRADER_EXTENSIONS_OFF)
	@echo "make lab: installed; from now on \`make lab\` starts JupyterLab at once"
	touch $(STAMP_GRADE) $@

$(NPM_STAMP): package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		echo "npm ci: installing the book's JavaScript assets into node_modules/"; \
		npm ci --no-audit --no-fund --ignore-scripts && touch $@; \
	else \
		echo "*** npm not found: the book will load MathJax, require.js, the widget manager, d3 and jQuery"; \
		echo "*** from public CDNs and will NOT render offline. Install Node.js and npm, then rerun make."; \
	fi

# The browser tests drive Chromium (never `playwright install`): COURSE_CHROMIUM if set, else
# chromium, chromium-browser, google-chrome or google-chrome-stable on PATH (tests/browser.py).
# With none, Debian's chromium is installed with apt when we are root; otherwise this says how
# to install one and the browser tests fail with the same advice.
BROWSERS := chromium chromium-browser google-chrome google-chrome-stable
chromium:
	@if [ -n "$$COURSE_CHROMIUM" ]; then \
		if command -v "$$COURSE_CHROMIUM" >/dev/null 2>&1; then echo "browser tests: COURSE_CHROMIUM=$$COURSE_CHROMIUM"; \
		else echo "*** COURSE_CHROMIUM=$$COURSE_CHROMIUM is not an executable: the browser tests will fail."; fi; \
		exit 0; \
	fi; \
	for b in $(BROWSERS); do \
		if command -v $$b >/dev/null 2>&1; then echo "browser tests: $$(command -v $$b)"; exit 0; fi; \
	done; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "no Chromium found: installing Debian's chromium package with apt-get"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else \
		echo "*** no Chromium found (COURSE_CHROMIUM, then $(BROWSERS) on PATH): the browser tests will fail."; \
		echo "*** Install one (Debian/Ubuntu: sudo apt-get install chromium; Fedora: sudo dnf install chromium;"; \
		echo "*** macOS: brew install --cask chromium) or run: COURSE_CHROMIUM=/path/to/chrome make test"; \
	fi

# The grader runs every submission in a bubblewrap sandbox (`course grade` refuses without it;
# tests/test_grading_sandbox.py needs it). Installed with apt when missing and we are root;
# otherwise this says how to install it.
BWRAP := bubblewrap
bubblewrap:
	@if command -v bwrap >/dev/null 2>&1; then echo "grader sandbox: $$(command -v bwrap)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "bwrap not found: installing Debian's bubblewrap package with apt-get"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y bubblewrap; \
	else \
		echo "*** bwrap not found: the grader's sandbox tests will fail and \`course grade\` refuses to run."; \
		echo "*** Install it: sudo apt-get install bubblewrap (Fedora: sudo dnf install bubblewrap)"; \
	fi

book: $(STAMP_BOOK) $(NPM_STAMP)
	$(JB) build . -W -n --keep-going
	@echo "Book built: $(CURDIR)/_build/html/index.html"

# The whole suite: the book build with -W (every chapter executed), then every test
# (unit and parity tests, the grader's invariants, checks on the built book).
test: $(STAMP) chromium $(BWRAP)
	$(MAKE) book
	$(PY) -m pytest tests

test-fast: $(STAMP)
	$(PY) -m pytest tests -m "not slow and not browser"

# A learner's JupyterLab at the repository root: chapters/ and exercises/ (nbgrader's instructor
# tools switched off). The server's PATH starts with .venv/bin, so its terminals and kernels find
# `course`, `python` and `pip` without activating anything. Its terminals run the learner's shell
# as it is (not a login shell, which JupyterLab starts when make's output is not a terminal, and
# whose /etc/profile resets PATH on Debian). LAB_ARGS adds options (the tests pass --no-browser,
# a port and a token: tests/test_learner_env.py).
LAB_SERVER = PATH="$(CURDIR)/$(VENV)/bin:$$PATH" VIRTUAL_ENV="$(CURDIR)/$(VENV)" $(VENV)/bin/jupyter lab \
	--ServerApp.root_dir="$(CURDIR)" --ServerApp.terminado_settings="shell_command=$${SHELL:-/bin/sh}"
lab: $(STAMP_LAB)
	$(LAB_SERVER) $(LAB_ARGS)

# Regenerate exercises/ from solutions/ with nbgrader (commit the result).
exercises: $(STAMP_GRADE)
	$(PY) -m course_lib.grading.release

bench: $(STAMP_BOOK)
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf _build
