# The two commands a new user runs: `make demo` and `make test`.
# Both create .venv when it is missing and install the package with the
# pinned torch (constraints.txt: the tested CPU build, not the CUDA one).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_ARGS ?=

.PHONY: demo test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/unified-guidance demo $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: $(STAMP)
	$(PY) benchmarks/engine.py
	$(PY) benchmarks/diffusion.py
	$(PY) benchmarks/flow.py
	$(PY) benchmarks/autoregressive.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# The documentation site (mkdocs-material + mkdocstrings, strict: broken links and references fail).
.PHONY: docs
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --clean --site-dir site
