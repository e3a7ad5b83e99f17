# Two commands on a fresh machine: `make book` and `make test`.
# Both create .venv on first use and reinstall when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# torch is installed first and pinned: an unpinned torch pulls several GB of CUDA wheels.
TORCH  := torch==2.13.0
JB     := $(VENV)/bin/jupyter-book

.PHONY: book test test-fast exercises bench clean bubblewrap

# JavaScript the book serves itself so that it works offline (MathJax, require.js, the widget
# manager, d3 and jQuery for bertviz; see course_lib/book_assets.py): installed from the npm
# registry, again only when package.json or package-lock.json change. Without npm the book
# falls back to public CDNs, and this says so.
NPM_STAMP := node_modules/.installed
# The browser tests drive Debian's Chromium (never `playwright install`).
CHROMIUM  := /usr/bin/chromium

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(NPM_STAMP): package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		echo "npm ci: installing the book's JavaScript assets into node_modules/"; \
		npm ci --no-audit --no-fund --ignore-scripts && touch $@; \
	else \
		echo "*** npm not found: the book will load MathJax, require.js, the widget manager, d3 and jQuery"; \
		echo "*** from public CDNs and will NOT render offline. Install Node.js and npm, then rerun make."; \
	fi

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else \
		echo "*** $(CHROMIUM) is missing and we are not root: install Debian's chromium package"; \
		echo "*** (sudo apt-get install chromium), or the browser tests will fail."; \
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

book: $(STAMP) $(NPM_STAMP)
	$(JB) build . -W -n --keep-going
	@echo "Book built: $(CURDIR)/_build/html/index.html"

# The whole suite: the book build with -W (every chapter executed), then every test
# (unit and parity tests, the grader's invariants, checks on the built book).
test: $(STAMP) $(CHROMIUM) $(BWRAP)
	$(MAKE) book
	$(PY) -m pytest tests

test-fast: $(STAMP)
	$(PY) -m pytest tests -m "not slow and not browser"

# Regenerate exercises/ from solutions/ with nbgrader (commit the result).
exercises: $(STAMP)
	$(PY) -m course_lib.grading.release

bench: $(STAMP)
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf _build
