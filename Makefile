# The two commands of the README: `make demo` and `make test`.
# Each builds .venv with python3 -m venv and installs what it needs.
PY3    ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-test

.PHONY: demo test lint typecheck bench clean browser wrk

$(STAMP): pyproject.toml Makefile
	$(PY3) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,docs]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m kernelish demo

lint: $(STAMP)
	$(VENV)/bin/ruff check kernelish tests examples bench
	$(VENV)/bin/ruff format --check kernelish tests examples bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# The status page's browser test wants Debian's chromium; as root (CI) it is
# installed when missing, and its absence only skips that test.
browser:
	@if [ "$$(id -u)" = 0 ] && ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) >/dev/null 2>&1 \
		|| echo "chromium not installed: the browser test will be skipped"; \
	fi

test: lint typecheck browser
	$(PY) -m pytest -q -m "not heavy"
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir $(VENV)/site -q

# The HTTP benches' load generator is Debian's wrk; as root it is installed
# when missing, and its absence only makes those benches say so.
wrk:
	@if [ "$$(id -u)" = 0 ] && ! command -v wrk >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk) >/dev/null 2>&1 \
		|| echo "wrk not installed: the HTTP benches will say so"; \
	fi

bench: $(STAMP) wrk
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache
