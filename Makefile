# Two commands on a fresh machine: `make book` and `make test`.
# Both create .venv on first use and reinstall when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# torch is installed first and pinned: an unpinned torch pulls several GB of CUDA wheels.
TORCH  := torch==2.13.0
JB     := $(VENV)/bin/jupyter-book

.PHONY: book test test-fast exercises bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

book: $(STAMP)
	$(JB) build . -W -n --keep-going
	@echo "Book built: $(CURDIR)/_build/html/index.html"

# The whole suite: the book build with -W (every chapter executed), then every test
# (unit and parity tests, the grader's invariants, checks on the built book).
test: $(STAMP)
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
